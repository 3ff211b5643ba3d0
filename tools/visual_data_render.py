"""Rendering images of visual data with known content, for tools/visual_data_eval.py: receipts,
tables, code screenshots, bar charts with labels, and slides, in English, German and Chinese.
Each image comes with its ground-truth text (every line drawn) and one question whose answer is
printed in it. The two sets are made by separate scripts with their own fonts, wording and values
(tools/visual_data_dev.py, tools/visual_data_heldout.py); the held-out one was generated before
anything was tuned, and nothing has been tuned on either.
"""
import json
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


def font(path, size):
    return ImageFont.truetype(path, size)


class Canvas:
    def __init__(self, w, h, bg="white"):
        self.img = Image.new("RGB", (w, h), bg)
        self.d = ImageDraw.Draw(self.img)
        self.lines = []

    def text(self, xy, s, f, fill="black"):
        self.d.text(xy, s, font=f, fill=fill)
        self.lines.append(s)


def receipt(c, fonts, words, rng):
    shop, items, total_word = words["shop"], rng.sample(words["items"], 3), words["total"]
    f = font(fonts["sans"], 26)
    c.text((30, 20), shop, f)
    y, total = 80, 0
    for it in items:
        price = rng.randint(120, 990) / 100
        total += price
        c.text((30, y), f"{it} {price:.2f}", f)
        y += 48
    c.text((30, y + 10), f"{total_word} {total:.2f}", f)
    return f"{words['q_total']}", f"{total:.2f}"


def table(c, fonts, words, rng):
    f = font(fonts["sans"], 24)
    names = rng.sample(words["names"], 3)
    vals = [rng.randint(10, 99) for _ in names]
    c.text((30, 20), words["table_title"], f)
    for i, (n, v) in enumerate(zip(names, vals)):
        y = 80 + i * 50
        c.d.rectangle([25, y - 8, 420, y + 38], outline="black")
        c.text((40, y), n, f)
        c.text((300, y), str(v), f)
    k = rng.randrange(3)
    return words["q_table"].format(names[k]), str(vals[k])


def code(c, fonts, words, rng):
    c.img.paste((30, 30, 36), [0, 0, c.img.width, c.img.height])
    f = font(fonts["mono"], 22)
    name = rng.choice(words["functions"])
    lines = [f"def {name}(items):", "    total = 0", "    for x in items:", "        total += x", "    return total"]
    for i, l in enumerate(lines):
        c.text((24, 24 + i * 38), l, f, fill=(220, 220, 200))
    return words["q_code"], name


def chart(c, fonts, words, rng):
    f = font(fonts["sans"], 22)
    title = rng.choice(words["chart_titles"])
    c.text((30, 14), title, f)
    labels = rng.sample(words["months"], 4)
    for i, lab in enumerate(labels):
        h = rng.randint(40, 150)
        x = 40 + i * 110
        c.d.rectangle([x, 230 - h, x + 60, 230], fill=rng.choice(["steelblue", "darkorange", "seagreen"]))
        c.text((x, 240), lab, font(fonts["sans"], 18))
    return words["q_chart"], title


def slide(c, fonts, words, rng):
    title = rng.choice(words["slide_titles"])
    c.text((40, 30), title, font(fonts["sans"], 34))
    for i, b in enumerate(rng.sample(words["bullets"], 3)):
        c.text((60, 110 + i * 46), "• " + b, font(fonts["sans"], 24))
    return words["q_slide"], title


KINDS = {"receipt": receipt, "table": table, "code": code, "chart": chart, "slide": slide}


def render(out, fonts_by_lang, words_by_lang, per_kind, seed):
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    items = []
    for lang, words in words_by_lang.items():
        for kind, fn in KINDS.items():
            for k in range(per_kind):
                c = Canvas(520, 300)
                q, a = fn(c, fonts_by_lang[lang], words, rng)
                name = f"{lang}-{kind}-{k}.png"
                c.img.save(out / "images" / name)
                items.append({"image": name, "lang": lang, "kind": kind, "lines": c.lines,
                              "question": q, "answer": a})
    (out / "truth.json").write_text(json.dumps(items, ensure_ascii=False, indent=1) + "\n")
    print(f"{len(items)} images in {out}")
