//! Hyper-parameters from GGUF metadata (`{arch}.` prefixed keys, as llama.cpp names them).

use tandem_gguf::GgufFile;

use crate::{ModelError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Qwen2 / Qwen2.5: llama-like with q/k/v bias and NEOX rotary embedding.
    Qwen2,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub arch: Arch,
    pub name: String,
    pub n_layer: usize,
    /// Residual stream width.
    pub dim: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub ffn_dim: usize,
    pub vocab: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
    /// Context length the model was trained for.
    pub ctx_train: usize,
}

impl Config {
    pub fn from_gguf(f: &GgufFile) -> Result<Self> {
        let arch_name = f.get_str("general.architecture")?;
        let arch = match arch_name {
            "qwen2" => Arch::Qwen2,
            other => return Err(ModelError::UnsupportedArch(other.to_string())),
        };
        let k = |s: &str| format!("{arch_name}.{s}");
        let dim = f.get_usize(&k("embedding_length"))?;
        let n_head = f.get_usize(&k("attention.head_count"))?;
        let n_kv_head = f.get_usize(&k("attention.head_count_kv")).unwrap_or(n_head);
        let vocab = match f.get_array("tokenizer.ggml.tokens") {
            Ok(a) => a.len(),
            Err(_) => f.get_usize(&k("vocab_size"))?,
        };
        let cfg = Config {
            arch,
            name: f.get_str("general.name").unwrap_or("unnamed").to_string(),
            n_layer: f.get_usize(&k("block_count"))?,
            dim,
            n_head,
            n_kv_head,
            head_dim: dim.checked_div(n_head).unwrap_or(0),
            ffn_dim: f.get_usize(&k("feed_forward_length"))?,
            vocab,
            rope_base: f.get_f64(&k("rope.freq_base")).unwrap_or(10_000.0) as f32,
            rms_eps: f.get_f64(&k("attention.layer_norm_rms_epsilon"))? as f32,
            ctx_train: f.get_usize(&k("context_length"))?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::BadConfig(m));
        if self.n_layer == 0 || self.n_layer > 1024 {
            return bad(format!("block_count {} out of range 1..=1024", self.n_layer));
        }
        if self.n_head == 0 || self.dim == 0 || !self.dim.is_multiple_of(self.n_head) {
            return bad(format!(
                "embedding_length {} is not a multiple of head_count {}",
                self.dim, self.n_head
            ));
        }
        if self.n_kv_head == 0 || !self.n_head.is_multiple_of(self.n_kv_head) {
            return bad(format!(
                "head_count {} is not a multiple of head_count_kv {}",
                self.n_head, self.n_kv_head
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return bad(format!("head dimension {} is odd", self.head_dim));
        }
        if self.dim > 65536 || self.ffn_dim == 0 || self.ffn_dim > 1 << 20 || self.vocab == 0 || self.vocab > 1 << 24 {
            return bad("dimensions out of range".into());
        }
        let eps_ok = self.rms_eps > 0.0 && self.rms_eps < 1.0; // false for NaN too
        let base_ok = self.rope_base > 1.0;
        if !eps_ok || !base_ok {
            return bad(format!(
                "rms eps {} or rope base {} out of range",
                self.rms_eps, self.rope_base
            ));
        }
        Ok(())
    }

    pub fn kv_dim(&self) -> usize {
        self.n_kv_head * self.head_dim
    }
}
