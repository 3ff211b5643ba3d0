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
    /// YaRN scaling of the global layers' RoPE (from the file's `rope.scaling.*` keys or set by
    /// the caller before any state is built): static, every position rotated the scaled way.
    pub yarn: Option<Yarn>,
    pub activation: Activation,
    /// The embedding rows are multiplied by this (Gemma: sqrt(dim)).
    pub embed_scale: f32,
    /// Sliding-window layers: each sees the latest `window` positions (itself included) and
    /// rotates with `rope_base_local`; every `global_every`-th layer is global.
    pub sliding: Option<Sliding>,
}

/// YaRN ("NTK-by-parts") RoPE scaling as the reference implementations (HF transformers'
/// `_compute_yarn_parameters`, llama.cpp's `rope_yarn`) define it: dimension pairs that turn
/// more than `beta_fast` times over the original context keep their frequency, those turning
/// fewer than `beta_slow` times are interpolated (frequency / factor), a linear ramp between;
/// cos and sin are multiplied by the attention temperature 0.1·ln(factor) + 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Yarn {
    pub factor: f32,
    /// The context the model was trained at (the positions the scaling stretches).
    pub orig_ctx: usize,
    pub beta_fast: f32,
    pub beta_slow: f32,
}

impl Yarn {
    /// Qwen2.5's published setting for 128k (`factor` 4 over 32,768 positions).
    pub fn new(factor: f32, orig_ctx: usize) -> Self {
        Self {
            factor,
            orig_ctx,
            beta_fast: 32.0,
            beta_slow: 1.0,
        }
    }

    /// Positions the scaling covers: the original context × the factor.
    pub fn reach(&self) -> usize {
        (self.orig_ctx as f64 * self.factor as f64) as usize
    }

    /// The attention temperature applied to cos and sin.
    pub fn mscale(&self) -> f64 {
        0.1 * (self.factor as f64).ln() + 1.0
    }

    /// The rotation frequency of dimension pair `i` of a `head_dim`-wide head with RoPE `base`.
    pub fn inv_freq(&self, base: f64, head_dim: usize, i: usize) -> f64 {
        let d = head_dim as f64;
        let extrapolated = base.powf(-2.0 * i as f64 / d);
        let interpolated = extrapolated / self.factor as f64;
        // Pair index at which a dimension turns `rot` times over the original context.
        let corr = |rot: f64| d * (self.orig_ctx as f64 / (rot * 2.0 * std::f64::consts::PI)).ln() / (2.0 * base.ln());
        let low = corr(self.beta_fast as f64).floor().max(0.0);
        let high = corr(self.beta_slow as f64).ceil().min(d - 1.0);
        let high = if high == low { high + 0.001 } else { high };
        let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
        // ramp 0: high frequency, kept; ramp 1: low frequency, interpolated.
        interpolated * ramp + extrapolated * (1.0 - ramp)
    }
}

/// How a caller asks for the RoPE to reach past the trained context (`--rope-scaling`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    /// The file's own scaling; else, for Qwen2 models, YaRN ×4 (Qwen2.5's published 128k
    /// setting) exactly when the context served exceeds the trained one; else none.
    Auto,
    /// Plain RoPE, the trained context at most (the file's scaling ignored).
    Off,
    /// YaRN with this factor over the trained context, at every context size.
    Yarn(f32),
}

impl std::str::FromStr for RopeScaling {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "none" | "off" => Ok(Self::Off),
            "yarn" => Ok(Self::Yarn(QWEN_YARN_FACTOR)),
            _ => match s.strip_prefix("yarn:").map(str::parse::<f32>) {
                Some(Ok(f)) if (1.0..=64.0).contains(&f) => Ok(Self::Yarn(f)),
                _ => Err(format!("`{s}`: expected auto, none, yarn or yarn:FACTOR (1 to 64)")),
            },
        }
    }
}

