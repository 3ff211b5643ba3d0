//! `QMatrix` and the parallel matmul `y = x · Wᵀ` over a batch of tokens.
//!
//! Decode (few tokens) reads each weight row once per token with a dequantise-in-register dot
//! product: memory-bound. Prefill (many tokens) dequantises a block of rows to f32 once and
//! multiplies it with every token in register tiles: compute-bound, weights read once per batch.

use std::cell::RefCell;

use rayon::prelude::*;

use crate::dispatch::{dequantize, dot_exact, dot_row, dot_rows4, dot_tokens, Isa};
use crate::packed::{PackedMatrix, LANES};
use crate::{scalar, GgmlType};

/// A weight matrix of `rows` rows of `cols` elements, each row stored contiguously as `ty`
/// (GGUF dims `[cols, rows]`), and its packed copy for generated tokens where one was made.
#[derive(Clone, Copy)]
pub struct QMatrix<'a> {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
    pub packed: Option<&'a PackedMatrix>,
}

impl<'a> QMatrix<'a> {
    /// Checks that `data` holds exactly `rows × cols` elements of `ty`, rows of whole blocks.
    pub fn new(ty: GgmlType, rows: usize, cols: usize, data: &'a [u8]) -> Option<Self> {
        let row_bytes = ty.bytes_for(cols as u64)? as usize;
        (row_bytes.checked_mul(rows)? == data.len()).then_some(Self {
            ty,
            rows,
            cols,
            data,
            packed: None,
        })
    }

    /// The same matrix with its packed copy (`PackedMatrix::pack` of it), which `matmul_decode`
    /// then reads.
    pub fn with_packed(self, packed: &'a PackedMatrix) -> Self {
        assert!(packed.ty == self.ty && packed.rows == self.rows && packed.cols == self.cols);
        Self {
            packed: Some(packed),
            ..self
        }
    }

    pub fn row_bytes(&self) -> usize {
        self.cols / self.ty.block_len() * self.ty.block_bytes()
    }

    pub fn row(&self, r: usize) -> &'a [u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }

    /// Dequantises row `r` into `out` (`cols` floats).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        scalar::dequantize_row(self.ty, self.row(r), out);
    }
}

