//! Scratch buffers for one forward step of up to `max_batch` tokens in up to `max_seqs` sequences,
//! allocated once.

use crate::{Config, StepLayout, Yarn};

pub struct RunState {
    pub max_batch: usize,
    pub max_seqs: usize,
    /// Longest context the RoPE tables cover.
    pub ctx: usize,
    /// Residual stream x: [max_batch, dim]
    pub x: Vec<f32>,
    /// Normed input xb: [max_batch, dim]
    pub xb: Vec<f32>,
    /// q: [max_batch, n_head * head_dim]
    pub q: Vec<f32>,
    /// k, v for the new tokens: [max_batch, kv_dim]
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    /// Attention output before the output projection: [max_batch, n_head * head_dim]
    pub att: Vec<f32>,
    /// Projection outputs: [max_batch, dim]
    pub proj: Vec<f32>,
    /// FFN gate and up: [max_batch, ffn_dim]
    pub gate: Vec<f32>,
    pub up: Vec<f32>,
    /// Logits rows: [logit_capacity, vocab] (max_seqs rows unless `with_logit_rows` asks for
    /// more), in the order of `layout.row_token`.
    pub logits: Vec<f32>,
    /// The sliding-window layers' RoPE tables (their own base), when the model has such layers.
    pub rope_local: Option<(Vec<f32>, Vec<f32>)>,
    /// RoPE tables for every position of the context: [ctx, head_dim / 2]
    pub rope_cos: Vec<f32>,
    pub rope_sin: Vec<f32>,
    /// The same with the model's YaRN scaling, for sequences that rotate with it (`Rope::Yarn`).
    pub rope_yarn: Option<(Vec<f32>, Vec<f32>)>,
    /// Where the current step's tokens and logit rows are.
    pub layout: StepLayout,
    /// Middle-layer rows for `Model::embed`: [max_batch, dim], sized on first use (empty otherwise).
    pub mid: Vec<f32>,
    /// A prompt chunk's KV heads as f32 for the tiled prompt attention: keys [n_kv_head, hd ·
    /// keys_ld(n)] and values [n_kv_head, n, hd] for n positions (values for the f32 and AMX
    /// tiles only); grown as prompts go deeper.
    pub head_keys: Vec<f32>,
    pub head_values: Vec<f32>,
    /// Keys and values as bf16-pair tiles: both for the matrix unit
    /// (`tandem_kernels::attention::to_tiles`), the values for the flash kernel
    /// (`tandem_kernels::flash`), each [n_kv_head, hd · keys_ld(n) / 2].
    pub head_key_tiles: Vec<u32>,
    pub head_value_tiles: Vec<u32>,
    vocab: usize,
    /// head_dim / 2: the width of a RoPE table row.
    rope_half: usize,
}

impl RunState {
    pub fn new(cfg: &Config, max_batch: usize, max_seqs: usize, ctx: usize) -> Self {
        // With YaRN, sequences on the trained RoPE stay within the trained context.
        let plain = if cfg.yarn.is_some() {
            ctx.min(cfg.ctx_train)
        } else {
            ctx
        };
        let (rope_cos, rope_sin) = rope_table(cfg.rope_base, cfg.head_dim, plain, None);
        let rope_yarn = cfg.yarn.map(|y| rope_table(cfg.rope_base, cfg.head_dim, ctx, Some(y)));
        let rope_local = cfg
            .sliding
            .map(|s| rope_table(s.rope_base_local, cfg.head_dim, ctx, None));
        let qd = cfg.n_head * cfg.head_dim;
        let max_seqs = max_seqs.max(1);
        Self {
            max_batch,
            max_seqs,
            ctx,
            x: vec![0.0; max_batch * cfg.dim],
            xb: vec![0.0; max_batch.max(max_seqs) * cfg.dim],
            q: vec![0.0; max_batch * qd],
            k: vec![0.0; max_batch * cfg.kv_dim()],
            v: vec![0.0; max_batch * cfg.kv_dim()],
            att: vec![0.0; max_batch * qd],
            proj: vec![0.0; max_batch * cfg.dim],
            gate: vec![0.0; max_batch * cfg.ffn_dim],
            up: vec![0.0; max_batch * cfg.ffn_dim],
            logits: vec![0.0; max_seqs * cfg.vocab],
            rope_cos,
            rope_sin,
            rope_yarn,
            rope_local,
            layout: StepLayout::default(),
            mid: Vec::new(),
            head_keys: Vec::new(),
            head_values: Vec::new(),
            head_key_tiles: Vec::new(),
            head_value_tiles: Vec::new(),
            vocab: cfg.vocab,
            rope_half: cfg.head_dim / 2,
        }
    }

    /// Room for `rows` logit rows (e.g. verifying several draft tokens per sequence); allocated
    /// here, once, never in a step.
    pub fn with_logit_rows(mut self, rows: usize) -> Self {
        let rows = rows.max(self.logit_capacity());
        self.logits.resize(rows * self.vocab, 0.0);
        self
    }

    /// Positions the RoPE table of `rope` covers.
    pub fn rope_len(&self, rope: crate::Rope) -> usize {
        match (rope, &self.rope_yarn) {
            (crate::Rope::Yarn, Some((cos, _))) => cos.len() / self.rope_half,
            (crate::Rope::Yarn, None) => 0,
            (crate::Rope::Plain, _) => self.rope_cos.len() / self.rope_half,
        }
    }

    /// Most logit rows one step can produce.
    pub fn logit_capacity(&self) -> usize {
        self.logits.len() / self.vocab
    }

    /// Row `j` of sequence `i`'s logit rows, mutable (the sampler applies bias and penalties in
    /// place): [vocab].
    pub fn logit_row_mut(&mut self, i: usize, j: usize) -> Option<&mut [f32]> {
        let r = self.layout.row(i, j)?;
        Some(&mut self.logits[r * self.vocab..(r + 1) * self.vocab])
    }

    /// The logits of sequence `i` of the last step, if it asked for them: [vocab].
    pub fn logits_of(&self, i: usize) -> Option<&[f32]> {
        let r = self.layout.row(i, 0)?;
        Some(&self.logits[r * self.vocab..(r + 1) * self.vocab])
    }

    /// Mutable logits of sequence `i` (the sampler applies bias and penalties in place): its first
    /// row.
    pub fn logits_of_mut(&mut self, i: usize) -> Option<&mut [f32]> {
        self.logit_row_mut(i, 0)
    }
}

/// cos and sin of p · θ_i for every position p < ctx, θ_i = base^(−2i/d) (or YaRN's frequencies,
/// both scaled by its temperature): [ctx, d / 2] each, computed in f64 so long positions keep
/// their precision.
pub fn rope_table(base: f32, head_dim: usize, ctx: usize, yarn: Option<Yarn>) -> (Vec<f32>, Vec<f32>) {
    let hd2 = head_dim / 2;
    let theta: Vec<f64> = (0..hd2)
        .map(|i| match yarn {
            Some(y) => y.inv_freq(base as f64, head_dim, i),
            None => (base as f64).powf(-2.0 * i as f64 / head_dim as f64),
        })
        .collect();
    let m = yarn.map_or(1.0, |y| y.mscale());
    let mut cos = vec![0.0; ctx * hd2];
    let mut sin = vec![0.0; ctx * hd2];
    for p in 0..ctx {
        for (i, t) in theta.iter().enumerate() {
            let a = p as f64 * t;
            cos[p * hd2 + i] = (a.cos() * m) as f32;
            sin[p * hd2 + i] = (a.sin() * m) as f32;
        }
    }
    (cos, sin)
}
