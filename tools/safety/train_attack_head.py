#!/usr/bin/env python3
"""Trains the prompt-attack head (jailbreaks and injections): one logistic regression over the mini's
text embeddings, in the moderation head's file format.

    python3 -m tools.safety.make_sets DIR      # the sets
    tandem embed --model mini crates/safety/data/attack_train.jsonl > attack_train.emb.jsonl
    tandem embed --model mini crates/safety/data/attack_heldout.jsonl > attack_heldout.emb.jsonl
    python3 -m tools.safety.train_attack_head attack_train.emb.jsonl crates/safety/data/attack_head.json \\
        --eval attack_heldout.emb.jsonl

Features (middle half, final half or both) are chosen by 5-fold cross-validated recall at FPR_TARGET on
the training set; the threshold is the one whose cross-validated false-positive rate on the training
set's non-attacks is FPR_TARGET (a guard that blocks must rarely stop an ordinary request: benign text
far outnumbers attacks). The held-out set is only measured. Needs numpy.
"""

import json
import re
import sys
from pathlib import Path

import numpy as np

from tools.moderation.train_head import balance, choose_features, cv_scores, fit, load, predict

FPR_TARGET = 0.01


def labels(rows):
    return np.array([1.0 if r["attack"] else 0.0 for r in rows])


def main():
    train_path, out_path = sys.argv[1], sys.argv[2]
    eval_path = sys.argv[sys.argv.index("--eval") + 1] if "--eval" in sys.argv else None
    features = choose_features(train_path, lambda r: 1.0 if r["attack"] else 0.0, FPR_TARGET)
    rows, x = load(train_path, features)
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    y = labels(rows)
    s = cv_scores(z, y)
    neg = np.sort(s[y < 0.5])[::-1]
    t = float(neg[int(np.floor(FPR_TARGET * len(neg)))])
    print(f"attack: cv threshold {t:.3f}, cv recall {(s[y > 0.5] > t).mean():.3f}, "
          f"cv false positives {(s[y < 0.5] > t).mean():.3f} of {int((y < 0.5).sum())}")
    w, b = fit(z, y, balance(y))
    head = {"model": "qwen2.5-coder-0.5b-instruct", "features": features, "dim": int(x.shape[1]),
            "mean": mean.tolist(), "std": std.tolist(),
            # Strictly above the cv threshold: the reader flags score >= threshold.
            "heads": {"attack": {"w": w.tolist(), "b": float(b), "threshold": float(np.nextafter(t, 1.0))}},
            "trained_on": Path(train_path).name, "n_train": len(rows)}
    text = json.dumps(head)
    text = re.sub(r"-?\d+\.\d{7,}(e-?\d+)?", lambda m: f"{float(m.group(0)):.7g}", text)
    open(out_path, "w").write(text)
    if eval_path:
        evaluate(json.loads(text), eval_path)


def evaluate(head, path):
    rows, x = load(path, head["features"])
    z = (x - np.array(head["mean"])) / np.array(head["std"])
    h = head["heads"]["attack"]
    flagged = predict(z, (np.array(h["w"]), h["b"])) >= h["threshold"]
    y = labels(rows) > 0.5
    print(f"held-out: recall {flagged[y].mean():.3f} ({flagged[y].sum()}/{y.sum()}), "
          f"false-positive rate {flagged[~y].mean():.3f} ({flagged[~y].sum()}/{(~y).sum()})")
    for src in sorted({r["source"] for r in rows}):
        m = np.array([r["source"] == src for r in rows])
        kind = "attacks" if y[m].all() else "not attacks" if not y[m].any() else "mixed"
        print(f"  {src:22s} {kind:11s} flagged {flagged[m].sum()}/{m.sum()}")


if __name__ == "__main__":
    main()
