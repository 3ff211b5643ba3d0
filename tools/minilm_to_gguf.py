"""all-MiniLM-L6-v2 (safetensors, as `tandem pull embeddings` stores it) written to a GGUF that
llama.cpp's `llama-embedding` runs — for the speed comparison in docs/performance.md. numpy and
gguf-py only (llama.cpp's own converter imports torch). F32 tensors, mean pooling, BERT's WordPiece
vocabulary in llama.cpp's "phantom space" form (a word-initial piece gets a leading U+2581, a `##`
piece loses its prefix), as its converter writes it.

Run: python3 -m tools.minilm_to_gguf ~/.cache/tandem/models/all-minilm-l6-v2 /tmp/minilm.gguf
"""
import json
import sys
from pathlib import Path

import gguf
from safetensors.numpy import load_file


def tokens(model_dir):
    t = json.loads((model_dir / "tokenizer.json").read_text())
    vocab = sorted(t["model"]["vocab"].items(), key=lambda kv: kv[1])
    special = {a["content"] for a in t["added_tokens"] if a.get("special")}
    out, types = [], []
    for tok, _ in vocab:
        if tok in special:
            out.append(tok)
            types.append(gguf.TokenType.CONTROL)
        else:
            out.append(tok[2:] if tok.startswith("##") else "\u2581" + tok)
            types.append(gguf.TokenType.NORMAL)
    return out, types


def main():
    model_dir, out = Path(sys.argv[1]), sys.argv[2]
    cfg = json.loads((model_dir / "config.json").read_text())
    w = gguf.GGUFWriter(out, "bert")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_layer_norm_eps(cfg["layer_norm_eps"])
    w.add_causal_attention(False)
    w.add_pooling_type(gguf.PoolingType.MEAN)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    toks, types = tokens(model_dir)
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("default")
    w.add_token_list(toks)
    w.add_token_types(types)
    w.add_token_type_count(cfg["type_vocab_size"])
    for name, id_ in (("unk", 100), ("sep", 102), ("pad", 0), ("mask", 103)):
        getattr(w, f"add_{name}_token_id")(id_)
    w.add_bos_token_id(101)  # [CLS]
    w.add_eos_token_id(102)  # [SEP]

    t = load_file(str(model_dir / "model.safetensors"))
    names = {
        "embeddings.word_embeddings.weight": "token_embd.weight",
        "embeddings.token_type_embeddings.weight": "token_types.weight",
        "embeddings.position_embeddings.weight": "position_embd.weight",
        "embeddings.LayerNorm.weight": "token_embd_norm.weight",
        "embeddings.LayerNorm.bias": "token_embd_norm.bias",
    }
    per_layer = {
        "attention.self.query": "attn_q", "attention.self.key": "attn_k", "attention.self.value": "attn_v",
        "attention.output.dense": "attn_output", "attention.output.LayerNorm": "attn_output_norm",
        "intermediate.dense": "ffn_up", "output.dense": "ffn_down", "output.LayerNorm": "layer_output_norm",
    }
    for i in range(cfg["num_hidden_layers"]):
        for hf, ours in per_layer.items():
            for part in ("weight", "bias"):
                names[f"encoder.layer.{i}.{hf}.{part}"] = f"blk.{i}.{ours}.{part}"
    for hf, ours in names.items():
        w.add_tensor(ours, t[hf].astype("float32"))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{len(names)} tensors -> {out}")


if __name__ == "__main__":
    main()
