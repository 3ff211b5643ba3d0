"""easy-VQA (`easy-vqa==1.0`: 64 × 64 images of one coloured shape, 13 answers) through the
perception stage: a fixed, stratified sample of its test questions — 100 colour, 100 shape and
100 yes/no (seed 0) — asked of each tier with the image (`detail` low), answers compared with the
expected word. Resumable: results append to a JSONL file and done questions are skipped.
Reported as it is: shape questions are not what an ImageNet classifier answers.

Run against `tandem serve --models mini,flagship`:
    python3 -m tools.easy_vqa_eval [URL] [RESULTS.jsonl] [SPLIT] [PER_TYPE]
(SPLIT `test`, the measurement, or `train`, for developing changes; PER_TYPE 100.)
"""
import base64
import collections
import json
import random
import re
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

COLOURS = {"red", "green", "blue", "black", "gray", "teal", "brown", "yellow"}
SHAPES = {"circle", "rectangle", "triangle"}
PER_TYPE = 100
TIERS = ("mini", "flagship")


def kind(answer):
    return "colour" if answer in COLOURS else "shape" if answer in SHAPES else "yes/no"


def dataset(split):
    d = Path(tempfile.mkdtemp())
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(d), "easy-vqa==1.0"],
                   check=True)
    z = zipfile.ZipFile(next(d.glob("easy_vqa-*.whl")))
    questions = json.loads(z.read(f"easy_vqa/data/{split}/questions.json"))
    return questions, lambda i: z.read(f"easy_vqa/data/{split}/images/{i}.png")


def sample(questions, per_type):
    by = collections.defaultdict(list)
    for n, (q, a, img) in enumerate(questions):
        by[kind(a)].append((n, q, a, img))
    rng = random.Random(0)
    return [x for k in ("colour", "shape", "yes/no") for x in rng.sample(by[k], per_type)]


def first_word(answer):
    words = re.findall(r"[a-z]+", answer.lower())
    return {"grey": "gray", "square": "rectangle"}.get(words[0], words[0]) if words else ""


def ask(url, tier, question, png):
    body = {"model": tier, "temperature": 0, "max_tokens": 8, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode(),
                                            "detail": "low"}},
        {"type": "text", "text": question + " Answer with one word."}]}]}
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())["choices"][0]["message"]["content"]


def main():
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "easy_vqa_results.jsonl")
    done = {(r["n"], r["tier"]) for r in map(json.loads, out.read_text().splitlines())} if out.exists() else set()
    split = sys.argv[3] if len(sys.argv) > 3 else "test"
    per_type = int(sys.argv[4]) if len(sys.argv) > 4 else PER_TYPE
    questions, image = dataset(split)
    with out.open("a") as f:
        for n, q, a, img in sample(questions, per_type):
            for tier in TIERS:
                if (n, tier) in done:
                    continue
                answer = ask(url, tier, q, image(img))
                f.write(json.dumps({"n": n, "tier": tier, "type": kind(a), "question": q, "expected": a,
                                    "answer": answer, "right": first_word(answer) == a}) + "\n")
                f.flush()
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    print("| tier | colour | shape | yes/no | all |\n|---|---:|---:|---:|---:|")
    for tier in TIERS:
        mine = [r for r in rows if r["tier"] == tier]
        acc = lambda rs: f"{sum(r['right'] for r in rs) / max(len(rs), 1):.0%} ({sum(r['right'] for r in rs)}/{len(rs)})"
        print(f"| {tier} | " + " | ".join(acc([r for r in mine if r["type"] == t]) for t in ("colour", "shape", "yes/no"))
              + f" | {acc(mine)} |")


if __name__ == "__main__":
    main()
