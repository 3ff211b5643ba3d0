//! Hyper-parameters from GGUF metadata (`{arch}.` prefixed keys, as llama.cpp names them).

use tandem_gguf::GgufFile;

use crate::{ModelError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Qwen2 / Qwen2.5: llama-like with q/k/v bias and NEOX rotary embedding.
    Qwen2,
    /// Gemma 3: no biases; q/k RMS-normed per head; post-attention and post-FFN norms; GELU-tanh
    /// gate; the embedding scaled by sqrt(dim); five sliding-window layers to one global.
    Gemma3,
}

/// The FFN's gate activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// silu(gate) · up.
    SwiGlu,
    /// gelu_tanh(gate) · up.
    GeGlu,
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
    pub activation: Activation,
    /// The embedding rows are multiplied by this (Gemma: sqrt(dim)).
    pub embed_scale: f32,
    /// Sliding-window layers: each sees the latest `window` positions (itself included) and
    /// rotates with `rope_base_local`; every `global_every`-th layer is global.
    pub sliding: Option<Sliding>,
}

#[derive(Debug, Clone, Copy)]
pub struct Sliding {
    pub window: usize,
    pub global_every: usize,
    pub rope_base_local: f32,
}

impl Config {
    pub fn from_gguf(f: &GgufFile) -> Result<Self> {
        let arch_name = f.get_str("general.architecture")?;
        let arch = match arch_name {
            "qwen2" => Arch::Qwen2,
            "gemma3" => Arch::Gemma3,
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
            head_dim: match f.get_usize(&k("attention.key_length")) {
                Ok(hd) => hd,
                Err(_) if n_head > 0 && dim.is_multiple_of(n_head) => dim / n_head,
                Err(_) => {
                    return Err(ModelError::BadConfig(format!(
                        "embedding_length {dim} is not a multiple of head_count {n_head}"
                    )))
                }
            },
            ffn_dim: f.get_usize(&k("feed_forward_length"))?,
            vocab,
            rope_base: f.get_f64(&k("rope.freq_base")).unwrap_or(10_000.0) as f32,
            rms_eps: f.get_f64(&k("attention.layer_norm_rms_epsilon"))? as f32,
            ctx_train: f.get_usize(&k("context_length"))?,
            activation: Activation::SwiGlu,
            embed_scale: 1.0,
            sliding: None,
        };
        let cfg = match arch {
            Arch::Qwen2 => cfg,
            Arch::Gemma3 => Config {
                activation: Activation::GeGlu,
                embed_scale: (dim as f32).sqrt(),
                // llama.cpp's values for Gemma 3: the local base and the 5:1 pattern are not in
                // the file.
                sliding: f.get_usize(&k("attention.sliding_window")).ok().map(|window| Sliding {
                    window,
                    global_every: 6,
                    rope_base_local: 10_000.0,
                }),
                ..cfg
            },
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::BadConfig(m));
        if self.n_layer == 0 || self.n_layer > 1024 {
            return bad(format!("block_count {} out of range 1..=1024", self.n_layer));
        }
        if self.n_head == 0 || self.dim == 0 || self.head_dim == 0 || self.head_dim > 1024 {
            return bad(format!(
                "head_count {} or head dimension {} out of range",
                self.n_head, self.head_dim
            ));
        }
        if self.sliding.is_some_and(|s| s.window == 0 || s.global_every == 0) {
            return bad("sliding window of 0 positions".into());
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

    /// The window of layer `l`, `None` for a global layer.
    pub fn window(&self, l: usize) -> Option<usize> {
        self.sliding
            .filter(|s| !(l + 1).is_multiple_of(s.global_every))
            .map(|s| s.window)
    }
}
