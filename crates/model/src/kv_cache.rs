//! The KV cache: keys and values of every layer and position, allocated once for the context size.

use crate::Config;

/// k, v: [n_layer, ctx, kv_dim] f32. Positions `0..len` are filled.
pub struct KvCache {
    pub ctx: usize,
    pub kv_dim: usize,
    pub n_layer: usize,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    /// Number of positions filled.
    pub len: usize,
}

impl KvCache {
    pub fn new(cfg: &Config, ctx: usize) -> Self {
        let n = cfg.n_layer * ctx * cfg.kv_dim();
        Self {
            ctx,
            kv_dim: cfg.kv_dim(),
            n_layer: cfg.n_layer,
            k: vec![0.0; n],
            v: vec![0.0; n],
            len: 0,
        }
    }

    /// Bytes a cache of `ctx` positions takes for this model (K and V, f32).
    pub fn bytes_for(cfg: &Config, ctx: usize) -> usize {
        2 * cfg.n_layer * ctx * cfg.kv_dim() * std::mem::size_of::<f32>()
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
}

impl KvCache {
    /// Copies positions `0..len` of every layer from `other` (same model) and sets `self.len = len`:
    /// `n` > 1 choices share one prefill this way.
    pub fn copy_prefix_from(&mut self, other: &KvCache, len: usize) {
        assert!(len <= other.len && len <= self.ctx && self.kv_dim == other.kv_dim && self.n_layer == other.n_layer);
        for l in 0..self.n_layer {
            let (src, dst) = (other.at(l, 0), self.at(l, 0));
            let n = len * self.kv_dim;
            self.k[dst..dst + n].copy_from_slice(&other.k[src..src + n]);
            self.v[dst..dst + n].copy_from_slice(&other.v[src..src + n]);
        }
        self.len = len;
    }
}
