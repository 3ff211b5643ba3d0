"""Word error rates of `tandem transcribe` on the sets the 10 pocketsphinx clips lack, made here
and labelled as such (docs/audio.md quotes the table):
- austen: the five Sense and Sensibility clips against Austen's own text;
- encodings: the committed re-encodings of clip 0930 (44.1 kHz stereo flac, mp3, ogg/vorbis,
  m4a/aac, ogg/opus, stereo webm/opus);
- long: the five clips three times over (≈ 75 s, the long-audio path) against their text thrice;
- espeak fr/de/es: sentences written for this (tools/data/speech_wer_sentences.json) spoken by
  espeak-ng (a robotic voice, not people), transcribed by Whisper base with the language detected,
  and translated to English (WER against a reference translation: loose by nature).
WER by jiwer after lowercasing and dropping punctuation (not Whisper's English normaliser: "10"
and "ten" count as different words).

Run (after `cargo build --release`, `tandem pull speech speech-base`, `apt-get install espeak-ng`):
  python3 -m tools.speech_wer [--precision int8|exact]
"""
import argparse
import json
import re
import subprocess
import tempfile
import wave
from pathlib import Path

import jiwer

ROOT = Path(__file__).resolve().parent.parent
AUDIO = ROOT / "tests/data/audio"
SENTENCES = json.loads((ROOT / "tools/data/speech_wer_sentences.json").read_text())


def norm(s):
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s']", " ", s.lower())).strip()


def transcribe(path, model, precision, translate=False, language=None):
    cmd = [str(ROOT / "target/release/tandem"), "transcribe", str(path), "-m", model, "--precision", precision]
    cmd += ["--translate"] if translate else []
    cmd += ["--language", language] if language else []
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return " ".join(out.split())


def wer(refs, hyps):
    return jiwer.wer([norm(r) for r in refs], [norm(h) for h in hyps])


def concat(paths, out):
    frames, params = [], None
    for p in paths:
        with wave.open(str(p)) as w:
            params = w.getparams()
            frames.append(w.readframes(w.getnframes()))
    with wave.open(str(out), "wb") as w:
        w.setparams(params)
        w.writeframes(b"".join(frames))


def english_sets(model, precision, tmp):
    austen = SENTENCES["austen"]
    rows = []
    refs = list(austen.values())
    hyps = [transcribe(AUDIO / f"{c}.wav", model, precision) for c in austen]
    rows.append(("austen (5 clips)", wer(refs, hyps)))
    clip = "sense_and_sensibility_01_austen_64kb-0930"
    encs = ["-44k-stereo.flac", ".mp3", ".ogg", ".m4a", ".opus.ogg", "-stereo.webm"]
    hyps = [transcribe(AUDIO / f"{clip}{e}", model, precision) for e in encs]
    rows.append(("encodings (6 of clip 0930)", wer([austen[clip]] * len(encs), hyps)))
    long = Path(tmp) / "long.wav"
    concat([AUDIO / f"{c}.wav" for c in list(austen) * 3], long)
    rows.append(("long (≈ 75 s)", wer([" ".join(refs * 3)], [transcribe(long, model, precision)])))
    return rows


def espeak_sets(precision, tmp):
    rows = []
    for lang in ("fr", "de", "es"):
        refs, hyps, trans, eng, detected = [], [], [], [], 0
        for i, (text, english) in enumerate(SENTENCES[lang]):
            wav = Path(tmp) / f"{lang}{i}.wav"
            subprocess.run(["espeak-ng", "-v", lang, "-w", str(wav), text], check=True)
            hyp = transcribe(wav, "speech-base", precision)
            forced = transcribe(wav, "speech-base", precision, language=lang)
            detected += norm(hyp) == norm(forced)
            refs.append(text), hyps.append(forced)
            trans.append(transcribe(wav, "speech-base", precision, translate=True)), eng.append(english)
        rows.append((f"espeak {lang} ({len(refs)} sentences), transcribed", wer(refs, hyps)))
        rows.append((f"espeak {lang}, translated to English", wer(eng, trans)))
        rows.append((f"espeak {lang}, same text with the language detected", detected / len(refs)))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--precision", default="int8")
    a = ap.parse_args()
    print(f"| set | whisper tiny.en | whisper base |  (precision {a.precision})\n|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        tiny, base = english_sets("speech", a.precision, tmp), english_sets("speech-base", a.precision, tmp)
        for (name, t), (_, b) in zip(tiny, base):
            print(f"| {name} | {t:.3f} | {b:.3f} |")
        for name, b in espeak_sets(a.precision, tmp):
            print(f"| {name} | — | {b:.3f} |")


if __name__ == "__main__":
    main()