/// A pointer that may cross threads; each task writes a disjoint set of elements.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub(crate) *mut f32);
// SAFETY: used only to write disjoint elements from parallel tasks (see `matmul`).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// A method (not field access) so closures capture the whole `Send` wrapper, not the raw pointer.
    pub(crate) fn at(&self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// Rows dequantised together in the prefill path (f32 scratch of `ROW_BLOCK × cols`).
const ROW_BLOCK: usize = 16;

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Token pairs packed for the AVX-512 tile (on the calling thread, read by the workers).
    static PAIRS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `y[t][r] = Σ_c x[t][c] · W[r][c]` for `n_tok = x.len() / cols` tokens.
/// x: [n_tok, cols], y: [n_tok, rows], both row-major f32.
///
/// One token takes the row path (weights dequantised in registers, four rows per pass:
/// memory-bound); up to `ROW_PATH_TOKENS` take the same fused path with every token dotted while
/// a block's weights sit in registers; more take the tile path (a block of rows dequantised to f32 once, then
/// register tiles over the tokens: each weight read once for all of them). Both compute every
/// output as `dot_exact(dequantize(row), x[t])`, so results are bit-identical whichever path and
/// whatever else is in the batch (batch invariance). A matrix with a packed copy always takes the
/// tile path, its panels dequantised to the same f32 values (its mapped rows are not read).
pub fn matmul(w: &QMatrix, x: &[f32], y: &mut [f32], isa: Isa) {
    let n_tok = x.len() / w.cols;
    assert_eq!(x.len(), n_tok * w.cols, "x is not a whole number of rows");
    assert_eq!(y.len(), n_tok * w.rows, "y has the wrong size");
    if let Some(p) = w.packed.filter(|_| crate::packed::packs(isa)) {
        return tiles(w, x, y, isa, |r0, _, s| {
            p.dequantize_panel(r0 / LANES, (0, w.cols), s, w.cols, isa)
        });
    }
    let rows = w.rows;
    let out = OutPtr(y.as_mut_ptr());
    let threads = rayon::current_num_threads().max(1);
    if n_tok == 1 {
        // Enough chunks to balance the threads, none so small that scheduling dominates.
        let chunk = 4 * (rows / (threads * 32)).clamp(4, 1024);
        (0..rows.div_ceil(chunk)).into_par_iter().for_each(|c| {
            let (r_begin, r_end) = (c * chunk, ((c + 1) * chunk).min(rows));
            let mut r = r_begin;
            while r + 4 <= r_end {
                let quad = [w.row(r), w.row(r + 1), w.row(r + 2), w.row(r + 3)];
                let Some(v) = dot_rows4(w.ty, quad, x, isa) else { break };
                for (i, v) in v.into_iter().enumerate() {
                    // SAFETY: row r + i is written only by the task that owns it.
                    unsafe { *out.at(r + i) = v };
                }
                r += 4;
            }
            for r in r..r_end {
                // SAFETY: as above.
                unsafe { *out.at(r) = dot_row(w.ty, w.row(r), x, isa) };
            }
        });
        return;
    }
    if (ROW_PAIRS_FROM..=ROW_PAIRS_TOKENS).contains(&n_tok) && crate::dispatch::fused_rows(w.ty, isa) && isa.avx512() {
        PAIRS.with(|pairs| {
            let mut pairs = pairs.borrow_mut();
            crate::x86::avx512::pack_pairs(x, n_tok, w.cols, &mut pairs);
            let xp = &pairs[..];
            let chunk = 8 * (rows / (threads * 128)).clamp(1, 128);
            (0..rows.div_ceil(chunk)).into_par_iter().for_each(|c| {
                row_pairs(w, c * chunk, ((c + 1) * chunk).min(rows), xp, n_tok, out, isa);
            });
        });
        return;
    }
    if n_tok <= ROW_PATH_TOKENS && crate::dispatch::fused_rows(w.ty, isa) {
        let chunk = 4 * (rows / (threads * 64)).clamp(1, 256);
        (0..rows.div_ceil(chunk)).into_par_iter().for_each(|c| {
            row_tokens(w, c * chunk, ((c + 1) * chunk).min(rows), x, n_tok, out, isa);
        });
        return;
    }
    tiles(w, x, y, isa, |r0, nr, s| {
        for i in 0..nr {
            dequantize(w.ty, w.row(r0 + i), &mut s[i * w.cols..(i + 1) * w.cols], isa);
        }
    });
}

/// The tile path: `ROW_BLOCK` rows at a time dequantised to f32 by `fill(r0, nr, scratch)` (rows
/// r0..r0 + nr, row-major), then register tiles over every token.
fn tiles(w: &QMatrix, x: &[f32], y: &mut [f32], isa: Isa, fill: impl Fn(usize, usize, &mut [f32]) + Sync) {
    let (rows, n_tok) = (w.rows, x.len() / w.cols);
    let out = OutPtr(y.as_mut_ptr());
    let threads = rayon::current_num_threads().max(1);
    let chunk = ROW_BLOCK * (rows / (threads * 4 * ROW_BLOCK)).clamp(1, 64);
    let use_512 = isa.avx512() && n_tok >= 4 && w.cols.is_multiple_of(8);
    PAIRS.with(|pairs| {
        let mut pairs = pairs.borrow_mut();
        if use_512 {
            #[cfg(target_arch = "x86_64")]
            crate::x86::avx512::pack_pairs(x, n_tok, w.cols, &mut pairs);
        }
        let xp: Option<&[f32]> = use_512.then_some(&pairs[..]);
        (0..rows.div_ceil(chunk)).into_par_iter().for_each(|c| {
            let (r_begin, r_end) = (c * chunk, ((c + 1) * chunk).min(rows));
            SCRATCH.with(|s| {
                let mut s = s.borrow_mut();
                s.resize(ROW_BLOCK * w.cols, 0.0);
                for r0 in (r_begin..r_end).step_by(ROW_BLOCK) {
                    let nr = ROW_BLOCK.min(r_end - r0);
                    fill(r0, nr, &mut s[..nr * w.cols]);
                    // SAFETY: this task owns rows r0..r0+nr of every token's output.
                    unsafe { gemm_block(&s[..nr * w.cols], nr, x, xp, n_tok, w.cols, out.at(r0), rows, isa) };
                }
            });
        });
    });
}

/// Most tokens that take the fused row path (weights dequantised in registers once for all of
/// them); more take the tile path, whose f32 dequantisation of each weight block pays
/// off over many tokens.
pub const ROW_PATH_TOKENS: usize = 7;

/// Token counts that take the fused row path on AVX-512 (token pairs in 512-bit accumulators).
/// Measured on the flagship (Zen 4, 2 threads, tok/s at depth 256, AVX2 row path or tile → pairs):
/// 2 tokens 20.6 → 14.6, 4: 30.4 → 27.2, 6: 33.4 → 35.9, 8: 38.7 (tile) → 40.9. Below 6 tokens
/// the AVX2 kernels win (weight decoding, not the FMAs, bounds them there).
pub const ROW_PAIRS_FROM: usize = 6;
pub const ROW_PAIRS_TOKENS: usize = 8;

/// Rows `r0..r1` for every token through the AVX-512 pair kernels: `R × P` accumulators per pass,
/// at least 8 independent FMA chains to hide the FMA latency.
fn row_pairs(w: &QMatrix, r0: usize, r1: usize, xp: &[f32], n_tok: usize, out: OutPtr, isa: Isa) {
    match n_tok.div_ceil(2) {
        3 => pair_pass::<3, 3>(w, (r0, r1), xp, n_tok, out, isa),
        4 => pair_pass::<2, 4>(w, (r0, r1), xp, n_tok, out, isa),
        p => unreachable!("{p} pairs: the pair path takes {ROW_PAIRS_FROM}..={ROW_PAIRS_TOKENS} tokens"),
    }
}

/// Rows `r0..r1` in steps of `R` (the last few one at a time), `P` token pairs.
fn pair_pass<const R: usize, const P: usize>(
    w: &QMatrix,
    (r0, r1): (usize, usize),
    xp: &[f32],
    n_tok: usize,
    out: OutPtr,
    isa: Isa,
) {
    let (ty, cols, ld) = (w.ty, w.cols, w.rows);
    let put = |r: usize, v: &[(f32, f32); P]| {
        for (p, &(a, b)) in v.iter().enumerate() {
            for (t, y) in [(2 * p, a), (2 * p + 1, b)] {
                if t < n_tok {
                    // SAFETY: rows r0..r1 of every token are written only by the task that owns them.
                    unsafe { *out.at(t * ld + r) = y };
                }
            }
        }
    };
    let mut r = r0;
    while r + R <= r1 {
        let rows: [&[u8]; R] = std::array::from_fn(|i| w.row(r + i));
        let v = crate::dispatch::dot_pairs::<R, P>(ty, rows, xp, cols, isa).expect("avx512 checked");
        for (i, vi) in v.iter().enumerate() {
            put(r + i, vi);
        }
        r += R;
    }
    for r in r..r1 {
        let v = crate::dispatch::dot_pairs::<1, P>(ty, [w.row(r)], xp, cols, isa).expect("avx512 checked");
        put(r, &v[0]);
    }
}

/// Rows `r0..r1` of `w` for every token. Each pass keeps `R × T` accumulators (`R` rows, `T`
/// tokens) in registers; at least 8 independent FMA chains hide the FMA latency, and the 16 AVX2
/// registers must also hold a block's dequantised weights (4).
fn row_tokens(w: &QMatrix, r0: usize, r1: usize, x: &[f32], n_tok: usize, out: OutPtr, isa: Isa) {
    // Measured on the flagship (Zen 4, 2 threads): two rows per pass up to 5 tokens, one above.
    match n_tok {
        2 => pass::<2, 2>(w, (r0, r1), x, out, isa),
        3 => pass::<2, 3>(w, (r0, r1), x, out, isa),
        4 => pass::<2, 4>(w, (r0, r1), x, out, isa),
        5 => pass::<2, 5>(w, (r0, r1), x, out, isa),
        6 => pass::<1, 6>(w, (r0, r1), x, out, isa),
        _ => pass::<1, 7>(w, (r0, r1), x, out, isa),
    }
}

/// All `T` tokens, rows `r0..r1` in steps of `R` (the last few one at a time).
fn pass<const R: usize, const T: usize>(w: &QMatrix, (r0, r1): (usize, usize), x: &[f32], out: OutPtr, isa: Isa) {
    let (ty, cols, ld) = (w.ty, w.cols, w.rows);
    let mut r = r0;
    while r + R <= r1 {
        let rows: [&[u8]; R] = std::array::from_fn(|i| w.row(r + i));
        put(ld, r, out, dot_tokens::<R, T>(ty, rows, x, cols, isa));
        r += R;
    }
    for r in r..r1 {
        put(ld, r, out, dot_tokens::<1, T>(ty, [w.row(r)], x, cols, isa));
    }
}

/// Writes a block of row-path results: `v[i][j]` is row `r + i` of token `j`.
fn put<const R: usize, const T: usize>(ld: usize, r: usize, out: OutPtr, v: Option<[[f32; T]; R]>) {
    let v = v.expect("fused_rows checked before taking the row path");
    for (i, row) in v.iter().enumerate() {
        for (j, &y) in row.iter().enumerate() {
            // SAFETY: rows r..r+R of every token are written only by the task that owns them.
            unsafe { *out.at(j * ld + r + i) = y };
        }
    }
}

/// out[t * ld + r] = dot(wf[r], x[t]) for r < nr, t < n_tok.
///
/// # Safety
/// `out` must be valid for writes at every `t * ld + r` with `r < nr`, `t < n_tok`.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_block(
    wf: &[f32],
    nr: usize,
    x: &[f32],
    xp: Option<&[f32]>,
    n_tok: usize,
    k: usize,
    out: *mut f32,
    ld: usize,
    isa: Isa,
) {
    #[cfg(target_arch = "x86_64")]
    if isa.simd() && k.is_multiple_of(8) {
        // With AVX-512: the 4-row × 4-token tiles, blocked over k; the tokens they leave (n_tok % 4)
        // go through the AVX2 tiles below, with the same arithmetic.
        let t_done = match xp {
            Some(xp) => {
                gemm_block_512(wf, nr / 4 * 4, xp, n_tok, k, out, ld);
                n_tok / 4 * 4
            }
            None => 0,
        };
        let mut r = 0;
        while r + 4 <= nr {
            let mut t = t_done;
            while t + 2 <= n_tok {
                let v = crate::x86::tile_4x2(wf.as_ptr().add(r * k), x.as_ptr().add(t * k), k);
                for (i, row) in v.iter().enumerate() {
                    *out.add(t * ld + r + i) = row[0];
                    *out.add((t + 1) * ld + r + i) = row[1];
                }
                t += 2;
            }
            if t < n_tok {
                for i in 0..4 {
                    *out.add(t * ld + r + i) =
                        crate::x86::tile_1x1(wf.as_ptr().add((r + i) * k), x.as_ptr().add(t * k), k);
                }
            }
            r += 4;
        }
        for r in r..nr {
            for t in 0..n_tok {
                *out.add(t * ld + r) = crate::x86::tile_1x1(wf.as_ptr().add(r * k), x.as_ptr().add(t * k), k);
            }
        }
        return;
    }
    for r in 0..nr {
        for t in 0..n_tok {
            *out.add(t * ld + r) = dot_exact(&wf[r * k..(r + 1) * k], &x[t * k..(t + 1) * k], isa);
        }
    }
}

