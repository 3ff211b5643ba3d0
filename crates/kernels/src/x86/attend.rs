//! Attention over an f16 KV cache for a group of query heads that share one KV head (GQA): each
//! cached K and V row is converted from f16 once for all of them. Scores run on the keys'
//! position-minor blocks (`crate::kv_f16`: one FMA chain over channels per score, as the scalar
//! twin); sums over values do exactly `axpy_f16`'s arithmetic (one FMA per element per position,
//! in position order), bit-identical to the one-head kernel. The prompt kernels' operands (f32 key
//! panels, bf16 value tiles) are converted from the same blocks.

use std::arch::x86_64::*;

use super::bf16::pair16_regs;
use super::prefetch_at;

/// `out[j] += Σ_p probs[j·ld + p] · v[p]` for heads j < G, in position order.
/// probs: head j's row at `j · ld` (ld ≥ n); v: position p's row at `p · stride`, hd long;
/// out: [G, hd]. `next`: the rows read next (a hint, any address), fetched meanwhile.
/// Sixteen columns at a time, all positions, with the G × 2 accumulators in registers (G ≤ 7 fits
/// AVX2's 16); each element still gets one FMA per position in position order.
///
/// # Safety
/// As `scores_f16`.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn attend_f16<const G: usize>(
    probs: &[f32],
    n: usize,
    ld: usize,
    v: &[u16],
    next: *const u16,
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
            if i == 0 {
                prefetch_at(next.wrapping_add(p * stride) as *const u8, hd / 32);
            }
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
#[allow(clippy::too_many_arguments)]
pub unsafe fn attend_f16_512<const G: usize>(
    probs: &[f32],
    n: usize,
    ld: usize,
    v: &[u16],
    next: *const u16,
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
            if i == 0 {
                prefetch_at(next.wrapping_add(p * stride) as *const u8, hd / 32);
            }
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

/// `kv_f16::scores` on AVX-512: both halves of the block (16 positions per vector) at once, the
/// 2·G accumulators in registers; per channel d one conversion per half and one broadcast of
/// q[j][d] per head. Rows outside `r0..r1` are computed and not stored. `next` (any address: a
/// hint) is the keys the caller reads next, fetched into cache a line per channel meanwhile: blocks
/// lie anywhere in the pool, where the hardware's prefetcher does not follow.
///
/// # Safety
/// AVX-512F and the AVX2 set must be available; keys ≥ hd · 32 long, r0 < r1 ≤ 32, scores holds
/// (G − 1) · ld + (r1 − r0) values.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn scores_blocked_512<const G: usize>(
    q: &[f32],
    hd: usize,
    keys: &[u16],
    next: *const u16,
    r0: usize,
    r1: usize,
    ld: usize,
    scale: f32,
    scores: &mut [f32],
) {
    const B: usize = crate::kv_f16::BLOCK;
    crate::kv_f16::assert_shape(q, G, hd, keys, r0..r1, ld, scores);
    let (k, qp) = (keys.as_ptr(), q.as_ptr());
    let mut acc = [[_mm512_setzero_ps(); 2]; G];
    let halves = [r0 < 16, r1 > 16];
    if halves == [true, true] {
        for d in 0..hd {
            prefetch_at(next.wrapping_add(d * B) as *const u8, 1);
            let k0 = _mm512_cvtph_ps(_mm256_loadu_si256(k.add(d * B) as *const __m256i));
            let k1 = _mm512_cvtph_ps(_mm256_loadu_si256(k.add(d * B + 16) as *const __m256i));
            for (j, a) in acc.iter_mut().enumerate() {
                let w = _mm512_set1_ps(*qp.add(j * hd + d));
                a[0] = _mm512_fmadd_ps(w, k0, a[0]);
                a[1] = _mm512_fmadd_ps(w, k1, a[1]);
            }
        }
    } else {
        let h = usize::from(halves[1]);
        for d in 0..hd {
            prefetch_at(next.wrapping_add(d * B) as *const u8, 1);
            let kh = _mm512_cvtph_ps(_mm256_loadu_si256(k.add(d * B + 16 * h) as *const __m256i));
            for (j, a) in acc.iter_mut().enumerate() {
                a[h] = _mm512_fmadd_ps(_mm512_set1_ps(*qp.add(j * hd + d)), kh, a[h]);
            }
        }
    }
    let s = _mm512_set1_ps(scale);
    for (j, a) in acc.iter().enumerate() {
        let row = &mut scores[j * ld..j * ld + (r1 - r0)];
        if r0 == 0 && r1 == B {
            _mm512_storeu_ps(row.as_mut_ptr(), _mm512_mul_ps(a[0], s));
            _mm512_storeu_ps(row.as_mut_ptr().add(16), _mm512_mul_ps(a[1], s));
            continue;
        }
        let mut all = [0f32; B];
        _mm512_storeu_ps(all.as_mut_ptr(), _mm512_mul_ps(a[0], s));
        _mm512_storeu_ps(all.as_mut_ptr().add(16), _mm512_mul_ps(a[1], s));
        row.copy_from_slice(&all[r0..r1]);
    }
}

