#!/usr/bin/env python3
"""Builds the committed short-answer items (crates/eval/data/qa/items.jsonl) from reasoning-gym's generators.

The router (`model: "auto"`) learns from the tiers' results on generative items; these are the short
question-answer part beside HumanEval and BFCL: arithmetic, word problems, counting, dates, strings,
kinship — and trivial sums and products. Generated once, with fixed seeds, in a throwaway venv:

    python3 -m venv /tmp/rg && /tmp/rg/bin/pip install reasoning-gym==0.1.25
    /tmp/rg/bin/python tools/make_qa_items.py crates/eval/data/qa/items.jsonl

Each line: {"id", "source" (the generator), "question", "answer"}. `tandem eval qa` asks each question
with the instruction in `tandem_eval::qa::instruction` and scores the reply's final answer.
"""

import json
import sys

import reasoning_gym

SEED = 20261206
PER_SOURCE = 25
SOURCES = [
    "basic_arithmetic",
    "chain_sum",
    "gsm_symbolic",
    "leg_counting",
    "gcd",
    "lcm",
    "simple_equations",
    "time_intervals",
    "calendar_arithmetic",
    "letter_counting",
    "spell_backward",
    "family_relationships",
]


# Trivial questions both tiers answer ("Calculate 3 + 4."): the router must learn to keep these on
# the mini; the generators' defaults are harder than what people ask in passing.
EASY = {
    "basic_arithmetic_easy": ("basic_arithmetic", dict(min_terms=2, max_terms=2, min_digits=1, max_digits=1,
                                                       operators=("+", "-", "*"), allow_parentheses=False,
                                                       allow_negation=False)),
    "chain_sum_easy": ("chain_sum", dict(min_terms=2, max_terms=2, min_digits=1, max_digits=1, allow_negation=False)),
}


def write(f, name, data):
    for i, x in enumerate(data):
        row = {"id": f"{name}/{i}", "source": name, "question": x["question"], "answer": str(x["answer"])}
        f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(out):
    with open(out, "w") as f:
        for k, source in enumerate(SOURCES):
            write(f, source, reasoning_gym.create_dataset(source, size=PER_SOURCE, seed=SEED + k))
        for k, (name, (source, config)) in enumerate(EASY.items()):
            data = reasoning_gym.create_dataset(source, size=PER_SOURCE, seed=SEED + 100 + k, **config)
            write(f, name, data)


if __name__ == "__main__":
    main(sys.argv[1])
