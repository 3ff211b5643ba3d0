"""A small retrieval check for docs/api.md: is all-MiniLM-L6-v2 (served at /v1/embeddings) a better
retriever than the mini's hidden-state means (`tandem embed`)? Queries and passages come from the
Debian package READMEs on this machine: for each README, the query is its first sentence and the
passage the next ~80 words; each query must find its own passage among all of them. Prints
recall@1 and recall@5 of both.

Run (a server on the default port with embeddings on):
  python3 -m tools.retrieval_check [TANDEM_BIN] [BASE_URL]
"""
import gzip
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import numpy as np


def pairs(limit=150):
    out = []
    for p in sorted(Path("/usr/share/doc").glob("*/README*")):
        try:
            raw = gzip.open(p).read() if p.suffix == ".gz" else p.read_bytes()
            text = re.sub(r"\s+", " ", raw.decode("utf-8"))
        except (OSError, UnicodeDecodeError, EOFError):
            continue
        sents = [s for s in re.split(r"(?<=[.!?])\s+", text) if re.search(r"[a-z]{3}", s)]
        if len(sents) < 4:
            continue
        query = sents[0]
        words = " ".join(sents[1:]).split()[:80]
        if 6 <= len(query.split()) <= 40 and len(words) >= 40:
            out.append((query, " ".join(words)))
        if len(out) >= limit:
            break
    return out


def recall(q, p, k):
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    ranks = np.argsort(-(q @ p.T), axis=1)[:, :k]
    return float(np.mean([i in ranks[i] for i in range(len(q))]))


def minilm(base, texts):
    r = httpx.post(base + "/v1/embeddings", json={"model": "text-embedding-3-small", "input": texts,
                                                 "encoding_format": "float"}, timeout=600)
    r.raise_for_status()
    return np.array([d["embedding"] for d in r.json()["data"]])


def mini(binary, texts):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    out = subprocess.run([binary, "embed", "-m", "mini", f.name], capture_output=True, text=True, check=True)
    return np.array([json.loads(x)["embedding"] for x in out.stdout.splitlines() if x.strip()])


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/tandem"
    base = sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:8080"
    ps = pairs()
    queries, passages = [q for q, _ in ps], [p for _, p in ps]
    print(f"{len(ps)} query/passage pairs from /usr/share/doc READMEs")
    for name, fn in (("all-MiniLM-L6-v2", lambda t: minilm(base, t)), ("mini hidden-state mean", lambda t: mini(binary, t))):
        q, p = fn(queries), fn(passages)
        print(f"{name}: recall@1 {recall(q, p, 1):.3f}, recall@5 {recall(q, p, 5):.3f}")


if __name__ == "__main__":
    main()
