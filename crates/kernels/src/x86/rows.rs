//! Whole rows on top of `weights`: dequantised into memory (the GEMM's f32 blocks), or dotted with
//! one token's activations, `R` rows at a time so that `R` independent FMA chains hide the latency
//! (and each activation load serves all of them).

use std::arch::x86_64::*;

use super::{hsum, prefetch_at, weights};
use crate::blocks::{Block, BlockQ4K, BlockQ5_0, BlockQ6K, BlockQ8_0};

/// The row kernels of one weight block type, generated for each type by `row_kernels!`, so the
/// dispatch reaches them through the type (`dispatch::with_quant`). Every method needs AVX2, FMA
/// and F16C, and the lengths its kernel documents.
pub trait RowKernels: Block {
    /// # Safety
    /// As the type's `dequant_*` kernel.
    unsafe fn dequant(blocks: &[Self], out: &mut [f32]);
    /// # Safety
    /// As the type's `dot_rows_*` kernel.
    unsafe fn dot_rows<const R: usize>(rows: [&[Self]; R], x: &[f32]) -> [f32; R];
    /// # Safety
    /// As the type's `dot_tokens_*` kernel.
    unsafe fn dot_tokens<const R: usize, const T: usize>(rows: [&[Self]; R], x: &[f32], cols: usize) -> [[f32; T]; R];
    /// # Safety
    /// As the type's `dot_pairs_*` kernel (AVX-512F besides).
    unsafe fn dot_pairs<const R: usize, const P: usize>(
        rows: [&[Self]; R],
        xp: &[f32],
        cols: usize,
    ) -> [[(f32, f32); P]; R];
}

