#!/usr/bin/env python3
"""Writes crates/kernels/tests/data/dequant_vectors.json: random blocks of every quant type with their
values as dequantised by the Python `gguf` package (`gguf.quants.dequantize`), an implementation
independent of ours. Q8_K is not in `gguf.quants`; its values are computed here from the format
(f32 d times int8 q). Run: python3 -m tools.quant_vectors (needs numpy and gguf)."""
import json
import pathlib

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

rng = np.random.default_rng(20261127)
OUT = pathlib.Path(__file__).resolve().parent.parent / "crates/kernels/tests/data/dequant_vectors.json"


def f16_bytes(values):
    return np.asarray(values, dtype=np.float16).tobytes()


def random_blocks(ty, n_blocks):
    """Random bytes with every f16 scale replaced by a finite, moderate value."""
    block_len, block_bytes = GGML_QUANT_SIZES[ty]
    raw = bytearray(rng.integers(0, 256, size=n_blocks * block_bytes, dtype=np.uint8).tobytes())
    # offsets of f16 scale fields inside a block
    f16_fields = {T.Q4_0: [0], T.Q5_0: [0], T.Q8_0: [0], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}
    for b in range(n_blocks):
        for off in f16_fields.get(ty, []):
            at = b * block_bytes + off
            raw[at:at + 2] = f16_bytes(rng.uniform(-0.05, 0.05) if off != 2 else rng.uniform(0, 0.05))
    return bytes(raw)


cases = {}
for ty, n_blocks in [(T.Q4_0, 8), (T.Q5_0, 8), (T.Q8_0, 8), (T.Q4_K, 3), (T.Q5_K, 3), (T.Q6_K, 3)]:
    data = random_blocks(ty, n_blocks)
    values = dequantize(np.frombuffer(data, dtype=np.uint8), ty).astype(np.float32).ravel()
    cases[ty.name] = {"hex": data.hex(), "values": [float(v) for v in values]}

f16 = rng.normal(0, 2, size=64).astype(np.float16)
cases["F16"] = {"hex": f16.tobytes().hex(), "values": [float(v) for v in f16.astype(np.float32)]}
bf = rng.normal(0, 2, size=64).astype(np.float32)
bf_bits = (bf.view(np.uint32) >> 16).astype(np.uint16)
cases["BF16"] = {"hex": bf_bits.tobytes().hex(), "values": [float(v) for v in (bf_bits.astype(np.uint32) << 16).view(np.float32)]}

# Q8_K: f32 d, 256 int8 q, 16 int16 bsums (unused by dequantisation)
q8k = bytearray()
q8k_vals = []
for _ in range(2):
    d = np.float32(rng.uniform(-0.01, 0.01))
    q = rng.integers(-127, 128, size=256, dtype=np.int8)
    bsums = q.reshape(16, 16).astype(np.int16).sum(axis=1).astype(np.int16)
    q8k += d.tobytes() + q.tobytes() + bsums.tobytes()
    q8k_vals += [float(v) for v in (d * q.astype(np.float32))]
cases["Q8_K"] = {"hex": bytes(q8k).hex(), "values": q8k_vals}

OUT.write_text(json.dumps(cases) + "\n")
print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
