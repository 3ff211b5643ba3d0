#!/usr/bin/env python3
"""Independent reference for the qwen2 forward pass: numpy over weights dequantised by the Python
`gguf` package, written from the HF Qwen2 modelling code's math, sharing nothing with tandem.

    python3 -m tools.reference_forward MODEL.gguf PROMPTS.json OUT.json [YARN_FACTOR]

PROMPTS.json: [{"name": ..., "tokens": [ids...]}]. OUT.json gets, per prompt, the top-20 next-token
logits after the whole prompt. The committed tests/golden/mini_reference_logits.json came from this
script on the mini tier; CI compares tandem against it without rerunning it. With YARN_FACTOR the
rotations are YaRN's over the file's trained context (tools/reference_yarn.py, HF's formula), as
tests/golden/mini_reference_logits_yarn.json was made with 4."""
import json
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

from tools.reference_yarn import yarn_inv_freq


def main(model_path, prompts_path, out_path, yarn_factor=None):
    r = GGUFReader(model_path)

    def meta(key):
        f = r.fields[key]
        return f.parts[f.data[0]].tolist()[0] if len(f.data) == 1 else None

    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    assert arch == "qwen2", arch
    n_layer = meta(f"{arch}.block_count")
    dim = meta(f"{arch}.embedding_length")
    n_head = meta(f"{arch}.attention.head_count")
    n_kv = meta(f"{arch}.attention.head_count_kv")
    eps = meta(f"{arch}.attention.layer_norm_rms_epsilon")
    base = meta(f"{arch}.rope.freq_base")
    hd = dim // n_head

    tensors = {t.name: t for t in r.tensors}

    def W(name):
        t = tensors[name]
        return dequantize(t.data, t.tensor_type).astype(np.float32).reshape([int(d) for d in reversed(t.shape)])

    def rms(x, w):
        return (x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + eps)).astype(np.float32) * w

    emb = W("token_embd.weight")
    out_w = W("output.weight") if "output.weight" in tensors else emb
    layers = []
    for i in range(n_layer):
        p = f"blk.{i}."
        layers.append({k: W(p + k) for k in [
            "attn_norm.weight", "attn_q.weight", "attn_q.bias", "attn_k.weight", "attn_k.bias",
            "attn_v.weight", "attn_v.bias", "attn_output.weight", "ffn_norm.weight",
            "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"]})
    out_norm = W("output_norm.weight")

    results = []
    for prompt in json.load(open(prompts_path)):
        toks = np.array(prompt["tokens"])
        T = len(toks)
        x = emb[toks]  # [T, dim]
        pos = np.arange(T)[:, None]
        inv = base ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
        temperature = 1.0
        if yarn_factor is not None:
            inv, temperature = yarn_inv_freq(base, hd, float(yarn_factor), meta(f"{arch}.context_length"))
        ang = pos * inv[None, :]  # [T, hd/2]
        cos = (np.cos(ang) * temperature).astype(np.float32)
        sin = (np.sin(ang) * temperature).astype(np.float32)

        def rope(t):  # t: [T, heads, hd], HF rotate_half layout
            a, b = t[..., : hd // 2], t[..., hd // 2:]
            c, s = cos[:, None, :], sin[:, None, :]
            return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)

        mask = np.triu(np.full((T, T), -np.inf, dtype=np.float32), 1)
        for L in layers:
            h = rms(x, L["attn_norm.weight"])
            q = (h @ L["attn_q.weight"].T + L["attn_q.bias"]).reshape(T, n_head, hd)
            k = (h @ L["attn_k.weight"].T + L["attn_k.bias"]).reshape(T, n_kv, hd)
            v = (h @ L["attn_v.weight"].T + L["attn_v.bias"]).reshape(T, n_kv, hd)
            q, k = rope(q), rope(k)
            k = np.repeat(k, n_head // n_kv, axis=1)
            v = np.repeat(v, n_head // n_kv, axis=1)
            s = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            o = np.einsum("hts,shd->thd", s, v).reshape(T, dim)
            x = x + o @ L["attn_output.weight"].T
            h = rms(x, L["ffn_norm.weight"])
            g = h @ L["ffn_gate.weight"].T
            u = h @ L["ffn_up.weight"].T
            x = x + ((g / (1 + np.exp(-g))) * u) @ L["ffn_down.weight"].T
        logits = rms(x[-1], out_norm) @ out_w.T
        top = np.argsort(-logits, kind="stable")[:20]
        results.append({"name": prompt["name"], "tokens": prompt["tokens"],
                        "top": [[int(i), float(logits[i])] for i in top]})
        print(prompt["name"], T, "tokens, top-5:", [(int(i), round(float(logits[i]), 3)) for i in top[:5]])
    json.dump(results, open(out_path, "w"), indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:5])
