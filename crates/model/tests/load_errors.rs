//! Loading a tiny synthetic qwen2 file: it runs, and each broken variant (unknown architecture,
//! wrong shape, missing tensor, inconsistent config) is a one-line error naming the problem.

use std::sync::Arc;

use tandem_gguf::{GgufFile, GgufWriter, Value};
use tandem_model::{KvCache, Model, RunState};

const DIM: u64 = 32;
const FFN: u64 = 64;
const VOCAB: u64 = 16;
const KV: u64 = 16; // 2 KV heads of 8

type Tensors = Vec<(String, Vec<u64>)>;
type Kvs = Vec<(String, Value)>;
type Edit = Box<dyn Fn(&mut Tensors, &mut Kvs)>;

fn tiny(edit: impl Fn(&mut Vec<(String, Vec<u64>)>, &mut Vec<(String, Value)>)) -> Result<Model, String> {
    let mut kvs: Kvs = vec![
        ("general.architecture".into(), Value::String("qwen2".into())),
        ("qwen2.block_count".into(), Value::U32(1)),
        ("qwen2.embedding_length".into(), Value::U32(DIM as u32)),
        ("qwen2.feed_forward_length".into(), Value::U32(FFN as u32)),
        ("qwen2.attention.head_count".into(), Value::U32(4)),
        ("qwen2.attention.head_count_kv".into(), Value::U32(2)),
        ("qwen2.rope.freq_base".into(), Value::F32(1e6)),
        ("qwen2.attention.layer_norm_rms_epsilon".into(), Value::F32(1e-6)),
        ("qwen2.context_length".into(), Value::U32(64)),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array((0..VOCAB).map(|i| Value::String(format!("t{i}"))).collect()),
        ),
    ];
    let mut tensors: Tensors = vec![
        ("token_embd.weight".into(), vec![DIM, VOCAB]),
        ("output_norm.weight".into(), vec![DIM]),
        ("output.weight".into(), vec![DIM, VOCAB]),
        ("blk.0.attn_norm.weight".into(), vec![DIM]),
        ("blk.0.attn_q.weight".into(), vec![DIM, DIM]),
        ("blk.0.attn_q.bias".into(), vec![DIM]),
        ("blk.0.attn_k.weight".into(), vec![DIM, KV]),
        ("blk.0.attn_k.bias".into(), vec![KV]),
        ("blk.0.attn_v.weight".into(), vec![DIM, KV]),
        ("blk.0.attn_v.bias".into(), vec![KV]),
        ("blk.0.attn_output.weight".into(), vec![DIM, DIM]),
        ("blk.0.ffn_norm.weight".into(), vec![DIM]),
        ("blk.0.ffn_gate.weight".into(), vec![DIM, FFN]),
        ("blk.0.ffn_up.weight".into(), vec![DIM, FFN]),
        ("blk.0.ffn_down.weight".into(), vec![FFN, DIM]),
    ];
    edit(&mut tensors, &mut kvs);
    let mut w = GgufWriter::new();
    for (k, v) in kvs {
        w.kv(&k, v);
    }
    for (i, (name, dims)) in tensors.iter().enumerate() {
        let n: u64 = dims.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|j| ((j as f32 * 0.37 + i as f32).sin()) * 0.2 + if name.contains("norm") { 1.0 } else { 0.0 })
            .collect();
        w.tensor_f32(name, dims, &values);
    }
    let file = GgufFile::from_bytes(w.to_bytes()).map_err(|e| e.to_string())?;
    Model::from_gguf(Arc::new(file)).map_err(|e| e.to_string())
}

#[test]
fn tiny_model_runs_prefill_and_decode_consistently() {
    let m = tiny(|_, _| {}).unwrap();
    let mut kv = KvCache::new(&m.config, 16);
    let mut st = RunState::new(&m.config, 8, 4, 16);
    // Prefill 5 tokens at once, then the same prompt one token per chunk: identical logits (the
    // prompt path, bf16 where the CPU has it, does not depend on chunking).
    let batch = m.forward(&mut st, &mut kv, &[1, 2, 3, 4, 5]).unwrap().to_vec();
    assert!(batch.iter().all(|v| v.is_finite()));
    kv.truncate(0);
    let mut chunked = Vec::new();
    for t in [1, 2, 3, 4, 5] {
        chunked = m.forward(&mut st, &mut kv, &[t]).unwrap().to_vec();
    }
    assert_eq!(batch, chunked);
    // On the exact path (prompts too): prefill, and one prompt token then four generated ones,
    // agree within f32 summation error. (Nothing else in this test binary runs the model.)
    let mut m = m;
    m.kernels = m.kernels.with_prompt(Some(tandem_kernels::PromptKernel::Exact));
    kv.truncate(0);
    let batch = m.forward(&mut st, &mut kv, &[1, 2, 3, 4, 5]).unwrap().to_vec();
    kv.truncate(0);
    m.forward(&mut st, &mut kv, &[1]).unwrap();
    let mut step = Vec::new();
    for t in [2, 3, 4, 5] {
        step = m.decode(&mut st, &mut kv, t).unwrap().to_vec();
    }
    for (a, b) in batch.iter().zip(&step) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    let e = m.forward(&mut st, &mut kv, &[99]).unwrap_err().to_string();
    assert!(e.contains("99"), "{e}");
    let e = m.forward(&mut st, &mut kv, &[1; 12]).unwrap_err().to_string();
    assert!(e.contains("context"), "{e}");
}

#[test]
fn broken_files_are_clear_errors() {
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "unknown architecture",
            Box::new(|_, k| k[0].1 = Value::String("mamba".into())),
            "unsupported architecture \"mamba\"",
        ),
        (
            "wrong shape",
            Box::new(|t, _| t[4].1 = vec![DIM, DIM + 32]),
            "blk.0.attn_q.weight",
        ),
        (
            "missing tensor",
            Box::new(|t, _| {
                t.remove(13);
            }),
            "blk.0.ffn_up.weight",
        ),
        (
            "heads do not divide",
            Box::new(|_, k| k[4].1 = Value::U32(3)),
            "head_count",
        ),
        (
            "missing key",
            Box::new(|_, k| {
                k.remove(7);
            }),
            "layer_norm_rms_epsilon",
        ),
    ];
    for (what, edit, needle) in cases {
        let err = tiny(edit).err().unwrap_or_else(|| panic!("{what}: accepted"));
        assert!(err.contains(needle), "{what}: {err}");
        assert!(!err.contains('\n'), "{what}: multi-line error {err}");
    }
}
