"""Intelligibility of tandem's voice: each sentence of tools/data/piper_sentences.txt spoken by
`tandem say` and transcribed by `tandem transcribe -m speech-base` (Whisper base), WER by jiwer
after lowercasing and dropping punctuation (numbers as digits against words count as errors).

Also with Whisper's English text normaliser when `whisper-normalizer` (0.1.15) is installed.

Run (after `cargo build --release`, `tandem pull speech speech-base`): python3 -m tools.voice_wer
"""
import subprocess
import tempfile
from pathlib import Path

import jiwer

from tools.speech_wer import norm

ROOT = Path(__file__).resolve().parent.parent
TANDEM = str(ROOT / "target/release/tandem")


def main():
    refs, hyps = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, line in enumerate((ROOT / "tools/data/piper_sentences.txt").read_text().splitlines()):
            wav = Path(tmp) / f"{i}.wav"
            subprocess.run([TANDEM, "say", line, "-o", str(wav)], check=True, capture_output=True)
            out = subprocess.run([TANDEM, "transcribe", str(wav), "-m", "speech-base"], check=True,
                                 capture_output=True, text=True).stdout
            refs.append(line)
            hyps.append(" ".join(out.split()))
            if norm(line) != norm(hyps[-1]):
                print(f"{line!r}\n  heard {hyps[-1]!r}")
    print(f"WER {jiwer.wer([norm(r) for r in refs], [norm(h) for h in hyps]):.3f} over {len(refs)} sentences "
          "(lowercased, punctuation dropped)")
    try:
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError:
        return
    # Whisper's own English normaliser (numbers, spellings, abbreviations standardised on both
    # sides), as Whisper's WER figures are computed.
    n = EnglishTextNormalizer()
    print(f"WER {jiwer.wer([n(r) for r in refs], [n(h) for h in hyps]):.3f} with Whisper's English normaliser")


if __name__ == "__main__":
    main()
