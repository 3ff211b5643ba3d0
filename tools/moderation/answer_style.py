#!/usr/bin/env python3
"""How the moderation head reads ANSWERS: a hand-written probe of 30 harmful sentences written as
an answer would be (instructions, threats, slurs, explicit text; 2-4 per category, nothing
actionable) and 30 harmless answer sentences on the same touchy topics (`answer_style.jsonl`).
It measures what `--moderate output` can catch; it is never fitted or calibrated on.

    tandem embed --model mini tools/moderation/answer_style.jsonl > answer_style.emb.jsonl
    python3 -m tools.moderation.answer_style answer_style.emb.jsonl crates/safety/data/moderation_head.json

Prints, at the input and at the output threshold, how many of each half are flagged, and each
sentence's logit. Needs numpy.
"""

import json
import sys
from pathlib import Path

from tools.moderation.calibrate_output import scores


def main(emb_path, head_path):
    import numpy as np
    head = json.load(open(head_path))
    rows = [json.loads(l) for l in open(emb_path) if l.strip()]
    s = scores(head, rows)
    t = head["heads"]["flagged"]["threshold"]
    thresholds = {"input": float(np.log(t / (1 - t))), "output": head["output_threshold_logit"]}
    harmful = np.array([r["harmful"] for r in rows])
    for name, logit in thresholds.items():
        cut = s >= logit
        print(f"{name} threshold (logit {logit:.2f}): harmful flagged {cut[harmful].sum()}/{harmful.sum()}, "
              f"harmless flagged {cut[~harmful].sum()}/{(~harmful).sum()}")
    for r, v in sorted(zip(rows, s), key=lambda rv: -rv[1]):
        print(f"{v:7.2f} {'H' if r['harmful'] else '-'} {r.get('category') or '':24s} {r['text'][:90]}")


if __name__ == "__main__":
    main(*sys.argv[1:])
