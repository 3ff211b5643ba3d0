//! AVX2 + FMA kernels: dot products of a quantised row with f32 activations, dequantising in
//! registers, and the f32 tile used by prefill GEMM. Every function here is `unsafe` because it
//! needs the CPU features that `dispatch` checked before choosing it.

use std::arch::x86_64::*;

use crate::blocks::{scale_min_k4, BlockQ4K, BlockQ5_0, BlockQ6K, BlockQ8_0};

/// An f16 scale (2 little-endian bytes) to f32 with F16C, inline (the `half` crate's conversion is an
/// out-of-line call per block).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16(b: [u8; 2]) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(
        _mm_cvtsi32_si128(u16::from_le_bytes(b) as i32),
    ))
}

/// Bytes ahead of the current block to prefetch (a prefetch past the end of a buffer is harmless).
const PREFETCH: usize = 1024;

/// Prefetches `lines` cache lines `PREFETCH` bytes past `p`. The dot products do enough work per
/// byte that the hardware prefetcher alone leaves loads exposed: Q5_0 rows streamed from memory ran
/// at 2.1 GB/s without this and 4.4 GB/s with it (kbench, one thread).
#[inline(always)]
unsafe fn prefetch(p: *const u8, lines: usize) {
    for l in 0..lines {
        // SAFETY: prefetch is a hint; an address past the buffer never faults.
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH + 64 * l) as *const i8);
    }
}

/// Sum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// Bytes 0..8 of `v` (u8) widened to 8 f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn u8x8_lo(v: __m128i) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v))
}

/// Bytes 8..16 of `v` (u8) widened to 8 f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn u8x8_hi(v: __m128i) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(v, 8)))
}

/// # Safety
/// AVX2, FMA and F16C must be available; `w.len() == x.len()`, a multiple of 8.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_f32(w: &[f32], x: &[f32]) -> f32 {
    debug_assert!(w.len() == x.len() && w.len().is_multiple_of(8));
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let n = w.len();
    let (pw, px) = (w.as_ptr(), x.as_ptr());
    let mut i = 0;
    while i + 16 <= n {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(pw.add(i)), _mm256_loadu_ps(px.add(i)), a0);
        a1 = _mm256_fmadd_ps(
            _mm256_loadu_ps(pw.add(i + 8)),
            _mm256_loadu_ps(px.add(i + 8)),
            a1,
        );
        i += 16;
    }
    if i < n {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(pw.add(i)), _mm256_loadu_ps(px.add(i)), a0);
    }
    hsum(_mm256_add_ps(a0, a1))
}

/// # Safety
/// AVX2, FMA and F16C must be available; `x.len() == 32 * blocks.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q8_0(blocks: &[BlockQ8_0], x: &[f32]) -> f32 {
    debug_assert_eq!(x.len(), blocks.len() * 32);
    let mut acc = _mm256_setzero_ps();
    let px = x.as_ptr();
    for (i, b) in blocks.iter().enumerate() {
        let xp = px.add(32 * i);
        prefetch(b as *const BlockQ8_0 as *const u8, 1);
        let q = _mm256_loadu_si256(b.qs.as_ptr() as *const __m256i);
        let lo = _mm256_castsi256_si128(q);
        let hi = _mm256_extracti128_si256(q, 1);
        let q0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
        let q1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
        let q2 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
        let q3 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
        let mut s = _mm256_mul_ps(q0, _mm256_loadu_ps(xp));
        s = _mm256_fmadd_ps(q1, _mm256_loadu_ps(xp.add(8)), s);
        s = _mm256_fmadd_ps(q2, _mm256_loadu_ps(xp.add(16)), s);
        s = _mm256_fmadd_ps(q3, _mm256_loadu_ps(xp.add(24)), s);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(b.d)), s, acc);
    }
    hsum(acc)
}

/// Eight Q5_0 weights (before the scale): low nibbles in bytes 0..8 of `nib`, fifth bits taken
/// from `qh` (broadcast) at the lane shifts `sh`; returns `q - 16` as f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_group(nib: __m128i, qh: __m256i, sh: __m256i) -> __m256 {
    let high = _mm256_slli_epi32(
        _mm256_and_si256(_mm256_srlv_epi32(qh, sh), _mm256_set1_epi32(1)),
        4,
    );
    let v = _mm256_or_si256(_mm256_cvtepu8_epi32(nib), high);
    _mm256_sub_ps(_mm256_cvtepi32_ps(v), _mm256_set1_ps(16.0))
}