/// Steps of 8 elements per k-chunk: 32 steps = 256 elements, so a chunk of 16 weight rows (16 KiB)
/// and of one token quad (4 KiB) stay in L1 while the tiles run over them.
#[cfg(target_arch = "x86_64")]
const K_STEPS: usize = 32;

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// Accumulator state of the tiles of one row block: [row quads × token quads × 8] registers.
    static TILE_ACC: RefCell<Vec<std::arch::x86_64::__m512>> = const { RefCell::new(Vec::new()) };
}

/// The AVX-512 part of `gemm_block`: rows `0..nr` (a multiple of 4), tokens `0..n_tok` (a multiple
/// of 4, packed in pairs in `xp`) — tiles of 8 tokens, then one of 4 if left — blocked over k.
///
/// # Safety
/// As `gemm_block`; AVX-512F must be available (`Isa::avx512`).
#[cfg(target_arch = "x86_64")]
unsafe fn gemm_block_512(wf: &[f32], nr: usize, xp: &[f32], n_tok: usize, k: usize, out: *mut f32, ld: usize) {
    let octets = n_tok / 8;
    tiles_512::<4>(wf, nr, xp, 0, octets, k, out, ld);
    if n_tok % 8 >= 4 {
        tiles_512::<2>(wf, nr, xp, 8 * octets, 1, k, out, ld);
    }
}

