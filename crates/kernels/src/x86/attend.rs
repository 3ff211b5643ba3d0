//! Attention over an f16 KV cache for a group of query heads that share one KV head (GQA): each
//! cached K and V row is converted from f16 once for all of them. Each head's arithmetic is
//! exactly `dot_f16` / `axpy_f16`'s (one 8-lane FMA chain per dot, then `hsum`; one FMA per
//! element per position), so results are bit-identical to the one-head kernels.

use std::arch::x86_64::*;

use super::hsum;

/// `scores[j·ld + p] = dot_f16(q[j], k[p]) · scale` for heads j < G, positions p < n.
/// q: [G, hd]; k: position p's row at `p · stride`, hd long; scores: head j's row at `j · ld`
/// (ld ≥ n: a paged cache fills each head's row one block of positions at a time).
///
/// # Safety
/// AVX2, FMA and F16C must be available; hd a multiple of 8; k valid for n rows at `stride`.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn scores_f16<const G: usize>(
    q: &[f32],
    hd: usize,
    k: &[u16],
    stride: usize,
    n: usize,
    ld: usize,
    scale: f32,
    scores: &mut [f32],
) {
    assert!(q.len() == G * hd && hd.is_multiple_of(8) && ld >= n && (n == 0 || scores.len() >= (G - 1) * ld + n));
    assert!(n == 0 || (n - 1) * stride + hd <= k.len());
    for p in 0..n {
        let row = k.as_ptr().add(p * stride);
        let mut acc = [_mm256_setzero_ps(); G];
        for i in (0..hd).step_by(8) {
            let kv = _mm256_cvtph_ps(_mm_loadu_si128(row.add(i) as *const __m128i));
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(j * hd + i)), kv, *a);
            }
        }
        for (j, a) in acc.into_iter().enumerate() {
            scores[j * ld + p] = hsum(a) * scale;
        }
    }
}

/// `out[j] += Σ_p probs[j·ld + p] · v[p]` for heads j < G, in position order.
/// probs: head j's row at `j · ld` (ld ≥ n); v: position p's row at `p · stride`, hd long;
/// out: [G, hd].
/// Sixteen columns at a time, all positions, with the G × 2 accumulators in registers (G ≤ 7 fits
/// AVX2's 16); each element still gets one FMA per position in position order.
///
/// # Safety
/// As `scores_f16`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn attend_f16<const G: usize>(
    probs: &[f32],
    n: usize,
    ld: usize,
    v: &[u16],
    stride: usize,
    hd: usize,
    out: &mut [f32],
) {
    assert!(out.len() == G * hd && hd.is_multiple_of(16) && ld >= n && (n == 0 || probs.len() >= (G - 1) * ld + n));
    assert!(n == 0 || (n - 1) * stride + hd <= v.len());
    for i in (0..hd).step_by(16) {
        let o = out.as_mut_ptr();
        let mut acc: [[__m256; 2]; G] = std::array::from_fn(|j| {
            [
                _mm256_loadu_ps(o.add(j * hd + i)),
                _mm256_loadu_ps(o.add(j * hd + i + 8)),
            ]
        });
        for p in 0..n {
            let row = v.as_ptr().add(p * stride + i);
            let x0 = _mm256_cvtph_ps(_mm_loadu_si128(row as *const __m128i));
            let x1 = _mm256_cvtph_ps(_mm_loadu_si128(row.add(8) as *const __m128i));
            for (j, a) in acc.iter_mut().enumerate() {
                let w = _mm256_broadcast_ss(&*probs.as_ptr().add(j * ld + p));
                a[0] = _mm256_fmadd_ps(w, x0, a[0]);
                a[1] = _mm256_fmadd_ps(w, x1, a[1]);
            }
        }
        for (j, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(o.add(j * hd + i), a[0]);
            _mm256_storeu_ps(o.add(j * hd + i + 8), a[1]);
        }
    }
}

/// `attend_f16` on AVX-512: 32 columns at a time with the G × 2 accumulators in registers; the
/// same one FMA per element per position in position order, so it equals the AVX2 kernel bit for
/// bit.
///
/// # Safety
/// As `scores_f16`, with AVX-512F too and hd a multiple of 32.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub unsafe fn attend_f16_512<const G: usize>(
    probs: &[f32],
    n: usize,
    ld: usize,
    v: &[u16],
    stride: usize,
    hd: usize,
    out: &mut [f32],
) {
    assert!(out.len() == G * hd && hd.is_multiple_of(32) && ld >= n && (n == 0 || probs.len() >= (G - 1) * ld + n));
    assert!(n == 0 || (n - 1) * stride + hd <= v.len());
    for i in (0..hd).step_by(32) {
        let o = out.as_mut_ptr();
        let mut acc: [[__m512; 2]; G] = std::array::from_fn(|j| {
            [
                _mm512_loadu_ps(o.add(j * hd + i)),
                _mm512_loadu_ps(o.add(j * hd + i + 16)),
            ]
        });
        for p in 0..n {
            let row = v.as_ptr().add(p * stride + i);
            let x0 = _mm512_cvtph_ps(_mm256_loadu_si256(row as *const __m256i));
            let x1 = _mm512_cvtph_ps(_mm256_loadu_si256(row.add(16) as *const __m256i));
            for (j, a) in acc.iter_mut().enumerate() {
                let w = _mm512_set1_ps(*probs.as_ptr().add(j * ld + p));
                a[0] = _mm512_fmadd_ps(w, x0, a[0]);
                a[1] = _mm512_fmadd_ps(w, x1, a[1]);
            }
        }
        for (j, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(o.add(j * hd + i), a[0]);
            _mm512_storeu_ps(o.add(j * hd + i + 16), a[1]);
        }
    }
}
