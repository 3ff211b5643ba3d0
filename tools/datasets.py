"""The hand-written training and evaluation texts, read from `tools/data/*.jsonl` (one object per line),
in the order and grouping the scripts were written against."""
import json
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def rows(name):
    with open(DATA / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def written(round_=None):
    """Harmful requests written per OpenAI category: {category: [text]} of one round, or of every round
    merged in order (`round_=None`): later rounds extend a category's list or add a category at the end."""
    out = {}
    for r in rows("moderation_written.jsonl"):
        if round_ is None or r["round"] == round_:
            out.setdefault(r["category"], []).append(r["text"])
    return out


def lookalike(rounds):
    """Harmless requests whose words sound harmful, of the given rounds (1-3: `train_written`, 4: session 9)."""
    return [r["text"] for r in rows("moderation_lookalike.jsonl") if r["round"] in rounds]


def benign_requests():
    return [r["text"] for r in rows("moderation_benign_requests.jsonl")]


def benign_form(split):
    """Harmless requests in a jailbreak's form: `train`, `eval` (never trained on) or `train_more`."""
    return [r["text"] for r in rows("attack_benign_form.jsonl") if r["split"] == split]
