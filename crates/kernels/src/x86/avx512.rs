//! AVX-512 prefill tile with the AVX2 tile's exact arithmetic: each 512-bit accumulator holds two
//! independent 8-lane accumulators, one per token of a pair, so every (row, token) output is still
//! one 8-lane FMA chain in element order followed by `hsum` — bit-identical to `tile_1x1` — while
//! each instruction does the work of two.

use std::arch::x86_64::*;

use super::hsum;

/// Interleaves tokens in pairs for `tile_4x4_steps`: pair p is `[k/8][16]` floats, 8 from token 2p then
/// 8 from token 2p + 1 for each step of 8 elements. x: [n_tok, k]; out: [n_tok / 2, k / 8, 16].
pub fn pack_pairs(x: &[f32], n_tok: usize, k: usize, out: &mut Vec<f32>) {
    let pairs = n_tok / 2;
    out.clear();
    out.reserve(pairs * 2 * k);
    for p in 0..pairs {
        let (a, b) = (&x[2 * p * k..(2 * p + 1) * k], &x[(2 * p + 1) * k..(2 * p + 2) * k]);
        for s in 0..k / 8 {
            out.extend_from_slice(&a[8 * s..8 * s + 8]);
            out.extend_from_slice(&b[8 * s..8 * s + 8]);
        }
    }
}

/// Steps `s0..s1` (elements `8·s0..8·s1`) of a 4-row × 4-token tile, continuing the accumulators
/// in `acc` (`[row][pair]`, one 512-bit register per row and token pair). Working on the row block
/// in chunks of steps keeps weights and activations in L1; carrying the accumulators across chunks
/// keeps each output's FMA chain exactly the same as in one pass.
///
/// # Safety
/// AVX-512F, AVX2, FMA and F16C must be available; `w` holds 4 rows of `k` floats, each pair panel
/// `2k` floats, `s1 ≤ k / 8`.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub unsafe fn tile_4x4_steps(
    w: *const f32,
    k: usize,
    xp0: *const f32,
    xp1: *const f32,
    s0: usize,
    s1: usize,
    acc: &mut [__m512; 8],
) {
    let mut a = *acc;
    for s in s0..s1 {
        let x0 = _mm512_loadu_ps(xp0.add(16 * s));
        let x1 = _mm512_loadu_ps(xp1.add(16 * s));
        for r in 0..4 {
            // The row's 8 weights in both halves.
            let wv = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(
                w.add(r * k + 8 * s),
            ))));
            a[2 * r] = _mm512_fmadd_ps(wv, x0, a[2 * r]);
            a[2 * r + 1] = _mm512_fmadd_ps(wv, x1, a[2 * r + 1]);
        }
    }
    *acc = a;
}

/// The 16 outputs of a finished tile: `out[r][t]`, token t = 2·pair + half.
///
/// # Safety
/// AVX-512F and AVX2 must be available.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub unsafe fn tile_4x4_finish(acc: &[__m512; 8]) -> [[f32; 4]; 4] {
    let mut out = [[0f32; 4]; 4];
    for r in 0..4 {
        for p in 0..2 {
            let v = acc[2 * r + p];
            out[r][2 * p] = hsum(_mm512_castps512_ps256(v));
            out[r][2 * p + 1] = hsum(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))));
        }
    }
    out
}

/// A 512-bit zero, for callers that keep accumulator state.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub unsafe fn zero() -> __m512 {
    _mm512_setzero_ps()
}
