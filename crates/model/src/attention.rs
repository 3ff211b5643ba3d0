//! Attention of a step's tokens over their own sequences' caches, with the choice of kernel inside:
//! generated tokens take the per-token path (each cached K/V row read once for the query heads
//! that share it), prompt tokens a tiled kernel where the CPU runs it (AVX-512 f32 tiles, AMX bf16
//! tiles, or the flash kernel: online softmax, f32 scores, bf16 sums). The layer math calls
//! `Model::attention` once per layer.

use std::cell::RefCell;

use rayon::prelude::*;
use tandem_kernels::attention::{
    keys_ld, prompt_tile, prompt_tile_amx, tile_kernel, to_tiles, TileKernel, TileScratch,
};
use tandem_kernels::flash::prompt_flash;
use tandem_kernels::ops::softmax;

use crate::{KvPool, KvView, Model, RunState, SeqStep, TokenPath};

thread_local! {
    /// Attention scores of one (token, head): [positions]
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// A prompt attention tile's query rows, outputs, position limits and kernel scratch.
    static TILE: RefCell<TileBuffers> = RefCell::new(Default::default());
}

type TileBuffers = (Vec<f32>, Vec<f32>, Vec<usize>, TileScratch);

/// Prompt tokens per tile of the tiled attention (× the query heads of a KV head: 24–28 rows for
/// the tiers), small enough that a tile's scores stay in L2 at depth 4096.
const PROMPT_TILE: usize = 4;

/// Most prompt tokens per tile of the flash kernel (96–112 rows for the tiers): each tile reads
/// the head's keys and values once, its running outputs (28–48 KiB) stay in L2.
const FLASH_TILE: usize = 16;

/// Tokens per tile for `len` prompt tokens on `kernel`: the flash kernel's tiles as large as
/// keeps every thread busy, at most `FLASH_TILE` (a row's numbers never depend on its tile).
fn tile_tokens(kernel: TileKernel, len: usize) -> usize {
    match kernel {
        TileKernel::Flash => len.div_ceil(rayon::current_num_threads()).clamp(1, FLASH_TILE),
        _ => PROMPT_TILE,
    }
}

impl Model {
    /// Cached positions whose prompt attention costs about one token's matmuls
    /// (`Config::depth_unit`) on this model's prompt attention kernel. Slowdowns fitted on Zen 4
    /// from pp512 at depths 0, 8,192 and 32,768 (mini): the f32 tiles 3 (2,500–3,700 positions),
    /// the flash kernel 2 (4,470 at 8k, 3,930 at 32k; 2 gives 4,160).
    pub fn depth_unit(&self) -> usize {
        let slowdown = match tile_kernel(self.config.head_dim, self.kernels) {
            Some(TileKernel::Flash) => 2.0,
            _ => 3.0,
        };
        self.config.depth_unit(slowdown)
    }

    /// Causal grouped-query attention of the step's tokens over their own sequences' caches.
    /// st.q: [n, n_head, hd] → st.att: [n, n_head, hd]. The `group` query heads that share KV head g
    /// (heads g·group .. (g+1)·group) are done together, so each cached K and V row is read once
    /// for all of them.
    ///
    /// Prompt tokens take the tiled kernel where the CPU runs it (`prompt_attention`), generated
    /// tokens always this per-token path; the kind of token, never the batch, decides.
    pub(crate) fn attention(
        &self,
        st: &mut RunState,
        pool: &KvPool,
        seqs: &[SeqStep],
        layer: usize,
        n: usize,
        n_generated: usize,
    ) {
        let c = &self.config;
        let hd = c.head_dim;
        // Sliding-window layers take the per-token path, which reads only the positions in reach.
        let window = c.window(layer);
        let tiled = window.is_none() && tile_kernel(hd, self.kernels).is_some();
        let isa = self.kernels.isa();
        let n = if tiled { n_generated } else { n };
        let group = c.n_head / c.n_kv_head;
        let scale = 1.0 / (hd as f32).sqrt();
        let (q, tok_seq, tok_pos) = (&st.q, &st.layout.tok_seq, &st.layout.tok_pos);
        st.att[..n * c.n_head * hd]
            .par_chunks_mut(group * hd)
            .enumerate()
            .for_each(|(i, out)| {
                let (t, g) = (i / c.n_kv_head, i % c.n_kv_head);
                let kv = pool.view(seqs[tok_seq[t]].kv);
                // q heads of this group: [group, hd]
                let qg = &q[(t * c.n_head + g * group) * hd..(t * c.n_head + (g + 1) * group) * hd];
                let off = g * hd;
                let n_ctx = tok_pos[t] + 1;
                SCORES.with(|s| {
                    let mut s = s.borrow_mut();
                    // scores: [group, n_ctx], read and written for the positions in reach only
                    // (a sliding window's last `w`).
                    let from = window.map_or(0, |w| n_ctx.saturating_sub(w));
                    s.resize(group * n_ctx, 0.0);
                    kv.scores(layer, off, qg, group, from..n_ctx, scale, &mut s, isa);
                    for j in 0..group {
                        softmax(&mut s[j * n_ctx + from..(j + 1) * n_ctx], isa);
                    }
                    out.fill(0.0);
                    kv.attend(layer, off, &s, group, from..n_ctx, out, isa);
                });
            });
        if tiled {
            for (i, s) in seqs.iter().enumerate().filter(|(_, s)| s.path == TokenPath::Prompt) {
                self.prompt_attention(st, pool.view(s.kv), s, st.layout.seq_first[i], layer);
            }
        }
    }

