//! The KV cache in blocks (pages) of `KV_BLOCK` positions, in f16 (half the memory and bandwidth;
//! the default, as in llama.cpp) or f32 (exact).
//!
//! A `KvPool` holds the keys and values of a fixed number of blocks, allocated once. A
//! `BlockTable` maps one sequence's positions onto blocks: position p lives in block
//! `blocks[p / KV_BLOCK]`, row `p % KV_BLOCK`. Sequences that share a prompt prefix can share its
//! full blocks; which block belongs to whom is the engine's business (`tandem_engine::kv_blocks`):
//! the forward pass only writes positions `len..` of the tables it is given and reads `0..len`.
//! `KvCache` is one sequence with a pool of its own, for single-sequence callers (`forward`,
//! `embed`, scoring).
//!
//! Attention reads a block's positions as one contiguous run (`kv_dim` apart), so the kernels
//! see runs of up to `KV_BLOCK` rows; every result is bit-identical to one contiguous cache.

use tandem_kernels::dispatch::dot_f32;
use tandem_kernels::kv_f16;
use tandem_kernels::kv_q4 as q4;
use tandem_kernels::kv_q8::{self as q8, QuantRows};
use tandem_kernels::ops::{attend_f16, axpy};
use tandem_kernels::pages::advise_vec;
use tandem_kernels::Isa;

use std::ops::Range;

use crate::Config;

/// Positions per block: the granularity of sharing and of allocation. A multiple of the prompt
/// attention's key panels (16) and of `keys_ld`'s rounding (32), and the f16 keys' block
/// (`kv_f16::BLOCK`).
pub const KV_BLOCK: usize = 32;
const _: () = assert!(KV_BLOCK == kv_f16::BLOCK);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvType {
    F16,
    F32,
    /// ggml's q8_0 blocks (`tandem_kernels::kv_q8`): 34 bytes per 32 values.
    Q8_0,
    /// ggml's q4_0 blocks (`tandem_kernels::kv_q4`): 18 bytes per 32 values.
    Q4_0,
}

impl KvType {
    /// Bytes of a row of `n` values (n a multiple of 32 for q8_0 and q4_0).
    pub fn row_bytes(self, n: usize) -> usize {
        match self {
            KvType::F16 => 2 * n,
            KvType::F32 => 4 * n,
            KvType::Q8_0 => n + n / q8::QK * 2,
            KvType::Q4_0 => n / 2 + n / q8::QK * 2,
        }
    }
}

/// k, v: [n_blocks, n_layer, KV_BLOCK, kv_dim] each (q8_0 and q4_0: quants so — q4_0 two per
/// byte — scales [.., kv_dim / 32]),
/// except f16, head-major within a block so one head's block is one contiguous run:
/// keys [n_blocks, n_layer, n_kv_head, head_dim, KV_BLOCK] (position-minor, `kv_f16`), values
/// [n_blocks, n_layer, n_kv_head, KV_BLOCK, head_dim].
enum Store {
    F32 {
        k: Vec<f32>,
        v: Vec<f32>,
    },
    F16 {
        k: Vec<u16>,
        v: Vec<u16>,
    },
    Q8 {
        k: Vec<i8>,
        kd: Vec<u16>,
        v: Vec<i8>,
        vd: Vec<u16>,
    },
    Q4 {
        k: Vec<u8>,
        kd: Vec<u16>,
        v: Vec<u8>,
        vd: Vec<u16>,
    },
}

/// The blocks of one model's KV cache.
pub struct KvPool {
    pub kv_dim: usize,
    head_dim: usize,
    pub n_layer: usize,
    n_blocks: usize,
    store: Store,
}

/// One sequence's blocks: positions `0..len` are filled, `blocks.len() · KV_BLOCK` can be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockTable {
    pub blocks: Vec<u32>,
    pub len: usize,
    /// How its keys were rotated: the sequence's RoPE for its whole life (a key rotated one way
    /// is never read by a query rotated the other).
    pub rope: Rope,
}

/// The rotary embedding of a sequence's positions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Rope {
    /// The trained RoPE.
    #[default]
    Plain,
    /// The model's YaRN scaling (`Config::yarn`), for sequences that reach past the trained
    /// context.
    Yarn,
}