/// # Safety
/// AVX2, FMA and F16C must be available; `x.len() == 32 * blocks.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q5_0(blocks: &[BlockQ5_0], x: &[f32]) -> f32 {
    debug_assert_eq!(x.len(), blocks.len() * 32);
    let mut acc = _mm256_setzero_ps();
    let px = x.as_ptr();
    let m4 = _mm_set1_epi8(0x0F);
    // Element e takes bit e of qh as its fifth bit: shift counts for the 4 groups of 8 elements.
    let sh = [
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15),
        _mm256_setr_epi32(16, 17, 18, 19, 20, 21, 22, 23),
        _mm256_setr_epi32(24, 25, 26, 27, 28, 29, 30, 31),
    ];
    for (i, b) in blocks.iter().enumerate() {
        let xp = px.add(32 * i);
        prefetch(b as *const BlockQ5_0 as *const u8, 1);
        let qs = _mm_loadu_si128(b.qs.as_ptr() as *const __m128i);
        let lo = _mm_and_si128(qs, m4); // elements 0..16
        let hi = _mm_and_si128(_mm_srli_epi16(qs, 4), m4); // elements 16..32
        let qh = _mm256_set1_epi32(u32::from_le_bytes(b.qh) as i32);
        let mut s = _mm256_mul_ps(q5_group(lo, qh, sh[0]), _mm256_loadu_ps(xp));
        s = _mm256_fmadd_ps(
            q5_group(_mm_srli_si128(lo, 8), qh, sh[1]),
            _mm256_loadu_ps(xp.add(8)),
            s,
        );
        s = _mm256_fmadd_ps(q5_group(hi, qh, sh[2]), _mm256_loadu_ps(xp.add(16)), s);
        s = _mm256_fmadd_ps(
            q5_group(_mm_srli_si128(hi, 8), qh, sh[3]),
            _mm256_loadu_ps(xp.add(24)),
            s,
        );
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(b.d)), s, acc);
    }
    hsum(acc)
}

/// # Safety
/// AVX2, FMA and F16C must be available; `x.len() == 256 * blocks.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q4k(blocks: &[BlockQ4K], x: &[f32]) -> f32 {
    debug_assert_eq!(x.len(), blocks.len() * 256);
    let mut acc = _mm256_setzero_ps();
    let m4 = _mm256_set1_epi8(0x0F);
    for (i, b) in blocks.iter().enumerate() {
        let xb = x.as_ptr().add(256 * i);
        prefetch(b as *const BlockQ4K as *const u8, 3);
        let (d, dmin) = (f16(b.d), f16(b.dmin));
        for c in 0..4 {
            let q = _mm256_loadu_si256(b.qs.as_ptr().add(32 * c) as *const __m256i);
            let nibbles = [
                _mm256_and_si256(q, m4),
                _mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
            ];
            for (h, nib) in nibbles.into_iter().enumerate() {
                let j = 2 * c + h;
                let xp = xb.add(32 * j);
                let (sc, m) = scale_min_k4(j, &b.scales);
                let lo = _mm256_castsi256_si128(nib);
                let hi = _mm256_extracti128_si256(nib, 1);
                let x0 = _mm256_loadu_ps(xp);
                let x1 = _mm256_loadu_ps(xp.add(8));
                let x2 = _mm256_loadu_ps(xp.add(16));
                let x3 = _mm256_loadu_ps(xp.add(24));
                let mut sq = _mm256_mul_ps(u8x8_lo(lo), x0);
                sq = _mm256_fmadd_ps(u8x8_hi(lo), x1, sq);
                sq = _mm256_fmadd_ps(u8x8_lo(hi), x2, sq);
                sq = _mm256_fmadd_ps(u8x8_hi(hi), x3, sq);
                let sx = _mm256_add_ps(_mm256_add_ps(x0, x1), _mm256_add_ps(x2, x3));
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc as f32), sq, acc);
                acc = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * m as f32), sx, acc);
            }
        }
    }
    hsum(acc)
}