    /// Causal attention of one sequence's prompt tokens (step layout `first..first + len`, positions
    /// `kv.len..kv.len + len`) on the tiled kernel: each KV head's keys and values up to the last
    /// position converted once (`head_operands`), then tiles of tokens × the heads sharing a KV
    /// head, in parallel. st.q → st.att, both [n, n_head, hd].
    fn prompt_attention(&self, st: &mut RunState, kv: KvView, s: &SeqStep, first: usize, layer: usize) {
        let c = &self.config;
        let (k, isa) = (self.kernels, self.kernels.isa());
        let kernel = tile_kernel(c.head_dim, k).expect("checked by attention()");
        let (hd, nkv) = (c.head_dim, c.n_kv_head);
        let group = c.n_head / nkv;
        let (len, pos0) = (s.tokens.len(), s.kv.len);
        let n = pos0 + len;
        let ld = keys_ld(n);
        self.head_operands(st, kv, kernel, n, layer);
        let scale = 1.0 / (hd as f32).sqrt();
        let (row, per) = (c.n_head * hd, hd * ld / 2);
        let (q, keys, values) = (&st.q, &st.head_keys, &st.head_values);
        let (key_tiles, value_tiles) = (&st.head_key_tiles, &st.head_value_tiles);
        let tile_len = tile_tokens(kernel, len);
        st.att[first * row..(first + len) * row]
            .par_chunks_mut(tile_len * row)
            .enumerate()
            .for_each(|(tile, att)| {
                let t0 = tile * tile_len;
                let nt = att.len() / row;
                TILE.with(|b| {
                    let (qs, out, limits, scratch) = &mut *b.borrow_mut();
                    for g in 0..nkv {
                        // The tile's query rows for KV head g: (token t, head j) → row t·group + j.
                        qs.clear();
                        limits.clear();
                        for t in 0..nt {
                            let at = (first + t0 + t) * row + g * group * hd;
                            qs.extend_from_slice(&q[at..at + group * hd]);
                            limits.extend(std::iter::repeat_n(pos0 + t0 + t + 1, group));
                        }
                        out.resize(qs.len(), 0.0);
                        let kt = &keys[g * hd * ld..(g + 1) * hd * ld];
                        let vt = || &value_tiles[g * per..(g + 1) * per];
                        match kernel {
                            TileKernel::Amx => {
                                let tiles = (&key_tiles[g * per..(g + 1) * per], vt());
                                prompt_tile_amx(qs, hd, limits, tiles, n, scale, scratch, out, k)
                            }
                            TileKernel::Flash => {
                                prompt_flash(qs, hd, limits, (kt, vt()), n, scale, &mut scratch.flash, out, isa)
                            }
                            TileKernel::Avx512 => {
                                let v = &values[g * n * hd..(g + 1) * n * hd];
                                prompt_tile(qs, hd, limits, kt, ld, v, scale, scratch, out, isa)
                            }
                        }
                        for t in 0..nt {
                            let at = t * row + g * group * hd;
                            att[at..at + group * hd].copy_from_slice(&out[t * group * hd..(t + 1) * group * hd]);
                        }
                    }
                });
            });
    }

    /// Each KV head's operands for `kernel`, positions `0..n`, per head in parallel: f32 key
    /// panels (`st.head_keys`, every kernel), then f32 values (the f32 tiles), bf16 value tiles
    /// straight from the cache (the flash kernel), or both and the key tiles (the matrix unit).
    fn head_operands(&self, st: &mut RunState, kv: KvView, kernel: TileKernel, n: usize, layer: usize) {
        let (hd, nkv, isa) = (self.config.head_dim, self.config.n_kv_head, self.kernels.isa());
        let (ld, per) = (keys_ld(n), self.config.head_dim * keys_ld(n) / 2);
        grow(&mut st.head_keys, nkv * hd * ld);
        let keys = st.head_keys[..nkv * hd * ld].par_chunks_mut(hd * ld).enumerate();
        if kernel == TileKernel::Flash {
            grow(&mut st.head_value_tiles, nkv * per);
            let tiles = st.head_value_tiles[..nkv * per].par_chunks_mut(per);
            keys.zip(tiles).for_each(|((g, keys), vt)| {
                kv.head_keys_f32(layer, g * hd, hd, n, keys, isa);
                kv.head_value_tiles(layer, g * hd, hd, n, vt, isa);
            });
            return;
        }
        grow(&mut st.head_values, nkv * n * hd);
        let heads = keys.zip(st.head_values[..nkv * n * hd].par_chunks_mut(n * hd));
        let f32_head = |g: usize, keys: &mut [f32], values: &mut [f32]| {
            kv.head_keys_f32(layer, g * hd, hd, n, keys, isa);
            kv.head_values_f32(layer, g * hd, hd, n, values, isa);
        };
        if kernel == TileKernel::Avx512 {
            heads.for_each(|((g, keys), values)| f32_head(g, keys, values));
            return;
        }
        grow(&mut st.head_key_tiles, nkv * per);
        grow(&mut st.head_value_tiles, nkv * per);
        let tiles = st.head_key_tiles[..nkv * per].par_chunks_mut(per);
        let tiles = tiles.zip(st.head_value_tiles[..nkv * per].par_chunks_mut(per));
        heads.zip(tiles).for_each(|(((g, keys), values), (kt, vt))| {
            f32_head(g, keys, values);
            to_tiles(keys, values, hd, n, (kt, vt), isa);
        });
    }
}

/// `v` at least `len` long (scratch kept between steps).
fn grow<T: Default + Clone>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::default());
    }
}
