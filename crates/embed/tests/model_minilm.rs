//! The encoder against the independent numpy reference (`tools/embed_reference.py`): on 200 texts
//! the token ids equal those of the model's tokenizer.json run by the `tokenizers` package, and
//! every vector has cosine ≥ 0.999 with the reference's (float64 math, stored as float16).

use std::path::PathBuf;

use base64::Engine;
use tandem_embed::Encoder;

fn model_dir() -> PathBuf {
    let home = std::env::var_os("TANDEM_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/tandem"));
    let p = home.join("models/all-minilm-l6-v2");
    assert!(
        p.join(".verified").exists(),
        "{} is missing: run `tandem pull embeddings` first (the README's test command does)",
        p.display()
    );
    p
}

fn golden() -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/minilm_reference.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn f16_vector(b64: &str) -> Vec<f32> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    bytes
        .chunks_exact(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

#[test]
fn matches_the_numpy_reference() {
    let enc = Encoder::load(&model_dir()).unwrap();
    assert_eq!(enc.dims(), 384);
    let g = golden();
    let items = g["items"].as_array().unwrap();
    assert_eq!(items.len(), 200);
    let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    for (i, t) in items.iter().zip(&texts) {
        let want: Vec<u32> = serde_json::from_value(i["ids"].clone()).unwrap();
        assert_eq!(enc.tokenize(t), want, "token ids of {t:?}");
    }
    // All at once (a batch of several passes), then the first few one at a time.
    let all = enc.embed_texts(&texts);
    let mut worst = (1.0f32, "");
    for ((e, i), t) in all.iter().zip(items).zip(&texts) {
        let c = cosine(&e.vector, &f16_vector(i["vector_f16_b64"].as_str().unwrap()));
        if c < worst.0 {
            worst = (c, t);
        }
    }
    eprintln!("worst cosine against the reference: {:.6} ({:?})", worst.0, worst.1);
    assert!(worst.0 >= 0.999, "cosine {} on {:?}", worst.0, worst.1);
    for (k, t) in texts.iter().take(5).enumerate() {
        let one = &enc.embed_texts(&[t])[0];
        assert!(cosine(&one.vector, &all[k].vector) > 0.9999, "batching changed {t:?}");
    }
    let long = texts.iter().position(|t| t.len() > 1500).expect("the long edge case");
    assert_eq!(all[long].tokens, 256, "truncated to max_seq_length");
}