/// # Safety
/// AVX2, FMA and F16C must be available; `x.len() == 256 * blocks.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q6k(blocks: &[BlockQ6K], x: &[f32]) -> f32 {
    debug_assert_eq!(x.len(), blocks.len() * 256);
    let mut acc = _mm256_setzero_ps();
    let m4 = _mm256_set1_epi8(0x0F);
    let m2 = _mm256_set1_epi8(3);
    let thirty_two = _mm256_set1_ps(32.0);
    for (i, b) in blocks.iter().enumerate() {
        prefetch(b as *const BlockQ6K as *const u8, 4);
        let d = f16(b.d);
        for half in 0..2 {
            let xb = x.as_ptr().add(256 * i + 128 * half);
            let ql0 = _mm256_loadu_si256(b.ql.as_ptr().add(64 * half) as *const __m256i);
            let ql1 = _mm256_loadu_si256(b.ql.as_ptr().add(64 * half + 32) as *const __m256i);
            let qh = _mm256_loadu_si256(b.qh.as_ptr().add(32 * half) as *const __m256i);
            // The four runs of 32 weights (values 0..64, offset 32 removed below).
            let runs = [
                _mm256_or_si256(
                    _mm256_and_si256(ql0, m4),
                    _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(ql1, m4),
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4),
                ),
            ];
            for (r, q) in runs.into_iter().enumerate() {
                let xp = xb.add(32 * r);
                let lo = _mm256_castsi256_si128(q);
                let hi = _mm256_extracti128_si256(q, 1);
                // Elements 0..16 of the run use scale 2r, 16..32 scale 2r+1.
                let mut s0 =
                    _mm256_mul_ps(_mm256_sub_ps(u8x8_lo(lo), thirty_two), _mm256_loadu_ps(xp));
                s0 = _mm256_fmadd_ps(
                    _mm256_sub_ps(u8x8_hi(lo), thirty_two),
                    _mm256_loadu_ps(xp.add(8)),
                    s0,
                );
                let mut s1 = _mm256_mul_ps(
                    _mm256_sub_ps(u8x8_lo(hi), thirty_two),
                    _mm256_loadu_ps(xp.add(16)),
                );
                s1 = _mm256_fmadd_ps(
                    _mm256_sub_ps(u8x8_hi(hi), thirty_two),
                    _mm256_loadu_ps(xp.add(24)),
                    s1,
                );
                let sc0 = b.scales[8 * half + 2 * r] as f32;
                let sc1 = b.scales[8 * half + 2 * r + 1] as f32;
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc0), s0, acc);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc1), s1, acc);
            }
        }
    }
    hsum(acc)
}

/// Prefill tile: `out[r][t] = dot(w[r], x[t])` for 4 weight rows and 2 token rows of length `k`
/// (f32, row-major with strides `k`). Eight 8-lane accumulators stay in registers.
///
/// # Safety
/// AVX2, FMA and F16C must be available; `w` holds 4 rows and `x` 2 rows of `k` floats, `k % 8 == 0`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn tile_4x2(w: *const f32, x: *const f32, k: usize) -> [[f32; 2]; 4] {
    let mut acc = [[_mm256_setzero_ps(); 2]; 4];
    let mut i = 0;
    while i < k {
        let x0 = _mm256_loadu_ps(x.add(i));
        let x1 = _mm256_loadu_ps(x.add(k + i));
        for (r, a) in acc.iter_mut().enumerate() {
            let wv = _mm256_loadu_ps(w.add(r * k + i));
            a[0] = _mm256_fmadd_ps(wv, x0, a[0]);
            a[1] = _mm256_fmadd_ps(wv, x1, a[1]);
        }
        i += 8;
    }
    let mut out = [[0f32; 2]; 4];
    for r in 0..4 {
        out[r] = [hsum(acc[r][0]), hsum(acc[r][1])];
    }
    out
}

/// One (row, token) dot product with exactly the arithmetic of one `tile_4x2` element: a single
/// 8-lane accumulator over `k`, then `hsum`. Used for the tile's edges so that every output of the
/// prefill path is computed the same way whatever its neighbours.
///
/// # Safety
/// AVX2 and FMA must be available; `w` and `x` hold `k` floats, `k % 8 == 0`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn tile_1x1(w: *const f32, x: *const f32, k: usize) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i < k {
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(w.add(i)), _mm256_loadu_ps(x.add(i)), acc);
        i += 8;
    }
    hsum(acc)
}
