"""The independent reference for tandem's PP-OCR reader: rapidocr-onnxruntime 1.4.4 itself
(test-only: `pip install --no-deps rapidocr-onnxruntime==1.4.4 opencv-python-headless pyclipper
shapely onnxruntime`), run on the test images; each line's box, text and confidence.

Writes tests/golden/ppocr_reference.json.
Run: python3 -m tools.ppocr_reference
"""
import json
from pathlib import Path

from rapidocr_onnxruntime import RapidOCR

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ["receipt.png", "chelsea.png"]


def main():
    engine = RapidOCR()
    out = {"engine": "rapidocr-onnxruntime 1.4.4 (PP-OCRv4 det + rec, mobile v2 cls)", "images": []}
    for name in IMAGES:
        result, _ = engine(str(ROOT / "tests/data/vision" / name))
        lines = [{"box": [[float(v) for v in p] for p in box], "text": text, "confidence": round(float(score), 5)}
                 for box, text, score in (result or [])]
        print(name, [(l["text"], l["confidence"]) for l in lines])
        out["images"].append({"file": name, "lines": lines})
    (ROOT / "tests/golden/ppocr_reference.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