macro_rules! row_kernels {
    ($block:ty, $subs:expr, $scales:path, $weights:path, $dequant:ident, $dot:ident, $dot_tokens:ident, $dot_pairs:ident) => {
        /// Dequantises `blocks` into `out` (`32 · subs` floats per block), bit-identical to the
        /// scalar reference.
        ///
        /// # Safety
        /// AVX2, FMA and F16C must be available; `out.len() == blocks.len() * 32 * subs`.
        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn $dequant(blocks: &[$block], out: &mut [f32]) {
            assert_eq!(out.len(), blocks.len() * 32 * $subs);
            let o = out.as_mut_ptr();
            for (i, b) in blocks.iter().enumerate() {
                let s = $scales(b);
                for j in 0..$subs {
                    let w = $weights(b, &s, j);
                    for g in 0..4 {
                        _mm256_storeu_ps(o.add((i * $subs + j) * 32 + g * 8), w[g]);
                    }
                }
            }
        }

        /// `R` rows dotted with `x`: per row one 8-lane FMA accumulator over the elements in order,
        /// then `hsum` — the arithmetic of `tile_1x1` on the dequantised row.
        ///
        /// # Safety
        /// AVX2, FMA and F16C must be available; every row has `x.len() / (32 · subs)` blocks.
        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn $dot<const R: usize>(rows: [&[$block]; R], x: &[f32]) -> [f32; R] {
            let nb = rows[0].len();
            assert!(rows.iter().all(|r| r.len() == nb) && x.len() == nb * 32 * $subs);
            let lines = std::mem::size_of::<$block>().div_ceil(64);
            // The rows of a matrix are contiguous and read R at a time: fetch the same block of
            // the next R rows while this one computes (a fixed distance ahead would land inside
            // the rows being read already).
            let ahead = R * nb;
            let mut acc = [_mm256_setzero_ps(); R];
            let px = x.as_ptr();
            for i in 0..nb {
                let mut s = [$scales(&rows[0][i]); R];
                for r in 0..R {
                    prefetch_at(rows[r].as_ptr().wrapping_add(i + ahead) as *const u8, lines);
                    s[r] = $scales(&rows[r][i]);
                }
                for j in 0..$subs {
                    let xp = px.add((i * $subs + j) * 32);
                    let xv = [
                        _mm256_loadu_ps(xp),
                        _mm256_loadu_ps(xp.add(8)),
                        _mm256_loadu_ps(xp.add(16)),
                        _mm256_loadu_ps(xp.add(24)),
                    ];
                    for r in 0..R {
                        let w = $weights(&rows[r][i], &s[r], j);
                        for g in 0..4 {
                            acc[r] = _mm256_fmadd_ps(w[g], xv[g], acc[r]);
                        }
                    }
                }
            }
            let mut out = [0f32; R];
            for r in 0..R {
                out[r] = hsum(acc[r]);
            }
            out
        }

        /// `R` rows dotted with `T` tokens' activations (`x`: [T, cols] from `x[0]`), each block's
        /// weights dequantised in registers once for all tokens. Per (row, token) the arithmetic is
        /// `$dot`'s — one 8-lane accumulator in element order, then `hsum` — so the results are
        /// bit-identical to one token at a time (batch invariance); the weights are read once per
        /// `T` tokens instead of once per token (small batches: verification, a few decodes).
        ///
        /// # Safety
        /// AVX2, FMA and F16C must be available; every row has `cols / (32 · subs)` blocks and
        /// `x.len() >= T * cols`.
        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn $dot_tokens<const R: usize, const T: usize>(
            rows: [&[$block]; R],
            x: &[f32],
            cols: usize,
        ) -> [[f32; T]; R] {
            let nb = rows[0].len();
            assert!(rows.iter().all(|r| r.len() == nb) && nb * 32 * $subs == cols && x.len() >= T * cols);
            let lines = std::mem::size_of::<$block>().div_ceil(64);
            let ahead = R * nb;
            let mut acc = [[_mm256_setzero_ps(); T]; R];
            let px = x.as_ptr();
            for i in 0..nb {
                let mut s = [$scales(&rows[0][i]); R];
                for r in 0..R {
                    prefetch_at(rows[r].as_ptr().wrapping_add(i + ahead) as *const u8, lines);
                    s[r] = $scales(&rows[r][i]);
                }
                for j in 0..$subs {
                    let e = (i * $subs + j) * 32;
                    for r in 0..R {
                        let w = $weights(&rows[r][i], &s[r], j);
                        for t in 0..T {
                            let xp = px.add(t * cols + e);
                            for g in 0..4 {
                                acc[r][t] = _mm256_fmadd_ps(w[g], _mm256_loadu_ps(xp.add(8 * g)), acc[r][t]);
                            }
                        }
                    }
                }
            }
            let mut out = [[0f32; T]; R];
            for r in 0..R {
                for t in 0..T {
                    out[r][t] = hsum(acc[r][t]);
                }
            }
            out
        }

        /// `$dot_tokens` with AVX-512: tokens come in pairs packed as `avx512::pack_pairs` lays
        /// them out (`xp`: pair p at `p · 2 · cols`, per 8 elements 8 floats of each token), and
        /// each 512-bit accumulator holds the two tokens' 8-lane accumulators side by side, the
        /// weights duplicated into both halves. Per (row, token) the FMA chain and the final
        /// `hsum` are exactly `$dot`'s, so the results are bit-identical; each instruction does
        /// the work of two. Returns `[row][pair] = (first token, second token)`.
        ///
        /// # Safety
        /// AVX-512F, AVX2, FMA and F16C must be available; every row has `cols / (32 · subs)`
        /// blocks and `xp.len() >= P * 2 * cols`.
        #[target_feature(enable = "avx512f,avx2,fma,f16c")]
        pub unsafe fn $dot_pairs<const R: usize, const P: usize>(
            rows: [&[$block]; R],
            xp: &[f32],
            cols: usize,
        ) -> [[(f32, f32); P]; R] {
            let nb = rows[0].len();
            assert!(rows.iter().all(|r| r.len() == nb) && nb * 32 * $subs == cols && xp.len() >= P * 2 * cols);
            let lines = std::mem::size_of::<$block>().div_ceil(64);
            let ahead = R * nb;
            let mut acc = [[_mm512_setzero_ps(); P]; R];
            let px = xp.as_ptr();
            for i in 0..nb {
                let mut s = [$scales(&rows[0][i]); R];
                for r in 0..R {
                    prefetch_at(rows[r].as_ptr().wrapping_add(i + ahead) as *const u8, lines);
                    s[r] = $scales(&rows[r][i]);
                }
                for j in 0..$subs {
                    // Step (8 elements) of this sub-block's first group.
                    let step = (i * $subs + j) * 4;
                    for r in 0..R {
                        let w = $weights(&rows[r][i], &s[r], j);
                        for g in 0..4 {
                            let wz = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(w[g])));
                            for p in 0..P {
                                let xv = _mm512_loadu_ps(px.add(p * 2 * cols + 16 * (step + g)));
                                acc[r][p] = _mm512_fmadd_ps(wz, xv, acc[r][p]);
                            }
                        }
                    }
                }
            }
            let mut out = [[(0f32, 0f32); P]; R];
            for r in 0..R {
                for p in 0..P {
                    let v = acc[r][p];
                    out[r][p] = (
                        hsum(_mm512_castps512_ps256(v)),
                        hsum(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)))),
                    );
                }
            }
            out
        }

        impl RowKernels for $block {
            unsafe fn dequant(blocks: &[Self], out: &mut [f32]) {
                $dequant(blocks, out)
            }
            unsafe fn dot_rows<const R: usize>(rows: [&[Self]; R], x: &[f32]) -> [f32; R] {
                $dot(rows, x)
            }
            unsafe fn dot_tokens<const R: usize, const T: usize>(
                rows: [&[Self]; R],
                x: &[f32],
                cols: usize,
            ) -> [[f32; T]; R] {
                $dot_tokens(rows, x, cols)
            }
            unsafe fn dot_pairs<const R: usize, const P: usize>(
                rows: [&[Self]; R],
                xp: &[f32],
                cols: usize,
            ) -> [[(f32, f32); P]; R] {
                $dot_pairs(rows, xp, cols)
            }
        }
    };
}

row_kernels!(
    BlockQ8_0,
    1,
    weights::q8_0_scales,
    weights::q8_0,
    dequant_q8_0,
    dot_rows_q8_0,
    dot_tokens_q8_0,
    dot_pairs_q8_0
);
row_kernels!(
    BlockQ5_0,
    1,
    weights::q5_0_scales,
    weights::q5_0,
    dequant_q5_0,
    dot_rows_q5_0,
    dot_tokens_q5_0,
    dot_pairs_q5_0
);
row_kernels!(
    BlockQ4K,
    8,
    weights::q4k_scales,
    weights::q4k,
    dequant_q4k,
    dot_rows_q4k,
    dot_tokens_q4k,
    dot_pairs_q4k
);
row_kernels!(
    BlockQ6K,
    8,
    weights::q6k_scales,
    weights::q6k,
    dequant_q6k,
    dot_rows_q6k,
    dot_tokens_q6k,
    dot_pairs_q6k
);