impl Rope {
    /// The RoPE of a sequence that may reach `positions` positions, where sequences reaching past
    /// `yarn_past` rotate with YaRN (`Config::set_rope_for`'s answer; `None`: none do).
    pub fn reaching(positions: usize, yarn_past: Option<usize>) -> Rope {
        match yarn_past {
            Some(n) if positions > n => Rope::Yarn,
            _ => Rope::Plain,
        }
    }
}

impl BlockTable {
    /// A table over `blocks` with nothing filled.
    pub fn new(blocks: Vec<u32>) -> Self {
        Self {
            blocks,
            len: 0,
            rope: Rope::Plain,
        }
    }

    /// The same with its positions rotated by `rope`.
    pub fn with_rope(self, rope: Rope) -> Self {
        Self { rope, ..self }
    }

    /// Positions the table's blocks hold.
    pub fn capacity(&self) -> usize {
        self.blocks.len() * KV_BLOCK
    }

    /// Forgets positions from `len` on (e.g. to reuse a shared prompt prefix); keeps the blocks.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

/// Blocks needed for `positions` positions.
pub fn blocks_for(positions: usize) -> usize {
    positions.div_ceil(KV_BLOCK)
}

impl KvPool {
    /// `n_blocks` zeroed blocks (the allocator maps pages lazily, so untouched blocks cost no RAM).
    pub fn new(cfg: &Config, n_blocks: usize, ty: KvType) -> Self {
        assert!(
            matches!(ty, KvType::F16 | KvType::F32) || cfg.head_dim.is_multiple_of(q8::QK),
            "a q8_0 or q4_0 KV cache needs heads of a multiple of 32 values"
        );
        let n = n_blocks * cfg.n_layer * KV_BLOCK * cfg.kv_dim();
        let store = match ty {
            KvType::F32 => Store::F32 {
                k: vec![0.0; n],
                v: vec![0.0; n],
            },
            KvType::F16 => Store::F16 {
                k: vec![0; n],
                v: vec![0; n],
            },
            KvType::Q8_0 => Store::Q8 {
                k: vec![0; n],
                kd: vec![0; n / q8::QK],
                v: vec![0; n],
                vd: vec![0; n / q8::QK],
            },
            KvType::Q4_0 => Store::Q4 {
                k: vec![0; n / 2],
                kd: vec![0; n / q8::QK],
                v: vec![0; n / 2],
                vd: vec![0; n / q8::QK],
            },
        };
        // Still untouched (zeroed pages are mapped on first write): huge pages from the start.
        match &store {
            Store::F32 { k, v } => {
                advise_vec(k);
                advise_vec(v);
            }
            Store::F16 { k, v } => {
                advise_vec(k);
                advise_vec(v);
            }
            Store::Q8 { k, kd, v, vd } => {
                advise_vec(k);
                advise_vec(v);
                advise_vec(kd);
                advise_vec(vd);
            }
            Store::Q4 { k, kd, v, vd } => {
                advise_vec(k);
                advise_vec(v);
                advise_vec(kd);
                advise_vec(vd);
            }
        }
        Self {
            kv_dim: cfg.kv_dim(),
            head_dim: cfg.head_dim,
            n_layer: cfg.n_layer,
            n_blocks,
            store,
        }
    }

    pub fn n_blocks(&self) -> usize {
        self.n_blocks
    }

    pub fn kv_type(&self) -> KvType {
        match self.store {
            Store::F32 { .. } => KvType::F32,
            Store::F16 { .. } => KvType::F16,
            Store::Q8 { .. } => KvType::Q8_0,
            Store::Q4 { .. } => KvType::Q4_0,
        }
    }

    /// Bytes one block takes for this model (K and V, every layer).
    pub fn block_bytes(cfg: &Config, ty: KvType) -> usize {
        2 * cfg.n_layer * KV_BLOCK * ty.row_bytes(cfg.kv_dim())
    }

    /// Index of (block, layer, row, 0).
    #[inline]
    fn at(&self, block: u32, layer: usize, row: usize) -> usize {
        ((block as usize * self.n_layer + layer) * KV_BLOCK + row) * self.kv_dim
    }

