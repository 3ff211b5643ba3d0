#!/usr/bin/env python3
"""SentencePiece's own encoder as the reference for tandem's SPM tokenizer (llama.cpp's
`llm_tokenizer_spm`: merge adjacent symbols by the score of the merged piece, bytes as `<0xXX>`).

    python3 tools/spm_reference.py tiny OUT.json            # a small vocabulary + its encodings
    python3 tools/spm_reference.py gguf MODEL.gguf OUT.json # a GGUF's vocabulary (needs `gguf`)

Builds a SentencePiece BPE ModelProto from the vocabulary (pieces, scores, types; identity
normaliser, no dummy prefix, whitespace escaped to ▁, byte fallback: Gemma 3's settings) and
writes the ids sentencepiece gives for each test text. Needs `sentencepiece` and `protobuf`.
"""

import json
import sys

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

TEXTS = [
    "hello world",
    "the thing in the ring",
    "  two leading spaces and trailing  ",
    "tab\there, newline\nthere",
    "naïve café — ünïcödé",
    "emoji 🙂 and 中文",
    "",
    "a",
    "the the the",
    "thinking, then ringing.",
    "x = f(y) + 2 * z;",
    "ZZZ unknown CAPITALS",
]


def tiny_vocab():
    """(piece, score, type): controls, the 256 bytes, single characters, then merges whose scores
    decide the order (higher first), with a few ties."""
    v = [("<pad>", 0.0, 3), ("<eos>", 0.0, 3), ("<bos>", 0.0, 3), ("<unk>", 0.0, 2)]
    v += [(f"<0x{b:02X}>", 0.0, 6) for b in range(256)]
    chars = "▁abcdefghijklmnopqrstuvwxyz,.=()+*;:"
    v += [(c, -100.0 - i, 1) for i, c in enumerate(chars)]
    merges = ["▁t", "th", "he", "▁th", "the", "▁the", "in", "ing", "▁in", "ng", "ri", "rin", "ring",
              "hi", "thin", "▁thin", "▁thing", "er", "ere", "he", "ll", "llo", "▁w", "or", "ld", "▁a",
              "an", "and", "▁and", "ne", "ew", "ol", "wo", "▁two", "in", "es", "sp", "ac", "ace"]
    seen = {p for p, _, _ in v}
    for i, m in enumerate(merges):
        if m not in seen:
            # Scores fall with the position, two at a time, so some merges tie.
            v.append((m, -1.0 - (i // 2), 1))
            seen.add(m)
    return v


def gguf_vocab(path):
    from gguf import GGUFReader

    r = GGUFReader(path)
    f = r.fields
    toks = [bytes(f["tokenizer.ggml.tokens"].parts[i]).decode() for i in f["tokenizer.ggml.tokens"].data]
    scores = [float(f["tokenizer.ggml.scores"].parts[i][0]) for i in f["tokenizer.ggml.scores"].data]
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    return list(zip(toks, scores, types))


def processor(vocab):
    m = pb.ModelProto()
    m.trainer_spec.model_type = pb.TrainerSpec.BPE
    m.trainer_spec.vocab_size = len(vocab)
    m.trainer_spec.byte_fallback = True
    m.trainer_spec.unk_id, m.trainer_spec.bos_id, m.trainer_spec.eos_id, m.trainer_spec.pad_id = 3, 2, 1, 0
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = False
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = True
    for piece, score, ty in vocab:
        p = m.pieces.add()
        p.piece, p.score, p.type = piece, score, ty
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(m.SerializeToString())
    return sp


def main():
    if sys.argv[1] == "tiny":
        vocab, out = tiny_vocab(), sys.argv[2]
    else:
        vocab, out = gguf_vocab(sys.argv[2]), sys.argv[3]
    sp = processor(vocab)
    cases = [{"text": t, "ids": sp.EncodeAsIds(t)} for t in TEXTS]
    doc = {"cases": cases}
    if sys.argv[1] == "tiny":
        doc["vocab"] = [[p, s, t] for p, s, t in vocab]
    with open(out, "w") as f:
        json.dump(doc, f, ensure_ascii=False)
    for c in cases:
        print(repr(c["text"]), c["ids"][:24])


if __name__ == "__main__":
    main()