/// Qwen2.5's YaRN factor for 131,072 positions over its 32,768 trained ones.
const QWEN_YARN_FACTOR: f32 = 4.0;

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
            yarn: yarn_from_gguf(f, &k)?,
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
        if let Some(y) = self.yarn {
            if !(y.factor >= 1.0 && y.factor <= 64.0)
                || y.orig_ctx == 0
                || !(y.beta_fast > y.beta_slow && y.beta_slow > 0.0)
            {
                return bad(format!(
                    "YaRN factor {} (1..=64), original context {} or betas {}/{} out of range",
                    y.factor, y.orig_ctx, y.beta_fast, y.beta_slow
                ));
            }
        }
        if !eps_ok || !base_ok {
            return bad(format!(
                "rms eps {} or rope base {} out of range",
                self.rms_eps, self.rope_base
            ));
        }
        Ok(())
    }

    /// The YaRN scaling `mode` gives at its longest reach (`Auto` without file scaling: Qwen2's
    /// ×4, `None` for other architectures).
    fn yarn_for(&self, mode: RopeScaling) -> Option<Yarn> {
        match mode {
            RopeScaling::Off => None,
            RopeScaling::Yarn(f) => Some(Yarn::new(f, self.ctx_train)),
            RopeScaling::Auto => self
                .yarn
                .or((self.arch == Arch::Qwen2).then(|| Yarn::new(QWEN_YARN_FACTOR, self.ctx_train))),
        }
    }

    /// The longest context `mode` reaches: the trained one, or YaRN's stretch of it.
    pub fn full_context(&self, mode: RopeScaling) -> usize {
        self.yarn_for(mode).map_or(self.ctx_train, |y| y.reach())
    }

    /// Sets the YaRN scaling for serving `ctx` positions under `mode` (before any state is
    /// built) and returns the length past which a sequence rotates with it
    /// (`EngineConfig::yarn_past`: `Some(0)` every sequence, `None` none). `Auto` without the
    /// file's own scaling leaves sequences within the trained context on the trained RoPE, so
    /// their numbers do not change; the file's own scaling, or `Yarn`, rotates every sequence.
    pub fn set_rope_for(&mut self, ctx: usize, mode: RopeScaling) -> Option<usize> {
        let from_file = self.yarn.is_some();
        let yarn = self.yarn_for(mode);
        let past = match mode {
            _ if yarn.is_none() => None,
            RopeScaling::Off => None,
            RopeScaling::Yarn(_) => Some(0),
            RopeScaling::Auto if from_file => Some(0),
            RopeScaling::Auto => (ctx > self.ctx_train).then_some(self.ctx_train),
        };
        self.yarn = past.and(yarn);
        past
    }

    pub fn kv_dim(&self) -> usize {
        self.n_kv_head * self.head_dim
    }

    /// Positions of context whose attention costs about what one token's matmuls cost: a prompt
    /// token at depth d costs ≈ 1 + d / depth_unit shallow tokens (what the scheduler budgets).
    /// Matmul FLOPs per token over attention FLOPs per cached position, divided by `slowdown`: how
    /// many times slower than the matmuls the attention kernel turns FLOPs (`Model::depth_unit`
    /// picks it per kernel).
    pub fn depth_unit(&self, slowdown: f64) -> usize {
        let q = self.n_head * self.head_dim;
        let per_layer = self.dim * (q + 2 * self.kv_dim()) + q * self.dim + 3 * self.dim * self.ffn_dim;
        let matmul = 2 * self.n_layer * per_layer;
        let attention = 4 * self.n_layer * q;
        ((matmul as f64 / attention as f64 / slowdown) as usize).max(1)
    }

    /// The window of layer `l`, `None` for a global layer.
    pub fn window(&self, l: usize) -> Option<usize> {
        self.sliding
            .filter(|s| !(l + 1).is_multiple_of(s.global_every))
            .map(|s| s.window)
    }
}

/// YaRN from the file's `{arch}.rope.scaling.*` keys (as llama.cpp's converter writes them), when
/// its type says yarn; the original context defaults to the trained one.
fn yarn_from_gguf(f: &GgufFile, k: &dyn Fn(&str) -> String) -> Result<Option<Yarn>> {
    if f.get_str(&k("rope.scaling.type")).ok() != Some("yarn") {
        return Ok(None);
    }
    let factor = f.get_f64(&k("rope.scaling.factor"))? as f32;
    let orig = match f.get_usize(&k("rope.scaling.original_context_length")) {
        Ok(n) => n,
        Err(_) => f.get_usize(&k("context_length"))?,
    };
    let mut y = Yarn::new(factor, orig);
    if let Ok(b) = f.get_f64(&k("rope.scaling.yarn_beta_fast")) {
        y.beta_fast = b as f32;
    }
    if let Ok(b) = f.get_f64(&k("rope.scaling.yarn_beta_slow")) {
        y.beta_slow = b as f32;
    }
    Ok(Some(y))
}
