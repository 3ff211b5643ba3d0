#!/usr/bin/env python3
"""Trains the `auto` router head: two logistic regressions over the mini's embedding of a request's
routing text, predicting whether the mini's answer passes and whether the flagship's does.

    tandem eval humaneval --model mini; tandem eval humaneval --model flagship
    tandem eval qa --model mini;        tandem eval qa --model flagship
    tandem eval bfcl --label tandem-mini-enforced ...   (tools/bfcl_compare.sh runs both tiers)
    tandem eval route --dump route.jsonl
    python3 -m tools.router.train_head route.jsonl crates/server/data/router_head.json
    tandem eval route          # the held-out half, with the compiled head (rebuild first)

Only the dump's training half is read for fitting, for choosing the features and regularisation
(5-fold cross-validated log-loss) and for the threshold; the held-out half is scored once at the
end, as a check beside `tandem eval route`. The embeddings are standardised, projected on their
first K principal components (of the training half), fitted by Newton's method with an L2 penalty,
and the weights mapped back to the standardised space, so the server computes w · z + b on
[896] features. A request goes to the flagship when P(flagship passes) − P(mini passes) is above
the threshold that puts the out-of-fold routing furthest above the straight line between the tiers
(at no more than the flagship's cost). The threshold is tuned on out-of-fold probabilities — each
from a fit that never saw its item, as the served head never saw a request — not on the final
fit's in-sample ones, which are more extreme. Needs numpy.
"""

import json
import sys

import numpy as np

FEATURES = ("mid", "final", "both")
COMPONENTS = (4, 8, 16, 32, 64)
L2 = (10.0, 100.0, 1000.0)
FOLDS = 5
SEED = 20261206


def feature_part(x, features):
    half = x.shape[-1] // 2
    return {"mid": x[:, :half], "final": x[:, half:], "both": x}[features]


def fit(u, y, l2):
    """L2-regularised logistic regression by Newton's method: weights [k + 1] (bias last)."""
    n, k = u.shape
    ua = np.hstack([u, np.ones((n, 1))])
    w = np.zeros(k + 1)
    reg = np.full(k + 1, l2)
    reg[-1] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-(ua @ w)))
        g = ua.T @ (p - y) + reg * w
        h = (ua * (p * (1 - p))[:, None]).T @ ua + np.diag(reg + 1e-9)
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def prob(u, w):
    return 1 / (1 + np.exp(-(u @ w[:-1] + w[-1])))


class Space:
    """Standardisation and principal components of a training set."""

    def __init__(self, x, k):
        self.mean = x.mean(0)
        self.std = x.std(0) + 1e-6
        z = (x - self.mean) / self.std
        _, _, vt = np.linalg.svd(z, full_matrices=False)
        self.v = vt[:k].T  # [d, k]

    def project(self, x):
        return ((x - self.mean) / self.std) @ self.v


def fit_pair(x, ys, yl, k, l2):
    space = Space(x, k)
    u = space.project(x)
    return space, fit(u, ys, l2), fit(u, yl, l2)


def log_loss(p, y):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))


def folds(n):
    order = np.random.default_rng(SEED).permutation(n)
    return [order[i::FOLDS] for i in range(FOLDS)]


def out_of_fold(x, ys, yl, k, l2):
    """Cross-validated P(small passes), P(large passes) for every training row."""
    ps, pl = np.zeros(len(ys)), np.zeros(len(ys))
    for test in folds(len(ys)):
        train = np.setdiff1d(np.arange(len(ys)), test)
        space, ws, wl = fit_pair(x[train], ys[train], yl[train], k, l2)
        u = space.project(x[test])
        ps[test], pl[test] = prob(u, ws), prob(u, wl)
    return ps, pl


def points(rows, escalate):
    """(router, small-only, large-only) as (pass rate, mean cost)."""
    sp = np.array([r["small_passed"] for r in rows], float)
    lp = np.array([r["large_passed"] for r in rows], float)
    sc = np.array([r["small_cost"] for r in rows])
    lc = np.array([r["large_cost"] for r in rows])
    rc = np.array([r["route_cost"] for r in rows])
    router = (np.where(escalate, lp, sp).mean(), (np.where(escalate, lc, sc) + rc).mean())
    return router, (sp.mean(), sc.mean()), (lp.mean(), lc.mean())


def above_line(rows, escalate):
    (q, c), (qs, cs), (ql, cl) = points(rows, escalate)
    return q - (qs + (ql - qs) * (c - cs) / max(cl - cs, 1e-12)), c <= cl


def best_threshold(rows, gain):
    candidates = np.concatenate([[np.inf], np.unique(gain)])
    best = (-np.inf, np.inf)
    for t in candidates:
        g, affordable = above_line(rows, gain > t)
        if affordable and g > best[0]:
            best = (g, t)
    return best


def main():
    dump, out = sys.argv[1], sys.argv[2]
    rows = [json.loads(l) for l in open(dump) if l.strip()]
    train = [r for r in rows if r["half"] == "train"]
    held = [r for r in rows if r["half"] == "held_out"]
    emb = lambda rs: np.array([r["embedding"] for r in rs], float)
    ys = np.array([r["small_passed"] for r in train], float)
    yl = np.array([r["large_passed"] for r in train], float)
    x_all = emb(train)
    results = []
    for features in FEATURES:
        x = feature_part(x_all, features)
        for k in COMPONENTS:
            for l2 in L2:
                ps, pl = out_of_fold(x, ys, yl, k, l2)
                loss = log_loss(ps, ys) + log_loss(pl, yl)
                results.append((loss, features, k, l2, ps, pl))
                print(f"{features:5} k={k:3} l2={l2:5}: cv log-loss {loss:.4f}", file=sys.stderr)
    loss, features, k, l2, ps, pl = min(results, key=lambda r: r[0])
    gain_oof, threshold = best_threshold(train, pl - ps)
    print(f"chosen: {features} k={k} l2={l2} (cv log-loss {loss:.4f}); threshold {threshold:.4f} "
          f"puts the out-of-fold routing {100 * gain_oof:+.1f} points above the line", file=sys.stderr)
    x = feature_part(x_all, features)
    space, ws, wl = fit_pair(x, ys, yl, k, l2)
    head = {
        "model": rows[0]["model"],
        "features": features,
        "dim": x.shape[1],
        "mean": space.mean.tolist(),
        "std": space.std.tolist(),
        "heads": {
            name: {"w": (space.v @ w[:-1]).tolist(), "b": float(w[-1]), "threshold": 0.5}
            for name, w in (("small_passes", ws), ("large_passes", wl))
        },
        "gain_threshold": float(threshold) if np.isfinite(threshold) else 1.0,
        "trained_on": {"items": len(train), "components": k, "l2": l2, "cv_log_loss": loss,
                       "out_of_fold_points_above_line": 100 * gain_oof},
    }
    with open(out, "w") as f:
        json.dump(head, f)
    u = space.project(feature_part(emb(held), features))
    gain = prob(u, wl) - prob(u, ws)
    g, _ = above_line(held, gain > head["gain_threshold"])
    (q, c), (qs, cs), (ql, cl) = points(held, gain > head["gain_threshold"])
    print(f"held-out ({len(held)}): mini {100 * qs:.1f}% ${1000 * cs:.4f}/1k, flagship {100 * ql:.1f}% "
          f"${1000 * cl:.4f}/1k, auto {100 * q:.1f}% ${1000 * c:.4f}/1k "
          f"({100 * np.mean(gain > head['gain_threshold']):.0f}% escalated): {100 * g:+.1f} points", file=sys.stderr)


if __name__ == "__main__":
    main()
