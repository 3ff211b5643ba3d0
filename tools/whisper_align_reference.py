"""The independent reference for tandem's word timestamps: CTranslate2's `Whisper.align` (the
alignment heads' cross-attention, normalised and median-filtered, through DTW — openai-whisper's
`find_alignment`) on the 10 pocketsphinx clips, for the greedy transcripts already in
tests/golden/whisper_tiny_en_reference.json. Writes each clip's alignment path (text-token index,
time index in 20-ms steps) and token probabilities to tests/golden/whisper_tiny_en_alignment.json.

Run: python3 -m tools.whisper_align_reference MODEL_DIR
"""
import json
import sys
from pathlib import Path

import numpy as np

from tools.whisper_reference import HOP, enc_view, log_mel, read_wav

ROOT = Path(__file__).resolve().parent.parent


def main():
    import ctranslate2

    model_dir = Path(sys.argv[1])
    model = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32", intra_threads=2)
    golden = json.loads((ROOT / "tests/golden/whisper_tiny_en_reference.json").read_text())
    items = []
    for it in golden["items"]:
        audio = read_wav(ROOT / "tests/data/audio" / it["clip"])
        mel = log_mel(audio).astype(np.float32)
        enc = np.array(model.encode(ctranslate2.StorageView.from_array(mel[None]), to_cpu=True))[0]
        frames = len(audio) // HOP
        r = model.align(enc_view(enc), [50257, 50362], [it["greedy_ids"]], frames)[0]
        items.append({"clip": it["clip"], "num_frames": frames,
                      "alignments": [list(p) for p in r.alignments],
                      "text_token_probs": list(r.text_token_probs)})
    out = ROOT / "tests/golden/whisper_tiny_en_alignment.json"
    out.write_text(json.dumps({"model": "whisper tiny.en", "items": items}) + "\n")
    print(len(items), "clips")


if __name__ == "__main__":
    main()
