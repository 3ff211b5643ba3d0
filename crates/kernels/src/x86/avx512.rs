//! AVX-512 prefill tile with the AVX2 tile's exact arithmetic: each 512-bit accumulator holds two
//! independent 8-lane accumulators, one per token of a pair, so every (row, token) output is still
//! one 8-lane FMA chain in element order followed by `hsum` — bit-identical to `tile_1x1` — while
//! each instruction does the work of two.

use std::arch::x86_64::*;

use super::hsum;

/// Interleaves tokens in pairs for `tile_steps` and the row kernels' `dot_pairs_*`: pair p is
/// `[k/8][16]` floats, 8 from token 2p then 8 from token 2p + 1 for each step of 8 elements; an odd
/// last token is paired with zeros (its phantom partner's outputs are computed and dropped).
/// x: [n_tok, k]; out: [⌈n_tok / 2⌉, k / 8, 16].
pub fn pack_pairs(x: &[f32], n_tok: usize, k: usize, out: &mut Vec<f32>) {
    let pairs = n_tok.div_ceil(2);
    out.clear();
    out.reserve(pairs * 2 * k);
    let zeros = [0f32; 8];
    for p in 0..pairs {
        let a = &x[2 * p * k..(2 * p + 1) * k];
        let b = (2 * p + 1 < n_tok).then(|| &x[(2 * p + 1) * k..(2 * p + 2) * k]);
        for s in 0..k / 8 {
            out.extend_from_slice(&a[8 * s..8 * s + 8]);
            out.extend_from_slice(b.map_or(&zeros[..], |b| &b[8 * s..8 * s + 8]));
        }
    }
}

/// Steps `s0..s1` (elements `8·s0..8·s1`) of a tile of 4 rows × `P` token pairs, continuing the
/// accumulators in `acc` (`[row][pair]`, one 512-bit register per row and pair). Working on the
/// row block in chunks of steps keeps weights and activations in L1; carrying the accumulators
/// across chunks keeps each output's FMA chain exactly the same as in one pass. P = 4 (8 tokens)
/// loads 0.5 operands per FMA, P = 2 0.75.
///
/// # Safety
/// AVX-512F, AVX2, FMA and F16C must be available; `w` holds 4 rows of `k` floats, each pair panel
/// `2k` floats, `s1 ≤ k / 8`.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub unsafe fn tile_steps<const P: usize>(
    w: *const f32,
    k: usize,
    xp: [*const f32; P],
    s0: usize,
    s1: usize,
    acc: &mut [[__m512; P]; 4],
) {
    let mut a = *acc;
    for s in s0..s1 {
        let mut x = [_mm512_setzero_ps(); P];
        for (xv, panel) in x.iter_mut().zip(&xp) {
            *xv = _mm512_loadu_ps(panel.add(16 * s));
        }
        for (r, ar) in a.iter_mut().enumerate() {
            // The row's 8 weights in both halves.
            let wv = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(
                w.add(r * k + 8 * s),
            ))));
            for (acc_p, &xv) in ar.iter_mut().zip(&x) {
                *acc_p = _mm512_fmadd_ps(wv, xv, *acc_p);
            }
        }
    }
    *acc = a;
}

/// The outputs of a finished tile: `out[r][t]` for token t = 2·pair + half, written through `put`.
///
/// # Safety
/// AVX-512F and AVX2 must be available.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub unsafe fn tile_finish<const P: usize>(acc: &[[__m512; P]; 4], mut put: impl FnMut(usize, usize, f32)) {
    for (r, row) in acc.iter().enumerate() {
        for (p, &v) in row.iter().enumerate() {
            put(r, 2 * p, hsum(_mm512_castps512_ps256(v)));
            put(
                r,
                2 * p + 1,
                hsum(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)))),
            );
        }
    }
}

/// A 512-bit zero, for callers that keep accumulator state.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub unsafe fn zero() -> __m512 {
    _mm512_setzero_ps()
}