    /// Index of (layer, pos, 0) through `table`.
    #[inline]
    fn pos_at(&self, table: &BlockTable, layer: usize, pos: usize) -> usize {
        self.at(table.blocks[pos / KV_BLOCK], layer, pos % KV_BLOCK)
    }

    /// Stores the key and value rows ([kv_dim] each) of `pos` in `layer`.
    pub fn write(&mut self, table: &BlockTable, layer: usize, pos: usize, (k_row, v_row): (&[f32], &[f32]), isa: Isa) {
        let at = self.pos_at(table, layer, pos);
        let n = self.kv_dim;
        match &mut self.store {
            Store::F32 { k, v } => {
                k[at..at + n].copy_from_slice(k_row);
                v[at..at + n].copy_from_slice(v_row);
            }
            Store::F16 { k, v } => {
                let (base, r, hd) = (at - pos % KV_BLOCK * n, pos % KV_BLOCK, self.head_dim);
                kv_f16::write_row(k_row, r, &mut k[base..base + n * KV_BLOCK], isa);
                for (h, row) in v_row.chunks_exact(hd).enumerate() {
                    let at = base + (h * KV_BLOCK + r) * hd;
                    tandem_kernels::ops::to_f16(row, &mut v[at..at + hd], isa);
                }
            }
            Store::Q8 { k, kd, v, vd } => {
                let (s, e) = (at / q8::QK, (at + n) / q8::QK);
                q8::quantize_row(k_row, &mut k[at..at + n], &mut kd[s..e]);
                q8::quantize_row(v_row, &mut v[at..at + n], &mut vd[s..e]);
            }
            Store::Q4 { k, kd, v, vd } => {
                let (s, e) = (at / q8::QK, (at + n) / q8::QK);
                q4::quantize_row(k_row, &mut k[at / 2..(at + n) / 2], &mut kd[s..e]);
                q4::quantize_row(v_row, &mut v[at / 2..(at + n) / 2], &mut vd[s..e]);
            }
        }
    }

    /// Copies rows `0..rows` of every layer of block `src` into block `dst` (a shared block's
    /// filled part becoming a sequence's own, to be written on).
    pub fn copy_block(&mut self, src: u32, dst: u32, rows: usize) {
        assert!(rows <= KV_BLOCK && src != dst && (src.max(dst) as usize) < self.n_blocks);
        let n = rows * self.kv_dim;
        for l in 0..self.n_layer {
            let (s, d) = (self.at(src, l, 0), self.at(dst, l, 0));
            match &mut self.store {
                Store::F32 { k, v } => {
                    k.copy_within(s..s + n, d);
                    v.copy_within(s..s + n, d);
                }
                Store::F16 { k, v } => {
                    // Head-major blocks: the whole block's rows of this layer.
                    k.copy_within(s..s + KV_BLOCK * self.kv_dim, d);
                    v.copy_within(s..s + KV_BLOCK * self.kv_dim, d);
                }
                Store::Q8 { k, kd, v, vd } => {
                    k.copy_within(s..s + n, d);
                    v.copy_within(s..s + n, d);
                    let (s, d, n) = (s / q8::QK, d / q8::QK, n / q8::QK);
                    kd.copy_within(s..s + n, d);
                    vd.copy_within(s..s + n, d);
                }
                Store::Q4 { k, kd, v, vd } => {
                    k.copy_within(s / 2..(s + n) / 2, d / 2);
                    v.copy_within(s / 2..(s + n) / 2, d / 2);
                    let (s, d, n) = (s / q8::QK, d / q8::QK, n / q8::QK);
                    kd.copy_within(s..s + n, d);
                    vd.copy_within(s..s + n, d);
                }
            }
        }
    }

    /// A pool for `count` sequences of `ctx` positions each, and their tables: sequence i owns a
    /// fixed run of blocks (callers that run several sequences without sharing: the draft model,
    /// benchmarks, tests).
    pub fn with_tables(cfg: &Config, ty: KvType, ctx: usize, count: usize) -> (Self, Vec<BlockTable>) {
        let per = blocks_for(ctx) as u32;
        let tables = (0..count as u32)
            .map(|i| BlockTable::new((i * per..(i + 1) * per).collect()))
            .collect();
        (Self::new(cfg, count * per as usize, ty), tables)
    }

