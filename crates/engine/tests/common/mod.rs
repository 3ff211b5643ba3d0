//! Shared by the model-backed tests: the mini tier from the model cache (CI pulls it first).

use std::path::PathBuf;

use tandem_engine::LoadedModel;

/// Gemma 3 270M in the model cache (`tandem pull gemma3-270m`; the README's test command runs it).
#[allow(dead_code)] // one test binary uses it
pub fn gemma3_path() -> PathBuf {
    let p = mini_path().with_file_name("gemma-3-270m-q4_k_m.gguf");
    assert!(
        p.exists(),
        "{} is missing: run `tandem pull gemma3-270m` first (the README's test command does)",
        p.display()
    );
    p
}

pub fn mini_path() -> PathBuf {
    let home = std::env::var_os("TANDEM_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/tandem"));
    let p = home.join("models/qwen2.5-coder-0.5b-instruct.gguf");
    assert!(
        p.exists(),
        "{} is missing: run `tandem pull mini` first (the README's test command does)",
        p.display()
    );
    p
}

#[allow(dead_code)] // not every test binary uses every helper
pub fn mini() -> LoadedModel {
    LoadedModel::load(mini_path()).expect("the mini tier loads")
}

#[allow(dead_code)]
pub fn golden(name: &str) -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// Greedy sampling with end-of-generation banned, so a sequence runs its full max_tokens.
#[allow(dead_code)]
pub fn greedy_without_eog(lm: &LoadedModel) -> tandem_engine::SamplingParams {
    tandem_engine::SamplingParams {
        temperature: 0.0,
        logit_bias: lm.tokenizer.eog.iter().map(|&t| (t, -100.0)).collect(),
        ..tandem_engine::SamplingParams::default()
    }
}