/// `count` tiles of `2·P` tokens from token `t0`, over rows `0..nr`.
///
/// # Safety
/// As `gemm_block_512`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn tiles_512<const P: usize>(
    wf: &[f32],
    nr: usize,
    xp: &[f32],
    t0: usize,
    count: usize,
    k: usize,
    out: *mut f32,
    ld: usize,
) {
    use crate::x86::avx512;
    let (n_rq, steps, width) = (nr / 4, k / 8, 2 * P);
    if n_rq == 0 || count == 0 {
        return;
    }
    TILE_ACC.with(|acc| {
        let mut acc = acc.borrow_mut();
        acc.clear();
        acc.resize(n_rq * count * 4 * P, avx512::zero());
        let tile = |acc: &mut Vec<_>, rq: usize, tt: usize| -> *mut [[std::arch::x86_64::__m512; P]; 4] {
            acc[(rq * count + tt) * 4 * P..].as_mut_ptr() as *mut [[_; P]; 4]
        };
        for s0 in (0..steps).step_by(K_STEPS) {
            let s1 = (s0 + K_STEPS).min(steps);
            for tt in 0..count {
                let first = t0 + tt * width;
                let mut panels = [std::ptr::null::<f32>(); P];
                for (p, panel) in panels.iter_mut().enumerate() {
                    *panel = xp.as_ptr().add((first + 2 * p) * k);
                }
                for rq in 0..n_rq {
                    // SAFETY of the cast: the slot holds exactly 4·P registers, laid out [4][P].
                    let a = &mut *tile(&mut acc, rq, tt);
                    avx512::tile_steps::<P>(wf.as_ptr().add(4 * rq * k), k, panels, s0, s1, a);
                }
            }
        }
        for rq in 0..n_rq {
            for tt in 0..count {
                let a = &*tile(&mut acc, rq, tt);
                let first = t0 + tt * width;
                avx512::tile_finish::<P>(a, |r, t, v| *out.add((first + t) * ld + 4 * rq + r) = v);
            }
        }
    });
}
