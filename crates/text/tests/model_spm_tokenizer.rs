//! The SentencePiece tokenizer against SentencePiece itself: `tools/spm_reference.py tiny` builds a
//! small BPE vocabulary (controls, the 256 byte pieces, characters, merges with some tied scores),
//! encodes texts with the `sentencepiece` package (identity normaliser, no dummy prefix, byte
//! fallback: Gemma 3's settings) and stores both in `data/spm_tiny.json`. Every id must match.

use tandem_text::{SpecialMode, Tokenizer};

fn reference() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/spm_tiny.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A JSON array of token ids.
fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("an array of ids")
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

fn tokenizer(doc: &serde_json::Value) -> Tokenizer {
    let vocab = doc["vocab"].as_array().unwrap();
    let pieces: Vec<&str> = vocab.iter().map(|v| v[0].as_str().unwrap()).collect();
    let scores: Vec<f32> = vocab.iter().map(|v| v[1].as_f64().unwrap() as f32).collect();
    let types: Vec<i32> = vocab.iter().map(|v| v[2].as_i64().unwrap() as i32).collect();
    Tokenizer::from_spm_vocab(&pieces, &scores, &types, vec![1]).unwrap()
}

#[test]
fn ids_equal_sentencepiece() {
    let doc = reference();
    let tok = tokenizer(&doc);
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want: Vec<u32> = ids(&c["ids"]);
        assert_eq!(tok.encode(text, SpecialMode::None), want, "{text:?}");
    }
}

#[test]
fn pieces_decode_back_to_the_text() {
    let doc = reference();
    let tok = tokenizer(&doc);
    for c in doc["cases"].as_array().unwrap() {
        let text = c["text"].as_str().unwrap();
        let ids = tok.encode(text, SpecialMode::None);
        assert_eq!(String::from_utf8(tok.decode_bytes(&ids)).unwrap(), text);
    }
}

#[test]
fn control_pieces_never_come_from_text() {
    let doc = reference();
    let tok = tokenizer(&doc);
    let ids = tok.encode("<bos>hi<eos>", SpecialMode::None);
    assert!(!ids.iter().any(|&i| i < 4), "{ids:?}");
    assert_eq!(tok.encode("<eos>", SpecialMode::All), [1]);
    assert!(tok.is_eog(1));
}

/// Gemma 3 270M's own vocabulary (262,144 pieces, user-defined ones included): llama.cpp's ids
/// and sentencepiece's (`tools/spm_reference.py gguf`) in `data/spm_gemma3.json`; the GGUF
/// `tandem pull gemma3-270m` puts in the model cache (the README's test command runs it).
#[test]
fn gemma3_ids_equal_llama_cpp_and_sentencepiece() {
    let home = std::env::var_os("TANDEM_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/tandem")
        });
    let path = home.join("models/gemma-3-270m-q4_k_m.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `tandem pull gemma3-270m` first",
        path.display()
    );
    let file = tandem_gguf::GgufFile::open(path).unwrap();
    let tok = Tokenizer::from_gguf(&file).unwrap();
    let golden = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/spm_gemma3.json");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(golden).unwrap()).unwrap();
    for c in doc["cases"].as_array().unwrap() {
        let text = c["text"].as_str().unwrap();
        let want: Vec<u32> = ids(&c["ids"]);
        // llama.cpp's llama-tokenize (tools/llama_greedy_gemma3.py) is the reference; sentencepiece
        // agrees except on runs of spaces, which Gemma's vocabulary holds as user-defined pieces
        // (llama.cpp matches them in the raw text; sentencepiece, given the GGUF's pieces, cannot).
        let llama: Vec<u32> = ids(&c["llama_cpp_ids"]);
        let ours = tok.encode(text, SpecialMode::None);
        assert_eq!(ours, llama, "{text:?}");
        if !text.contains("  ") {
            assert_eq!(ours, want, "{text:?}: sentencepiece differs");
        }
        assert_eq!(String::from_utf8(tok.decode_bytes(&ours)).unwrap(), text);
    }
}
