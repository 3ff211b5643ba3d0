#!/usr/bin/env python3
"""Independent reference for YaRN RoPE: numpy, written from HF transformers'
`_compute_yarn_parameters` (modeling_rope_utils.py) and Qwen2's `apply_rotary_pos_emb`, sharing
nothing with tandem.

    python3 -m tools.reference_yarn crates/model/tests/data/yarn_reference.json

For each case (RoPE base, head size, factor, original context) it writes the per-pair inverse
frequencies, the attention temperature, and cos/sin (temperature included, as HF multiplies them)
at positions below and far past the original context. crates/model/tests/rope_yarn.rs compares
tandem's tables against the committed file."""
import json
import math
import sys

import numpy as np

CASES = [
    # The tiers: Qwen2.5 0.5B (head 64) and 1.5B (head 128), base 1e6, Qwen's 4 × 32,768.
    {"base": 1_000_000.0, "head_dim": 64, "factor": 4.0, "orig": 32768},
    {"base": 1_000_000.0, "head_dim": 128, "factor": 4.0, "orig": 32768},
    # A llama-style base and a larger factor, so the ramp sits elsewhere.
    {"base": 10_000.0, "head_dim": 128, "factor": 8.0, "orig": 4096},
]
POSITIONS = [0, 1, 100, 4095, 32767, 32768, 40000, 65536, 100003, 131071]


def yarn_inv_freq(base, dim, factor, orig, beta_fast=32.0, beta_slow=1.0):
    pos_freqs = base ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    inv_freq_extrapolation = 1.0 / pos_freqs
    inv_freq_interpolation = 1.0 / (factor * pos_freqs)

    def find_correction_dim(num_rotations):
        return (dim * math.log(orig / (num_rotations * 2 * math.pi))) / (2 * math.log(base))

    low = max(math.floor(find_correction_dim(beta_fast)), 0)
    high = min(math.ceil(find_correction_dim(beta_slow)), dim - 1)
    if low == high:
        high += 0.001
    linear = (np.arange(dim // 2, dtype=np.float64) - low) / (high - low)
    ramp = np.clip(linear, 0, 1)
    extrapolation_factor = 1 - ramp
    inv_freq = inv_freq_interpolation * (1 - extrapolation_factor) + inv_freq_extrapolation * extrapolation_factor
    attention_factor = 0.1 * math.log(factor) + 1.0
    return inv_freq, attention_factor


def main(out_path):
    out = []
    for c in CASES:
        inv_freq, att = yarn_inv_freq(c["base"], c["head_dim"], c["factor"], c["orig"])
        pos = np.array(POSITIONS, dtype=np.float64)
        angles = np.outer(pos, inv_freq)
        out.append({
            **c,
            "inv_freq": inv_freq.tolist(),
            "attention_factor": att,
            "positions": POSITIONS,
            "cos": (np.cos(angles) * att).tolist(),
            "sin": (np.sin(angles) * att).tolist(),
        })
    with open(out_path, "w") as f:
        json.dump(out, f)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
