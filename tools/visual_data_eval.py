"""Visual data through the perception stage: for each image of a set made by
tools/visual_data_dev.py or tools/visual_data_heldout.py, the OCR character error rate of the
server's engine (POST /perceive, detail high; spaces ignored on both sides, since PP-OCRv4's
recogniser drops most of them) and, per tier, whether the answer to the image's question contains
the printed answer. Run once per OCR engine (`tandem serve --models mini,flagship --ocr ppocr`,
then `--ocr tesseract`):
    python3 -m tools.visual_data_eval SET_DIR [URL]
"""
import base64
import collections
import json
import sys
import urllib.request
from pathlib import Path

TIERS = ("mini", "flagship")


def post(url, path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def squash(s):
    return "".join(s.split()).lower()


def edits(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def main():
    root, url = Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:8080"
    truth = json.loads((root / "truth.json").read_text())
    cer = collections.defaultdict(lambda: [0, 0])
    right = collections.defaultdict(lambda: [0, 0])
    engine = None
    for it in truth:
        data = "data:image/png;base64," + base64.b64encode((root / "images" / it["image"]).read_bytes()).decode()
        img = {"url": data, "detail": "high"}
        p = post(url, "/perceive", {"image_url": img})
        engine = p["engines"][-1]
        want, got = squash("".join(it["lines"])), squash("".join(l["text"] for l in p["text"] or []))
        for key in (it["lang"], "all"):
            cer[key][0] += edits(want, got)
            cer[key][1] += len(want)
        for tier in TIERS:
            r = post(url, "/v1/chat/completions", {"model": tier, "temperature": 0, "max_tokens": 24, "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": img}, {"type": "text", "text": it["question"]}]}]})
            answer = r["choices"][0]["message"]["content"] or ""
            ok = squash(it["answer"]) in squash(answer)
            for key in ((tier, it["lang"]), (tier, it["kind"]), (tier, "all")):
                right[key][0] += ok
                right[key][1] += 1
            print(json.dumps({"image": it["image"], "tier": tier, "expected": it["answer"], "answer": answer, "right": ok},
                             ensure_ascii=False), flush=True)
    print(f"\nOCR ({engine}) character error rate, spaces ignored: " +
          ", ".join(f"{k} {e / max(n, 1):.1%}" for k, (e, n) in sorted(cer.items())))
    keys = sorted({k for _, k in right})
    print("| tier | " + " | ".join(keys) + " |\n|---|" + "---:|" * len(keys))
    for tier in TIERS:
        print(f"| {tier} | " + " | ".join(f"{right[(tier, k)][0]}/{right[(tier, k)][1]}" for k in keys) + " |")


if __name__ == "__main__":
    main()
