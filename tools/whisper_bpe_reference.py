"""The independent reference for tandem's Whisper prompt encoder: tiktoken (test-only,
`pip install tiktoken`) built from the model's own vocabulary.txt — byte-level token strings whose
line numbers are the BPE ranks, the form tiktoken's `gpt2`/`multilingual` encodings take — with
GPT-2's pre-tokenising pattern, as openai-whisper's tokenizer is. Writes the ids of a set of
texts (accents, digits, contractions, punctuation runs, CJK, emoji, spaces) to
tests/golden/whisper_bpe_reference.json.

Run: python3 -m tools.whisper_bpe_reference MODEL_DIR OUT.json
"""
import json
import sys
from pathlib import Path

import tiktoken

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

TEXTS = [
    "Hello world",
    " He might even have been made amiable himself.",
    "Mr. Dashwood's estate; the Norland Park (1811), cold-hearted!",
    "Glossary: ASR, TTS, GPT-4o, WER 3.5%, 128k tokens.",
    "They'll say it's done — we've tried, I'd guess, you're right.",
    "Ça va? Très bien, merci. Größe, Straße, naïve café.",
    "東京は晴れです。안녕하세요. Привет, мир!",
    "Emoji 🎉🚀 and symbols ©®™ … «quotes» “curly”",
    "   leading spaces and  double  spaces\tand a tab\n\nnew lines  ",
    "1234567890 3.14159 -42 +7 10,000,000",
    "snake_case and camelCase and kebab-case, URLs https://example.com/a?b=c",
    "ALL CAPS SENTENCE WITH NUMBERS 2026",
    "",
    "a",
    "''''' ...... !!!!!",
]


def main():
    model_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    lines = (model_dir / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    # GPT-2's byte ↔ printable-character table.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    to_byte = {chr(c): b for b, c in zip(bs, cs)}
    ranks = {}
    for i, tok in enumerate(lines):
        if tok.startswith("<|") and tok.endswith("|>"):
            break
        if tok and all(ch in to_byte for ch in tok):
            ranks.setdefault(bytes(to_byte[ch] for ch in tok), i)
    enc = tiktoken.Encoding("whisper-vocab", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={})
    items = [{"text": t, "ids": enc.encode(t)} for t in TEXTS]
    out.write_text(json.dumps({"model": model_dir.name, "items": items}, ensure_ascii=False, indent=1) + "\n")
    print(len(items), "texts,", len(ranks), "ranks")


if __name__ == "__main__":
    main()
