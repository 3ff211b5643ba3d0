//! The KV cache: keys and values of every layer and position, allocated once for the context size,
//! in f16 (half the memory and bandwidth; the default, as in llama.cpp) or f32 (exact).

use tandem_kernels::dispatch::dot_f32;
use tandem_kernels::ops::{attend_f16, axpy, scores_f16, to_f16};

use crate::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvType {
    F16,
    F32,
}

impl KvType {
    pub fn bytes(self) -> usize {
        match self {
            KvType::F16 => 2,
            KvType::F32 => 4,
        }
    }
}

/// k, v: [n_layer, ctx, kv_dim] each.
enum Store {
    F32 { k: Vec<f32>, v: Vec<f32> },
    F16 { k: Vec<u16>, v: Vec<u16> },
}

/// Positions `0..len` are filled.
pub struct KvCache {
    pub ctx: usize,
    pub kv_dim: usize,
    pub n_layer: usize,
    store: Store,
    /// Number of positions filled.
    pub len: usize,
}

impl KvCache {
    /// An f16 cache.
    pub fn new(cfg: &Config, ctx: usize) -> Self {
        Self::with_type(cfg, ctx, KvType::F16)
    }

    pub fn with_type(cfg: &Config, ctx: usize, ty: KvType) -> Self {
        let n = cfg.n_layer * ctx * cfg.kv_dim();
        let store = match ty {
            KvType::F32 => Store::F32 {
                k: vec![0.0; n],
                v: vec![0.0; n],
            },
            KvType::F16 => Store::F16 {
                k: vec![0; n],
                v: vec![0; n],
            },
        };
        Self {
            ctx,
            kv_dim: cfg.kv_dim(),
            n_layer: cfg.n_layer,
            store,
            len: 0,
        }
    }

    pub fn kv_type(&self) -> KvType {
        match self.store {
            Store::F32 { .. } => KvType::F32,
            Store::F16 { .. } => KvType::F16,
        }
    }

    /// Bytes a cache of `ctx` positions takes for this model (K and V).
    pub fn bytes_for(cfg: &Config, ctx: usize, ty: KvType) -> usize {
        2 * cfg.n_layer * ctx * cfg.kv_dim() * ty.bytes()
    }

    /// Forgets positions from `len` on (e.g. to reuse a shared prompt prefix).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Index of (layer, pos, 0).
    #[inline]
    pub fn at(&self, layer: usize, pos: usize) -> usize {
        (layer * self.ctx + pos) * self.kv_dim
    }

    /// Stores the key and value rows ([kv_dim] each) of `pos` in `layer`.
    pub fn write(&mut self, layer: usize, pos: usize, k_row: &[f32], v_row: &[f32]) {
        let at = self.at(layer, pos);
        let n = self.kv_dim;
        match &mut self.store {
            Store::F32 { k, v } => {
                k[at..at + n].copy_from_slice(k_row);
                v[at..at + n].copy_from_slice(v_row);
            }
            Store::F16 { k, v } => {
                to_f16(k_row, &mut k[at..at + n]);
                to_f16(v_row, &mut v[at..at + n]);
            }
        }
    }

    /// Scores of `g` query heads (q: [g, hd]) against K[layer][0..n][off..off + hd]:
    /// `scores[j·n + p] = q[j] · K[p] · scale`, each K row read once.
    #[allow(clippy::too_many_arguments)]
    pub fn scores(&self, layer: usize, off: usize, q: &[f32], g: usize, n: usize, scale: f32, scores: &mut [f32]) {
        let hd = q.len() / g;
        let at = self.at(layer, 0) + off;
        match &self.store {
            Store::F16 { k, .. } => scores_f16(q, g, hd, &k[at..], self.kv_dim, n, scale, scores),
            Store::F32 { k, .. } => {
                for p in 0..n {
                    let row = &k[at + p * self.kv_dim..][..hd];
                    for j in 0..g {
                        scores[j * n + p] = dot_f32(&q[j * hd..(j + 1) * hd], row) * scale;
                    }
                }
            }
        }
    }

    /// `out[j] += Σ_p probs[j·n + p] · V[layer][p][off..off + hd]` for `g` heads (out: [g, hd]),
    /// position by position, each V row read once.
    pub fn attend(&self, layer: usize, off: usize, probs: &[f32], g: usize, n: usize, out: &mut [f32]) {
        let hd = out.len() / g;
        let at = self.at(layer, 0) + off;
        match &self.store {
            Store::F16 { v, .. } => attend_f16(probs, g, n, &v[at..], self.kv_dim, hd, out),
            Store::F32 { v, .. } => {
                for p in 0..n {
                    let row = &v[at + p * self.kv_dim..][..hd];
                    for j in 0..g {
                        axpy(probs[j * n + p], row, &mut out[j * hd..(j + 1) * hd]);
                    }
                }
            }
        }
    }

    /// Head `off / hd`'s keys and values at positions `0..n` of `layer` as f32, the operands of
    /// the prompt attention (`tandem_kernels::attention`): keys_t in panels ([keys_ld(n) / 16][hd][16]),
    /// values [n][hd].
    pub fn head_f32(&self, layer: usize, off: usize, hd: usize, n: usize, keys_t: &mut [f32], values: &mut [f32]) {
        use tandem_kernels::attention::{keys_t_f16, keys_t_f32, values_f16, values_f32};
        let at = self.at(layer, 0) + off;
        match &self.store {
            Store::F16 { k, v } => {
                keys_t_f16(&k[at..], self.kv_dim, hd, n, keys_t);
                values_f16(&v[at..], self.kv_dim, hd, n, values);
            }
            Store::F32 { k, v } => {
                keys_t_f32(&k[at..], self.kv_dim, hd, n, keys_t);
                values_f32(&v[at..], self.kv_dim, hd, n, values);
            }
        }
    }

    /// Copies positions `0..len` of every layer from `other` (same model and type) and sets
    /// `self.len = len`: `n` > 1 choices share one prefill this way.
    pub fn copy_prefix_from(&mut self, other: &KvCache, len: usize) {
        assert!(len <= other.len && len <= self.ctx && self.kv_dim == other.kv_dim && self.n_layer == other.n_layer);
        let n = len * self.kv_dim;
        for l in 0..self.n_layer {
            let (src, dst) = (other.at(l, 0), self.at(l, 0));
            match (&mut self.store, &other.store) {
                (Store::F32 { k, v }, Store::F32 { k: ok, v: ov }) => {
                    k[dst..dst + n].copy_from_slice(&ok[src..src + n]);
                    v[dst..dst + n].copy_from_slice(&ov[src..src + n]);
                }
                (Store::F16 { k, v }, Store::F16 { k: ok, v: ov }) => {
                    k[dst..dst + n].copy_from_slice(&ok[src..src + n]);
                    v[dst..dst + n].copy_from_slice(&ov[src..src + n]);
                }
                _ => panic!("copy_prefix_from between caches of different types"),
            }
        }
        self.len = len;
    }
}
