//! `matmul_decode`: generated tokens' matmul on the int8 kernels (`crate::q8`).
//!
//! The activations are rounded to int8 once per call (on the calling thread), then the rows are
//! split over the pool. Each task walks its rows in blocks small enough to stay in L1 and, per
//! block, the tokens four at a time, so a weight block is decoded once per four tokens and read
//! from memory once per call. Every (row, token) output follows the `q8` contract whatever the
//! grouping, so a token's numbers do not depend on what else is in the batch.

use std::cell::RefCell;

use rayon::prelude::*;

use crate::dispatch::{dot_q8, DecodeKernel, Isa, KernelChoice};
use crate::matmul::{matmul, OutPtr, QMatrix};
use crate::packed;
use crate::q8::{self, QuantActs};

thread_local! {
    /// The step's activations as int8 blocks (calling thread; read by the workers).
    static ACTS: RefCell<QuantActs> = RefCell::new(QuantActs::default());
}

/// Rows walked together for all tokens before the next rows: 16 rows of the widest tier matrix
/// (8,960 columns of Q6_K, ~7 KiB a row) stay in L2, the mini's in L1.
const ROW_BLOCK: usize = 16;

/// `y[t][r] = Σ_c x[t][c] · W[r][c]` for generated tokens. x: [n_tok, cols], y: [n_tok, rows].
/// Int8 kernels for the types that have them (unless `--decode-kernel exact`): the packed panels'
/// where `w` carries them and the CPU runs them (`crate::packed`), else the row kernels here;
/// `matmul` for the rest.
pub fn matmul_decode(w: &QMatrix, x: &[f32], y: &mut [f32], k: KernelChoice) {
    let isa = k.isa();
    if k.decode() == DecodeKernel::Exact || !q8::supported(w.ty) || !w.cols.is_multiple_of(32) {
        return matmul(w, x, y, isa);
    }
    if let Some(p) = w
        .packed
        .filter(|_| k.decode() == DecodeKernel::Int8 && packed::packs(isa))
    {
        return packed::matmul_packed(p, x, y, isa);
    }
    let n_tok = x.len() / w.cols;
    assert_eq!(x.len(), n_tok * w.cols, "x is not a whole number of rows");
    assert_eq!(y.len(), n_tok * w.rows, "y has the wrong size");
    let rows = w.rows;
    let out = OutPtr(y.as_mut_ptr());
    let threads = rayon::current_num_threads().max(1);
    // Enough chunks to balance the threads, none so small that scheduling dominates.
    let chunk = ROW_BLOCK * (rows / (threads * 4 * ROW_BLOCK)).clamp(1, 64);
    ACTS.with(|acts| {
        let mut acts = acts.borrow_mut();
        q8::quantize(x, w.cols, &mut acts, isa);
        let acts = &*acts;
        (0..rows.div_ceil(chunk)).into_par_iter().for_each(|c| {
            let end = ((c + 1) * chunk).min(rows);
            for r0 in (c * chunk..end).step_by(ROW_BLOCK) {
                let r1 = (r0 + ROW_BLOCK).min(end);
                let mut t = 0;
                while t < n_tok {
                    let nt = (n_tok - t).min(4);
                    match nt {
                        1 => pass::<4, 1>(w, (r0, r1), acts, t, out, isa),
                        2 => pass::<2, 2>(w, (r0, r1), acts, t, out, isa),
                        3 => pass::<2, 3>(w, (r0, r1), acts, t, out, isa),
                        _ => pass::<2, 4>(w, (r0, r1), acts, t, out, isa),
                    }
                    t += nt;
                }
            }
        });
    });
}

/// Rows `r0..r1` in steps of `R` (the last few one at a time) for tokens `t0..t0 + T`.
fn pass<const R: usize, const T: usize>(
    w: &QMatrix,
    (r0, r1): (usize, usize),
    acts: &QuantActs,
    t0: usize,
    out: OutPtr,
    isa: Isa,
) {
    let ld = w.rows;
    let put = |r: usize, v: &[f32; T]| {
        for (t, &y) in v.iter().enumerate() {
            // SAFETY: rows r0..r1 of every token are written only by the task that owns them.
            unsafe { *out.at((t0 + t) * ld + r) = y };
        }
    };
    let mut r = r0;
    while r + R <= r1 {
        let v = dot_q8::<R, T>(w.ty, std::array::from_fn(|i| w.row(r + i)), acts, t0, isa);
        for (i, v) in v.iter().enumerate() {
            put(r + i, v);
        }
        r += R;
    }
    for r in r..r1 {
        put(r, &dot_q8::<1, T>(w.ty, [w.row(r)], acts, t0, isa)[0]);
    }
}
