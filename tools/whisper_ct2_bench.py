"""CTranslate2's side of `tandem bench audio`: the same clips through the CTranslate2 runtime
(test-only, `pip install ctranslate2`) with compute types int8 and float32, 2 threads, greedy,
timestamps on as tandem decodes them; the mel features are computed before timing (tandem's
figure includes its own front end). Prints the median seconds of `-r` rounds and the real-time
factor per compute type.

Run: python3 -m tools.whisper_ct2_bench [-r 3] [--multilingual] MODEL_DIR CLIP.wav [CLIP.wav ...]
(--multilingual: prompt <|startoftranscript|><|en|><|transcribe|>, as Whisper base is run.)
"""
import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from tools.whisper_reference import SAMPLE_RATE, log_mel, read_wav


def main():
    import ctranslate2

    ap = argparse.ArgumentParser()
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("--multilingual", action="store_true")
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("clips", nargs="+", type=Path)
    a = ap.parse_args()
    audio = [read_wav(c) for c in a.clips]
    seconds = sum(len(x) for x in audio) / SAMPLE_RATE
    feats = [ctranslate2.StorageView.from_array(log_mel(x).astype(np.float32)[None]) for x in audio]
    vocab = [line.rstrip("\n") for line in open(a.model_dir / "vocabulary.txt", encoding="utf-8")]
    prompt = ["<|startoftranscript|>"] + (["<|en|>", "<|transcribe|>"] if a.multilingual else [])
    prompt = [vocab.index(t) for t in prompt]
    print(f"{len(audio)} files, {seconds:.1f} s of audio · median of {a.r} · 2 threads")
    print("| compute type | seconds | real-time factor |\n|---|---:|---:|")
    for ct in ("int8", "float32"):
        model = ctranslate2.models.Whisper(str(a.model_dir), device="cpu", compute_type=ct, intra_threads=2)
        rounds = []
        for _ in range(a.r):
            start = time.perf_counter()
            for f in feats:
                model.generate(f, [prompt], beam_size=1, max_length=448)
            rounds.append(time.perf_counter() - start)
        med = statistics.median(rounds)
        print(f"| ctranslate2 {ct} | {med:.2f} | {med / seconds:.3f} |")


if __name__ == "__main__":
    main()