    /// Whether every block of `table` is one of this pool's.
    pub fn holds(&self, table: &BlockTable) -> bool {
        table.blocks.iter().all(|&b| (b as usize) < self.n_blocks)
    }

    /// The cache of one sequence, for attention.
    pub fn view<'a>(&'a self, table: &'a BlockTable) -> KvView<'a> {
        KvView { pool: self, table }
    }
}

/// One sequence's cache, read-only: what attention reads.
#[derive(Clone, Copy)]
pub struct KvView<'a> {
    pool: &'a KvPool,
    table: &'a BlockTable,
}

impl KvView<'_> {
    /// The runs of positions `pos` block by block: (first position, rows, index of the run's
    /// first row in `layer`, index of the block's row 0 in `layer`).
    fn runs(&self, layer: usize, pos: Range<usize>) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
        let first = pos.start / KV_BLOCK;
        let blocks = if pos.is_empty() {
            0..0
        } else {
            first..pos.end.div_ceil(KV_BLOCK)
        };
        blocks.map(move |b| {
            let p0 = (b * KV_BLOCK).max(pos.start);
            let rows = ((b + 1) * KV_BLOCK).min(pos.end) - p0;
            let base = self.pool.at(self.table.blocks[b], layer, 0);
            (p0, rows, base + p0 % KV_BLOCK * self.pool.kv_dim, base)
        })
    }

    /// Scores of `g` query heads (q: [g, hd]) against K[layer][pos][off..off + hd], n = pos.end:
    /// `scores[j·n + p] = q[j] · K[p] · scale` for p in `pos`, each K row read once (a sliding
    /// window reads only its positions).
    #[allow(clippy::too_many_arguments)]
    pub fn scores(
        &self,
        layer: usize,
        off: usize,
        q: &[f32],
        g: usize,
        pos: Range<usize>,
        scale: f32,
        scores: &mut [f32],
        isa: Isa,
    ) {
        let (hd, n) = (q.len() / g, pos.end);
        let kv_dim = self.pool.kv_dim;
        let mut runs = self.runs(layer, pos).peekable();
        while let Some((p0, rows, at, base)) = runs.next() {
            let at = at + off;
            let next = runs.peek().map_or(base, |r| r.3) + off * KV_BLOCK;
            match &self.pool.store {
                Store::F16 { k, .. } => {
                    let (keys, r0) = (&k[base + off * KV_BLOCK..], p0 % KV_BLOCK);
                    kv_f16::scores(q, g, keys, &k[next..], r0..r0 + rows, n, scale, &mut scores[p0..], isa)
                }
                Store::Q8 { k, kd, .. } => {
                    let rows_q8 = q8_rows(k, kd, at, kv_dim, hd);
                    q8::scores(q, g, rows_q8, rows, n, scale, &mut scores[p0..], isa)
                }
                Store::Q4 { k, kd, .. } => {
                    let rows_q4 = q4_rows(k, kd, at, kv_dim, hd);
                    q8::scores(q, g, rows_q4, rows, n, scale, &mut scores[p0..], isa)
                }
                Store::F32 { k, .. } => {
                    for p in 0..rows {
                        let row = &k[at + p * kv_dim..][..hd];
                        for j in 0..g {
                            scores[j * n + p0 + p] = dot_f32(&q[j * hd..(j + 1) * hd], row, isa) * scale;
                        }
                    }
                }
            }
        }
    }

    /// `out[j] += Σ_{p in pos} probs[j·n + p] · V[layer][p][off..off + hd]` for `g` heads (out:
    /// [g, hd], n = pos.end), position by position, each V row read once.
    #[allow(clippy::too_many_arguments)]
    pub fn attend(
        &self,
        layer: usize,
        off: usize,
        probs: &[f32],
        g: usize,
        pos: Range<usize>,
        out: &mut [f32],
        isa: Isa,
    ) {
        let (hd, n) = (out.len() / g, pos.end);
        let kv_dim = self.pool.kv_dim;
        let mut runs = self.runs(layer, pos).peekable();
        while let Some((p0, rows, at, base)) = runs.next() {
            let at = at + off;
            match &self.pool.store {
                Store::F16 { v, .. } => {
                    // This head's block: [KV_BLOCK][hd], rows hd apart.
                    let head = |base: usize| base + off * KV_BLOCK;
                    let next = head(runs.peek().map_or(base, |r| r.3));
                    let rows_at = &v[head(base) + p0 % KV_BLOCK * hd..];
                    attend_f16(&probs[p0..], g, rows, n, rows_at, &v[next..], hd, hd, out, isa)
                }
                Store::Q8 { v, vd, .. } => {
                    q8::attend(&probs[p0..], g, rows, n, q8_rows(v, vd, at, kv_dim, hd), out, isa)
                }
                Store::Q4 { v, vd, .. } => {
                    q8::attend(&probs[p0..], g, rows, n, q4_rows(v, vd, at, kv_dim, hd), out, isa)
                }
                Store::F32 { v, .. } => {
                    for p in 0..rows {
                        let row = &v[at + p * kv_dim..][..hd];
                        for j in 0..g {
                            axpy(probs[j * n + p0 + p], row, &mut out[j * hd..(j + 1) * hd], isa);
                        }
                    }
                }
            }
        }
    }

    /// Head `off / hd`'s keys at positions `0..n` of `layer` as f32 panels, an operand of the
    /// prompt attention (`tandem_kernels::attention`): keys_t [keys_ld(n) / 16][hd][16].
    pub fn head_keys_f32(&self, layer: usize, off: usize, hd: usize, n: usize, keys_t: &mut [f32], isa: Isa) {
        use tandem_kernels::attention::{keys_t_f32, keys_t_with};
        let row = |p: usize| self.pool.pos_at(self.table, layer, p) + off;
        match &self.pool.store {
            Store::F16 { k, .. } => {
                assert_eq!(keys_t.len(), hd * tandem_kernels::attention::keys_ld(n));
                // Each block of keys is two of the prompt tiles' panels.
                for (b, panels) in keys_t.chunks_exact_mut(2 * hd * 16).enumerate() {
                    let base = self.pool.at(self.table.blocks[b], layer, 0) + off * KV_BLOCK;
                    let rows = n.saturating_sub(b * KV_BLOCK).min(KV_BLOCK);
                    kv_f16::to_panels(&k[base..], hd, rows, panels, isa);
                }
            }
            Store::F32 { k, .. } => keys_t_f32(|p| &k[row(p)..], hd, n, keys_t),
            // Positions are found block by block (`row`), so each is read as a one-row run.
            Store::Q8 { k, kd, .. } => {
                keys_t_with(hd, n, keys_t, |p, out| q8_rows(k, kd, row(p), 0, hd).row(0, out, isa))
            }
            Store::Q4 { k, kd, .. } => {
                keys_t_with(hd, n, keys_t, |p, out| q4_rows(k, kd, row(p), 0, hd).row(0, out, isa))
            }
        }
    }

    /// Head `off / hd`'s value at position `p` of `layer` as f32: out [hd].
    pub fn value_row(&self, layer: usize, off: usize, p: usize, out: &mut [f32], isa: Isa) {
        let hd = out.len();
        let row = || self.pool.pos_at(self.table, layer, p) + off;
        match &self.pool.store {
            Store::F16 { v, .. } => {
                // A block's values are head-major: [head][KV_BLOCK][hd].
                let base = self.pool.at(self.table.blocks[p / KV_BLOCK], layer, 0);
                let at = base + (off / hd * KV_BLOCK + p % KV_BLOCK) * hd;
                tandem_kernels::attention::f16_row(&v[at..at + hd], out, isa)
            }
            Store::F32 { v, .. } => out.copy_from_slice(&v[row()..][..hd]),
            Store::Q8 { v, vd, .. } => q8_rows(v, vd, row(), 0, hd).row(0, out, isa),
            Store::Q4 { v, vd, .. } => q4_rows(v, vd, row(), 0, hd).row(0, out, isa),
        }
    }

    /// Head `off / hd`'s values at positions `0..n` of `layer` as f32: values [n][hd].
    pub fn head_values_f32(&self, layer: usize, off: usize, hd: usize, n: usize, values: &mut [f32], isa: Isa) {
        assert_eq!(values.len(), n * hd);
        for (p, out) in values.chunks_exact_mut(hd).enumerate() {
            self.value_row(layer, off, p, out, isa);
        }
    }

    /// Head `off / hd`'s values at positions `0..n` of `layer` as bf16 value tiles
    /// (`tandem_kernels::attention::value_tiles`): an f16 cache block by block, the others two
    /// rows at a time; no n-long f32 copy.
    pub fn head_value_tiles(&self, layer: usize, off: usize, hd: usize, n: usize, out: &mut [u32], isa: Isa) {
        let Store::F16 { v, .. } = &self.pool.store else {
            let row = |p: usize, row: &mut [f32]| self.value_row(layer, off, p, row, isa);
            return tandem_kernels::attention::value_tiles_with(hd, n, out, isa, row);
        };
        let ld = tandem_kernels::attention::keys_ld(n);
        for b in 0..ld / KV_BLOCK {
            // A block's values are head-major: [head][KV_BLOCK][hd].
            let at = self.pool.at(self.table.blocks[b], layer, 0) + off * KV_BLOCK;
            let rows = n.saturating_sub(b * KV_BLOCK).min(KV_BLOCK);
            let block = &v[at..at + KV_BLOCK * hd];
            kv_f16::to_value_tiles(block, hd, rows, ld, b * KV_BLOCK / 2, out, isa);
        }
    }
}

