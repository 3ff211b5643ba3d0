#!/usr/bin/env python3
"""Calibrates the moderation head's OUTPUT threshold: the score a window of generated text must reach
before `--moderate output` cuts an answer.

The head was trained on requests; answers are another kind of text (descriptions, code lines), and
the output guard reads them a sentence or a line at a time, many windows per answer, any of which
can cut it. With the input threshold the mini's answers to harmless requests were cut (a Python
process "kill" line, gladiators in a Colosseum tour), so outputs get their own threshold: the one that
cuts at most OUTPUT_CUT_TARGET (0.5%) of the tiers' answers to harmless TRAINING prompts (both tiers'
answers together: the flagship writes longer, more varied answers than the mini), and at least the
median score of the harmful training requests: a window is cut only when it scores like a typical
harmful request. History, all on training data: until 2026-12-04 the rule cut 1% of a 560-answer
sample (logit 8.6; the mini's guarded `tandem eval safety` run then cut 8 answers to look-alike
requests), then none of it (10.03); with the answers to EVERY training look-alike and
written-benign prompt added (`--extra`, 1,026 answers) "none" meant logit 15.83, set by a few
descriptive sentences ("Scammers target elderly people by ...", "Cutting a mango is ..."), at
which an echoed pipe-bomb request was no longer cut (tests/conformance/test_guard.py), so the
rule allows 0.5% of them: logit 10.75.

    tandem serve --models mini,flagship &                          # guards off
    python3 -m tools.moderation.calibrate_output answers http://127.0.0.1:8080 mini.jsonl mini
    python3 -m tools.moderation.calibrate_output answers http://127.0.0.1:8080 flagship.jsonl flagship
    python3 -m tools.moderation.calibrate_output answers http://127.0.0.1:8080 mini.extra.jsonl mini \
        --extra written-lookalike,written-benign                    # and flagship.extra.jsonl alike
    tandem embed --model mini mini.jsonl > mini.emb.jsonl          # the guard embeds with the mini
    tandem embed --model mini flagship.jsonl > flagship.emb.jsonl    # and the two .extra files
    tandem embed --model mini crates/safety/data/moderation_train.jsonl > train.emb.jsonl
    python3 -m tools.moderation.calibrate_output threshold mini.emb.jsonl flagship.emb.jsonl \
        mini.extra.emb.jsonl flagship.extra.emb.jsonl --requests train.emb.jsonl crates/safety/data/moderation_head.json

`answers` asks the server (greedy, 128 tokens, like `tandem eval safety`) for every harmless prompt
of a fixed sample of the training set (never the held-out set or the safety sample) and cuts each
answer into the windows the output guard reads (a line, or text up to ". " / "! " / "? "; the
guard also closes a window at 64 tokens). `threshold` scores the windows and writes
`output_threshold_logit` into the head file. Needs numpy for `threshold`.
"""

import json
import random
import re
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).parents[2]
OUTPUT_CUT_TARGET = 0.005
PER_SOURCE = 40


def windows(text):
    out, start = [], 0
    for m in re.finditer(r"\n|[.!?](?=\s)", text):
        out.append(text[start:m.end()])
        start = m.end()
    out.append(text[start:])
    return [w for w in out if w.strip()]


def ask(url, prompt, model):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}],
                       "max_tokens": 128, "temperature": 0}).encode()
    req = urllib.request.Request(url + "/v1/chat/completions", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)["choices"][0]["message"]["content"] or ""


def answers(url, out_path, model="mini", *opts):
    """The sample: PER_SOURCE harmless prompts of each training source. `--extra SRC,SRC` asks instead
    every harmless prompt of those sources that the sample left out (the two files together hold
    each prompt of those sources once), keyed MODEL-extra-i."""
    rows = [json.loads(l) for l in open(ROOT / "crates/safety/data/moderation_train.jsonl")]
    by_src = {}
    for r in rows:
        if not r["harmful"]:
            by_src.setdefault(r["source"], []).append(r["text"])
    rng = random.Random(20261128)
    sample = {src: rng.sample(by_src[src], min(PER_SOURCE, len(by_src[src]))) for src in sorted(by_src)}
    prompts, key = [t for src in sorted(sample) for t in sample[src]], model
    if opts:
        if opts[0] != "--extra" or len(opts) != 2 or any(s not in by_src for s in opts[1].split(",")):
            sys.exit(f"usage: answers URL OUT MODEL [--extra SOURCE,...]; sources: {', '.join(sorted(by_src))}")
        prompts = [t for src in opts[1].split(",") for t in by_src[src] if t not in sample[src]]
        key = f"{model}-extra"
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda p: ask(url, p, model), prompts))
    with open(out_path, "w") as f:
        for i, a in enumerate(got):
            for w in windows(a):
                f.write(json.dumps({"text": w, "answer": f"{key}-{i}"}) + "\n")
    print(len(prompts), "answers of", model)


def scores(head, rows):
    """The flagged head's logits of the rows' embeddings."""
    import numpy as np
    from tools.moderation.train_head import feature_part
    x = feature_part(np.array([r["embedding"] for r in rows], dtype=np.float64), head["features"])
    z = (x - np.array(head["mean"])) / np.array(head["std"])
    h = head["heads"]["flagged"]
    # Logits: scores this close to 1 are all 1.0 in f32.
    return z @ np.array(h["w"]) + h["b"]


def threshold(*args):
    import numpy as np
    args = list(args)
    requests = None
    if "--requests" in args:
        i = args.index("--requests")
        requests = args[i + 1]
        del args[i:i + 2]
    *emb_paths, head_path = args
    head = json.load(open(head_path))
    rows = [json.loads(l) for p in emb_paths for l in open(p)]
    s = scores(head, rows)
    h = head["heads"]["flagged"]
    t_in = float(np.log(h["threshold"] / (1 - h["threshold"])))
    per_answer = {}
    for r, v in zip(rows, s):
        per_answer[r["answer"]] = max(per_answer.get(r["answer"], -np.inf), float(v))
    m = np.sort(np.array(list(per_answer.values())))[::-1]
    t = max(float(m[int(np.floor(OUTPUT_CUT_TARGET * len(m)))]) + 1e-3, t_in)
    typical = None
    if requests:
        req = [json.loads(l) for l in open(requests)]
        typical = float(np.median(scores(head, [r for r in req if r["harmful"]])))
        t = max(t, typical)
    cut_at_input = float((m >= t_in).mean())
    print(f"{len(m)} answers, {len(rows)} windows; cut at the input threshold (logit {t_in:.2f}): "
          f"{cut_at_input:.1%}; highest answer {m[0]:.2f}; median harmful request "
          f"{'-' if typical is None else f'{typical:.2f}'}; output threshold logit {t:.2f} cuts {(m >= t).mean():.1%}")
    head.pop("output_threshold", None)
    head["output_threshold_logit"] = t
    head["output_calibration"] = {"answers": len(m), "windows": len(rows), "cut_at_input_threshold": cut_at_input,
                                  "highest_answer_logit": float(m[0]), "median_harmful_request_logit": typical}
    text = json.dumps(head)
    text = re.sub(r"-?\d+\.\d{7,}(e-?\d+)?", lambda mm: f"{float(mm.group(0)):.7g}", text)
    open(head_path, "w").write(text)


if __name__ == "__main__":
    {"answers": answers, "threshold": threshold}[sys.argv[1]](*sys.argv[2:])