/// `kv_f16::scores` on AVX2: 8 positions per vector, one quarter of the block at a time with the
/// G accumulators in registers.
///
/// # Safety
/// AVX2, FMA and F16C must be available; shapes as `scores_blocked_512`.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn scores_blocked_256<const G: usize>(
    q: &[f32],
    hd: usize,
    keys: &[u16],
    next: *const u16,
    r0: usize,
    r1: usize,
    ld: usize,
    scale: f32,
    scores: &mut [f32],
) {
    const B: usize = crate::kv_f16::BLOCK;
    crate::kv_f16::assert_shape(q, G, hd, keys, r0..r1, ld, scores);
    let (k, qp) = (keys.as_ptr(), q.as_ptr());
    let s = _mm256_set1_ps(scale);
    for c in (r0 / 8 * 8..r1).step_by(8) {
        let mut acc = [_mm256_setzero_ps(); G];
        for d in 0..hd {
            if c == r0 / 8 * 8 {
                prefetch_at(next.wrapping_add(d * B) as *const u8, 1);
            }
            let kc = _mm256_cvtph_ps(_mm_loadu_si128(k.add(d * B + c) as *const __m128i));
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(_mm256_set1_ps(*qp.add(j * hd + d)), kc, *a);
            }
        }
        // Rows c..c + 8 clipped to r0..r1, at scores index row − r0.
        let (lo, hi) = (c.max(r0), (c + 8).min(r1));
        for (j, a) in acc.iter().enumerate() {
            let mut all = [0f32; 8];
            _mm256_storeu_ps(all.as_mut_ptr(), _mm256_mul_ps(*a, s));
            scores[j * ld + lo - r0..j * ld + hi - r0].copy_from_slice(&all[lo - c..hi - c]);
        }
    }
}

/// Lanes below `n` (≤ 16) set.
#[inline]
fn live(n: usize) -> __mmask16 {
    ((1u32 << n.min(16)) - 1) as __mmask16
}

/// `kv_f16::to_panels` on AVX-512: channel d's 32 rows (64 contiguous bytes) become lane vectors
/// of panel 0 (rows 0..16) and panel 1 (rows 16..32), rows past `rows` masked to zero.
///
/// # Safety
/// AVX-512F must be available; keys ≥ hd · 32 long, dst = 2 · hd · 16 long.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub unsafe fn key_panels_512(keys: &[u16], hd: usize, rows: usize, dst: &mut [f32]) {
    assert!(keys.len() >= hd * 32 && dst.len() == 2 * hd * 16);
    let (m0, m1) = (live(rows), live(rows.saturating_sub(16)));
    let (src, out) = (keys.as_ptr(), dst.as_mut_ptr());
    for d in 0..hd {
        let lo = _mm256_loadu_si256(src.add(32 * d) as *const __m256i);
        let hi = _mm256_loadu_si256(src.add(32 * d + 16) as *const __m256i);
        _mm512_storeu_ps(out.add(16 * d), _mm512_maskz_cvtph_ps(m0, lo));
        _mm512_storeu_ps(out.add(16 * (hd + d)), _mm512_maskz_cvtph_ps(m1, hi));
    }
}

/// `kv_f16::to_value_tiles` on AVX-512: rows 2m and 2m + 1 of the block, 16 channels at a time,
/// converted, rounded to bf16 and interleaved into one vector of pairs.
///
/// # Safety
/// AVX-512F must be available; the shapes `kv_f16::to_value_tiles` asserts.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub unsafe fn value_pairs_512(values: &[u16], hd: usize, rows: usize, ld: usize, m0: usize, out: &mut [u32]) {
    assert!(values.len() >= 32 * hd && hd.is_multiple_of(16) && (m0 + 16) * 16 <= ld * 8);
    assert!(out.len() == ld * hd / 2);
    let (src, dst) = (values.as_ptr(), out.as_mut_ptr());
    let row_mask = |r: usize| if r < rows { 0xFFFF } else { 0 };
    for m in 0..16 {
        let (ka, kb) = (row_mask(2 * m), row_mask(2 * m + 1));
        for c in 0..hd / 16 {
            let a = _mm256_loadu_si256(src.add(2 * m * hd + 16 * c) as *const __m256i);
            let b = _mm256_loadu_si256(src.add((2 * m + 1) * hd + 16 * c) as *const __m256i);
            let pair = pair16_regs(_mm512_maskz_cvtph_ps(ka, a), _mm512_maskz_cvtph_ps(kb, b));
            _mm512_storeu_si512(dst.add(c * ld * 8 + (m0 + m) * 16) as *mut __m512i, pair);
        }
    }
}