/// A q8_0 store's rows of one head from index `at` (a multiple of 32) on, `stride` apart.
fn q8_rows<'a>(qs: &'a [i8], ds: &'a [u16], at: usize, stride: usize, hd: usize) -> q8::Rows<'a> {
    q8::Rows {
        qs: &qs[at..],
        ds: &ds[at / q8::QK..],
        stride,
        hd,
    }
}

/// A q4_0 store's rows of one head from value index `at` (a multiple of 32) on, `stride` apart.
fn q4_rows<'a>(qs: &'a [u8], ds: &'a [u16], at: usize, stride: usize, hd: usize) -> q4::Rows<'a> {
    q4::Rows {
        qs: &qs[at / 2..],
        ds: &ds[at / q8::QK..],
        stride,
        hd,
    }
}

/// The cache of one sequence with a pool of its own, blocks in order: `ctx` positions.
pub struct KvCache {
    pub pool: KvPool,
    pub table: BlockTable,
    ctx: usize,
}

impl KvCache {
    /// An f16 cache.
    pub fn new(cfg: &Config, ctx: usize) -> Self {
        Self::with_type(cfg, ctx, KvType::F16)
    }

    pub fn with_type(cfg: &Config, ctx: usize, ty: KvType) -> Self {
        let n = blocks_for(ctx);
        Self {
            pool: KvPool::new(cfg, n, ty),
            table: BlockTable::new((0..n as u32).collect()),
            ctx,
        }
    }

    pub fn kv_type(&self) -> KvType {
        self.pool.kv_type()
    }

    /// Positions filled.
    pub fn len(&self) -> usize {
        self.table.len
    }

    pub fn is_empty(&self) -> bool {
        self.table.len == 0
    }

    /// Positions it can hold.
    pub fn ctx(&self) -> usize {
        self.ctx
    }

    /// Bytes a cache of `ctx` positions takes for this model (K and V).
    pub fn bytes_for(cfg: &Config, ctx: usize, ty: KvType) -> usize {
        blocks_for(ctx) * KvPool::block_bytes(cfg, ty)
    }

    /// Forgets positions from `len` on (e.g. to reuse a shared prompt prefix).
    pub fn truncate(&mut self, len: usize) {
        self.table.truncate(len);
    }

    /// Empties the cache and rotates what comes next by `rope`.
    pub fn reset(&mut self, rope: Rope) {
        self.table.truncate(0);
        self.table.rope = rope;
    }
}
