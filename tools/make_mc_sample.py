#!/usr/bin/env python3
"""Builds the committed multiple-choice samples (crates/eval/data/mc/*.jsonl) from BIG-bench's JSON tasks.

The tasks ship in the PyPI source package bigbench 1.0.0 (358 MB):
    pip download --no-deps --no-binary :all: bigbench==1.0.0 -d DIR
    python3 -m tools.make_mc_sample DIR/bigbench-1.0.0.tar.gz crates/eval/data/mc

Each example is formatted as BIG-bench's `default_format_fn` does (task_prefix + example_input_prefix +
input [+ choice_prefix + choices] + example_output_prefix; defaults "\\nQ: ", "\\nA: ", "\\n  choice: ",
append_choices_to_input true). One difference: when choices are appended to the input their order comes from
Python's random.Random seeded per item, not numpy's RandomState. The correct choice is the first one with the
highest target score, as in BIG-bench. Items are drawn with a fixed seed, PER_TASK per task.
"""

import json
import random
import sys
import tarfile

SEED = 20261127
PER_TASK = 60

SUITES = {
    # Language understanding: reasoning and reading in English.
    "understanding": [
        "logical_deduction/three_objects",
        "date_understanding",
        "strategyqa",
        "social_iqa",
        "elementary_math_qa/question_only",
    ],
    # Languages other than English (Swahili, Persian, Kannada, Russian, Swedish/German, Spanish).
    "multilingual": [
        "swahili_english_proverbs",
        "persian_idioms",
        "kannada",
        "english_russian_proverbs",
        "swedish_to_german_proverbs",
        "cryobiology_spanish",
    ],
}


def format_item(task, ex, rng):
    input_prefix = task.get("example_input_prefix", "\nQ: ")
    output_prefix = task.get("example_output_prefix", "\nA: ")
    choice_prefix = task.get("choice_prefix", "\n  choice: ")
    append = task.get("append_choices_to_input", True)
    scores = ex["target_scores"]
    choices = list(scores.keys())
    text = ex["input"]
    if append:
        shown = sorted(choices)
        rng.shuffle(shown)
        text = text + choice_prefix + choice_prefix.join(shown)
    best = max(scores.values())
    answer = next(i for i, c in enumerate(choices) if scores[c] == best)
    context = task.get("task_prefix", "") + input_prefix + text + output_prefix
    return context, choices, answer


def main():
    sdist, out_dir = sys.argv[1], sys.argv[2]
    with tarfile.open(sdist) as tar:
        for suite, names in SUITES.items():
            lines = []
            for name in names:
                path = f"bigbench-1.0.0/bigbench/benchmark_tasks/{name}/task.json"
                task = json.load(tar.extractfile(path))
                examples = [(i, e) for i, e in enumerate(task["examples"]) if "target_scores" in e]
                # An item needs a best choice and no empty choice (one cryobiology_spanish example has "").
                examples = [
                    (i, e)
                    for i, e in examples
                    if len(set(e["target_scores"].values())) > 1 and all(c.strip() for c in e["target_scores"])
                ]
                rng = random.Random(f"{SEED}/{name}")
                picked = sorted(rng.sample(examples, min(PER_TASK, len(examples))), key=lambda p: p[0])
                for i, ex in picked:
                    context, choices, answer = format_item(task, ex, random.Random(f"{SEED}/{name}/{i}"))
                    lines.append(
                        {
                            "id": f"{name}/{i}",
                            "task": name,
                            "context": context,
                            "choices": choices,
                            "answer": answer,
                        }
                    )
            with open(f"{out_dir}/{suite}.jsonl", "w") as f:
                for l in lines:
                    f.write(json.dumps(l, ensure_ascii=False) + "\n")
            print(suite, len(lines))


if __name__ == "__main__":
    main()
