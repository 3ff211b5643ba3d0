"""How often input moderation flags ordinary prose, sentence by sentence and whole.

Reads the attack head's training negatives (crates/safety/data/attack_train.jsonl) of the given
sources, sends each text and each of its sentences to a running `tandem serve` (the mini tier)
through `/v1/moderations`, and prints per source: texts flagged whole, sentences flagged alone,
and the categories. By default training data only (nothing of the held-out sets or of `tandem eval safety`).

    tandem serve --models mini --port 8095 &
    python3 -m tools.moderation.prose_fpr http://127.0.0.1:8095 [--heldout] [SOURCE ...]

Since 2026-12-04 the 70 training passages are also moderation training negatives; `--heldout` reads
the attack head's held-out file instead (its 30 other novel passages, fitted by neither head).

Default sources: book-passages (70 novel excerpts; 30 with --heldout) and moderation-bigbench-mc
(299 questions; none held out).
Needs httpx (tests/conformance/requirements.txt installs it).
"""
import collections
import json
import pathlib
import re
import sys

import httpx

ROOT = pathlib.Path(__file__).resolve().parents[2]


def sentences(text):
    return [s for s in re.split(r"(?<=[.!?])\s+|\n+", text) if len(s.strip()) > 3]


def moderate(client, base, inputs):
    out = []
    for i in range(0, len(inputs), 32):  # the endpoint takes up to 32 strings at once
        r = client.post(base + "/v1/moderations", json={"input": inputs[i:i + 32]})
        r.raise_for_status()
        out.extend(r.json()["results"])
    return out


def main():
    base = sys.argv[1].rstrip("/")
    args = sys.argv[2:]
    heldout = "--heldout" in args
    sources = [a for a in args if a != "--heldout"] or ["book-passages", "moderation-bigbench-mc"]
    name = "attack_heldout" if heldout else "attack_train"
    rows = [json.loads(l) for l in open(ROOT / f"crates/safety/data/{name}.jsonl")]
    with httpx.Client(timeout=600) as c:
        for src in sources:
            docs = [r["text"] for r in rows if r["source"] == src and not r["attack"]]
            if not docs:
                print(f"{src}: no texts")
                continue
            whole = sum(r["flagged"] for r in moderate(c, base, docs))
            n = flagged = with_any = 0
            cats = collections.Counter()
            for t in docs:
                res = moderate(c, base, sentences(t))
                k = sum(r["flagged"] for r in res)
                n, flagged, with_any = n + len(res), flagged + k, with_any + (k > 0)
                for r in res:
                    if r["flagged"]:
                        cats.update(name for name, on in r["categories"].items() if on)
            print(f"{src}: {whole}/{len(docs)} texts flagged whole; {flagged}/{n} sentences flagged alone "
                  f"({100 * flagged / max(n, 1):.1f}%), in {with_any} texts; categories {cats.most_common(5)}")


if __name__ == "__main__":
    main()
