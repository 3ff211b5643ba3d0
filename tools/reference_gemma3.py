#!/usr/bin/env python3
"""Independent reference for the Gemma 3 forward pass: numpy over weights dequantised by the Python
`gguf` package, written from the HF `modeling_gemma3` math (text model), sharing nothing with
tandem.

    python3 -m tools.reference_gemma3 MODEL.gguf PROMPTS.json OUT.json

PROMPTS.json: [{"name": ..., "tokens": [ids...]}] (with the BOS token, id 2, first). OUT.json gets,
per prompt, the top-20 next-token logits after the whole prompt.

Per layer, as HF `Gemma3DecoderLayer` (the GGUF converter already added 1 to every norm weight,
so RMSNorm here is x · rsqrt(mean(x²) + eps) · w):
  h = x + post_attention_norm(o_proj(attn(rope(q_norm(q)), rope(k_norm(k)), v)))   q,k,v of attn_norm(x)
  x = h + post_ffw_norm(down(gelu_tanh(gate(ffn_norm(h))) · up(ffn_norm(h))))
with the embedding scaled by sqrt(hidden), attention scaled by query_pre_attn_scalar^-1/2 (256 →
1/16), layers 5, 11, 17 (every sixth) global with rope base `rope.freq_base` (1e6) and the others
sliding (a query sees the 512 latest positions, itself included) with base 10,000, NEOX rotation,
and the output tied to the embedding."""
import json
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

LOCAL_BASE = 10_000.0
PATTERN = 6


def main(model_path, prompts_path, out_path):
    r = GGUFReader(model_path)

    def meta(key):
        f = r.fields[key]
        return f.parts[f.data[0]].tolist()[0]

    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    assert arch == "gemma3", arch
    n_layer = meta(f"{arch}.block_count")
    dim = meta(f"{arch}.embedding_length")
    n_head = meta(f"{arch}.attention.head_count")
    n_kv = meta(f"{arch}.attention.head_count_kv")
    hd = meta(f"{arch}.attention.key_length")
    eps = meta(f"{arch}.attention.layer_norm_rms_epsilon")
    base = meta(f"{arch}.rope.freq_base")
    window = meta(f"{arch}.attention.sliding_window")
    tensors = {t.name: t for t in r.tensors}

    def W(name):
        t = tensors[name]
        return dequantize(t.data, t.tensor_type).astype(np.float32).reshape([int(d) for d in reversed(t.shape)])

    def rms(x, w):
        return (x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + eps)).astype(np.float32) * w

    def gelu_tanh(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

    emb = W("token_embd.weight")
    names = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_q_norm", "attn_k_norm", "attn_output",
             "post_attention_norm", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down", "post_ffw_norm"]
    layers = [{k: W(f"blk.{i}.{k}.weight") for k in names} for i in range(n_layer)]
    out_norm = W("output_norm.weight")

    results = []
    for prompt in json.load(open(prompts_path)):
        toks = np.array(prompt["tokens"])
        T = len(toks)
        x = emb[toks] * np.float32(np.sqrt(dim))
        pos = np.arange(T)[:, None]

        def rope(t, b):  # t: [T, heads, hd], HF rotate_half layout
            inv = b ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
            ang = pos * inv[None, :]
            c, s = np.cos(ang).astype(np.float32)[:, None, :], np.sin(ang).astype(np.float32)[:, None, :]
            a, bb = t[..., : hd // 2], t[..., hd // 2:]
            return np.concatenate([a * c - bb * s, a * s + bb * c], axis=-1)

        i, j = np.arange(T)[:, None], np.arange(T)[None, :]
        causal = np.where(j <= i, 0.0, -np.inf).astype(np.float32)
        sliding = np.where((j <= i) & (i - j < window), 0.0, -np.inf).astype(np.float32)
        for li, L in enumerate(layers):
            is_global = (li + 1) % PATTERN == 0
            h = rms(x, L["attn_norm"])
            q = (h @ L["attn_q"].T).reshape(T, n_head, hd)
            k = (h @ L["attn_k"].T).reshape(T, n_kv, hd)
            v = (h @ L["attn_v"].T).reshape(T, n_kv, hd)
            q, k = rms(q, L["attn_q_norm"]), rms(k, L["attn_k_norm"])
            b = base if is_global else LOCAL_BASE
            q, k = rope(q, b), rope(k, b)
            k = np.repeat(k, n_head // n_kv, axis=1)
            v = np.repeat(v, n_head // n_kv, axis=1)
            s = np.einsum("thd,shd->hts", q, k) / np.sqrt(256.0) + (causal if is_global else sliding)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            o = np.einsum("hts,shd->thd", s, v).reshape(T, n_head * hd)
            x = x + rms(o @ L["attn_output"].T, L["post_attention_norm"])
            h = rms(x, L["ffn_norm"])
            f = (gelu_tanh(h @ L["ffn_gate"].T) * (h @ L["ffn_up"].T)) @ L["ffn_down"].T
            x = x + rms(f, L["post_ffw_norm"])
        logits = rms(x[-1], out_norm) @ emb.T
        top = np.argsort(-logits, kind="stable")[:20]
        results.append({"name": prompt["name"], "tokens": prompt["tokens"],
                        "top": [[int(t), float(logits[t])] for t in top]})
        print(prompt["name"], T, "tokens, top-5:", [(int(t), round(float(logits[t]), 3)) for t in top[:5]])
    json.dump(results, open(out_path, "w"), indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:4])
