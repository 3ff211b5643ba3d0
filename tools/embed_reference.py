"""The independent reference for the sentence encoder: all-MiniLM-L6-v2 in numpy (float64, exact
erf GELU), token ids from the model's own tokenizer.json run by the `tokenizers` package
(truncated to 256 as sentence-transformers does), mean pooling, L2 normalisation.

Writes tests/golden/minilm_reference.json: 200 texts (sentences from Debian package READMEs on
this machine, plus hand-written edge cases: accents, CJK, punctuation, emoji, a text past 256
word pieces), their ids, and their vectors as little-endian float16, base64.

Run: python3 -m tools.embed_reference MODEL_DIR [OUT]   (needs numpy, scipy, tokenizers, safetensors)
"""
import base64
import gzip
import json
import re
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from scipy.special import erf
from tokenizers import Tokenizer

MAX_TOKENS = 256

EDGE_CASES = [
    "Hello, world!",
    "Café crème brûlée à la façon d'Éloïse.",
    "北京是中国的首都。",
    "東京タワーは333メートルです",
    "Emoji 🙂 and symbols ™ © ® ≥ ≤ → ∞",
    "   leading and trailing spaces   ",
    "UPPER lower MiXeD CaSe",
    "tabs\tand\nnewlines\r\nmixed",
    "e-mail: someone@example.com, url: https://example.org/path?q=1&r=2",
    "Numbers: 3.14159, 2,718, -42, 1e-9, 0x1F",
    "unaffable antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "Ünïcödé ñ ø å ß œ",
    "\"Quoted\" 'single' «guillemets» „low“ — dash – en",
    "a",
    "?!",
    "def moving_average(values, window): return sum(values[-window:]) / window",
    "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) > 1;",
    " ".join(["The quick brown fox jumps over the lazy dog."] * 40),
    "Zero\u200bwidth space and soft\u00adhyphen",
    "Control\u0007char and replacement \ufffd char",
]


def doc_sentences(limit):
    """Sentences of 6-60 words from the machine's package READMEs, in a fixed order."""
    out, seen = [], set()
    for p in sorted(Path("/usr/share/doc").glob("*/README*")):
        try:
            raw = gzip.open(p).read() if p.suffix == ".gz" else p.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError, EOFError):
            continue
        text = re.sub(r"\s+", " ", text)
        for s in re.split(r"(?<=[.!?])\s+", text):
            words = s.split()
            if 6 <= len(words) <= 60 and s not in seen and re.search(r"[a-z]{3}", s):
                seen.add(s)
                out.append(s)
                break  # one per file keeps the set varied
        if len(out) >= limit:
            break
    return out


def layer_norm(x, w, b, eps=1e-12):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


def forward(W, ids, layers=6, heads=12):
    g = lambda k: W[k].astype(np.float64)
    n = len(ids)
    x = g("embeddings.word_embeddings.weight")[ids] + g("embeddings.position_embeddings.weight")[:n]
    x = x + g("embeddings.token_type_embeddings.weight")[0]
    x = layer_norm(x, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"))
    for i in range(layers):
        p = f"encoder.layer.{i}."
        lin = lambda name, t: t @ g(p + name + ".weight").T + g(p + name + ".bias")
        q, k, v = (lin(f"attention.self.{n_}", x) for n_ in ("query", "key", "value"))
        hd = x.shape[1] // heads
        split = lambda t: t.reshape(n, heads, hd).transpose(1, 0, 2)
        s = split(q) @ split(k).transpose(0, 2, 1) / np.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ split(v)).transpose(1, 0, 2).reshape(n, -1)
        x = layer_norm(x + lin("attention.output.dense", ctx),
                       g(p + "attention.output.LayerNorm.weight"), g(p + "attention.output.LayerNorm.bias"))
        h = lin("intermediate.dense", x)
        h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
        x = layer_norm(x + lin("output.dense", h), g(p + "output.LayerNorm.weight"), g(p + "output.LayerNorm.bias"))
    m = x.mean(0)
    return m / np.linalg.norm(m)


def main():
    model = Path(sys.argv[1])
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "tests/golden/minilm_reference.json")
    tok = Tokenizer.from_file(str(model / "tokenizer.json"))
    tok.no_padding()  # the file pads to 128; sentence-transformers pads only within a batch and masks it
    tok.enable_truncation(MAX_TOKENS)
    W = load_file(str(model / "model.safetensors"))
    texts = EDGE_CASES + doc_sentences(200 - len(EDGE_CASES))
    items = []
    for t in texts:
        ids = tok.encode(t).ids
        vec = forward(W, ids).astype("<f2")
        items.append({"text": t, "ids": ids, "vector_f16_b64": base64.b64encode(vec.tobytes()).decode()})
    out.write_text(json.dumps({"model": "all-MiniLM-L6-v2", "max_tokens": MAX_TOKENS, "items": items},
                              ensure_ascii=False, indent=0) + "\n")
    print(f"{len(items)} texts -> {out}")


if __name__ == "__main__":
    main()
