"""Recognition on labelled photos: scikit-image 0.26.0's sample photos (CC0 / public domain, read
from its wheel), each with the ImageNet classes that count as right and the words that count as
naming the object. Per photo: the classifier's top-1 / top-5 (via POST /perceive, detail low) and,
for each tier, whether its answer to "What is in this image? Answer in a few words." names it.
Nothing here was tuned on these photos.

Run against `tandem serve --models mini,flagship` (default http://127.0.0.1:8080):
    python3 -m tools.vision_recognition [URL]
"""
import base64
import json
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

# photo → (ImageNet classes that are right, words that name it)
PHOTOS = {
    "chelsea.png": ({"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}, ["cat", "kitten"]),
    "coffee.png": ({"espresso", "cup", "coffee mug"}, ["coffee", "espresso", "cup", "mug"]),
    "rocket.jpg": ({"missile", "projectile", "space shuttle"}, ["rocket", "missile", "shuttle", "launch"]),
    "motorcycle_left.png": ({"moped", "motor scooter", "crash helmet", "disc brake"},
                            ["motorcycle", "motorbike", "scooter", "moped", "bike"]),
    "camera.png": ({"tripod", "reflex camera", "Polaroid camera"}, ["camera", "photographer", "tripod"]),
    "clock_motion.png": ({"wall clock", "analog clock"}, ["clock"]),
    "horse.png": ({"sorrel"}, ["horse"]),
    "astronaut.png": (set(), ["astronaut", "space suit", "spacesuit"]),  # no ImageNet class for it
}
QUESTION = "What is in this image? Answer in a few words."


def photos():
    d = Path(tempfile.mkdtemp())
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(d),
                    "scikit-image==0.26.0"], check=True)
    wheel = next(d.glob("scikit_image-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        return {name: z.read(f"skimage/data/{name}") for name in PHOTOS}


def post(url, path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def main():
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
    rows, score = [], {"top1": 0, "top5": 0, "mini": 0, "flagship": 0, "labelled": 0}
    for name, data in photos().items():
        right, words = PHOTOS[name]
        mime = "image/jpeg" if name.endswith(".jpg") else "image/png"
        data_url = f"data:{mime};base64," + base64.b64encode(data).decode()
        p = post(url, "/perceive", {"image_url": {"url": data_url, "detail": "low"}})
        labels = [l["name"] for l in p["labels"]]
        top1, top5 = bool(right) and labels[0] in right, bool(right & set(labels[:5]))
        if right:
            score["labelled"] += 1
            score["top1"] += top1
            score["top5"] += top5
        row = {"photo": name, "labels": [f"{l['name']} {l['value']:.0%}" for l in p["labels"]],
               "top1": top1 if right else None, "top5": top5 if right else None}
        for tier in ("mini", "flagship"):
            r = post(url, "/v1/chat/completions", {
                "model": tier, "temperature": 0, "max_tokens": 40, "messages": [{"role": "user", "content": [
                    {"type": "text", "text": QUESTION}, {"type": "image_url", "image_url": {"url": data_url, "detail": "low"}}]}]})
            answer = r["choices"][0]["message"]["content"]
            named = any(w in answer.lower() for w in words)
            score[tier] += named
            row[tier] = {"named": named, "answer": answer}
        rows.append(row)
        print(json.dumps(row), flush=True)
    n = len(rows)
    print(f"\nclassifier: top-1 {score['top1']}/{score['labelled']}, top-5 {score['top5']}/{score['labelled']} "
          f"(labelled photos); tiers naming the object: mini {score['mini']}/{n}, flagship {score['flagship']}/{n}")
    print("\n| photo | classifier's labels | top-1 | top-5 | mini | flagship |\n|---|---|---|---|---|---|")
    yes = lambda v: "–" if v is None else ("yes" if v else "no")
    for r in rows:
        print(f"| {r['photo']} | {', '.join(r['labels'])} | {yes(r['top1'])} | {yes(r['top5'])} | "
              f"{yes(r['mini']['named'])}: “{r['mini']['answer'][:60]}” | {yes(r['flagship']['named'])}: “{r['flagship']['answer'][:60]}” |")


if __name__ == "__main__":
    main()
