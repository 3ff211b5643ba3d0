//! Weights dequantised in registers, 32 at a time (one sub-block: four 8-float groups in element
//! order), bit-identical to `scalar::dequantize_row` (same operations in the same order, no fused
//! multiply-add).

use std::arch::x86_64::*;

use super::{f16, u8x8_hi, u8x8_lo};
use crate::blocks::{BlockQ4K, BlockQ5_0, BlockQ6K, BlockQ8_0};

/// Per-block scales, decoded once per block and shared by its sub-blocks.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q8_0_scales(b: &BlockQ8_0) -> [f32; 1] {
    [f16(b.d)]
}

/// `d * q`, q signed 8-bit (`_j` is always 0: the block is one sub-block of 32).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q8_0(b: &BlockQ8_0, s: &[f32; 1], _j: usize) -> [__m256; 4] {
    let d = _mm256_set1_ps(s[0]);
    let q = _mm256_loadu_si256(b.qs.as_ptr() as *const __m256i);
    let lo = _mm256_castsi256_si128(q);
    let hi = _mm256_extracti128_si256(q, 1);
    let w = |v: __m128i| _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)));
    [w(lo), w(_mm_srli_si128(lo, 8)), w(hi), w(_mm_srli_si128(hi, 8))]
}

/// `d * (q - 16)`, q 5-bit: low nibbles from `qs`, bit 4 of element e is bit e of `qh`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q5_0_scales(b: &BlockQ5_0) -> [f32; 1] {
    [f16(b.d)]
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q5_0(b: &BlockQ5_0, s: &[f32; 1], _j: usize) -> [__m256; 4] {
    let d = _mm256_set1_ps(s[0]);
    let m4 = _mm_set1_epi8(0x0F);
    let qs = _mm_loadu_si128(b.qs.as_ptr() as *const __m128i);
    let lo = _mm_and_si128(qs, m4); // elements 0..16
    let hi = _mm_and_si128(_mm_srli_epi16(qs, 4), m4); // elements 16..32
    let qh = _mm256_set1_epi32(u32::from_le_bytes(b.qh) as i32);
    let one = _mm256_set1_epi32(1);
    let sixteen = _mm256_set1_epi32(16);
    let group = |nib: __m128i, first: i32| {
        let sh = _mm256_add_epi32(_mm256_set1_epi32(first), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        let high = _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(qh, sh), one), 4);
        let q = _mm256_sub_epi32(_mm256_or_si256(_mm256_cvtepu8_epi32(nib), high), sixteen);
        _mm256_mul_ps(d, _mm256_cvtepi32_ps(q))
    };
    [
        group(lo, 0),
        group(_mm_srli_si128(lo, 8), 8),
        group(hi, 16),
        group(_mm_srli_si128(hi, 8), 24),
    ]
}

/// `[d·sc[j] for j in 0..8] ++ [dmin·m[j] for j in 0..8]` of a Q4_K block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4k_scales(b: &BlockQ4K) -> [f32; 16] {
    let (dsc, dm) = q4k_scales_v(b);
    let mut s = [0f32; 16];
    _mm256_storeu_ps(s.as_mut_ptr(), dsc);
    _mm256_storeu_ps(s.as_mut_ptr().add(8), dm);
    s
}

/// `q4k_scales` as two vectors, the 6-bit pairs unpacked four at a time in 32-bit words (what
/// `scale_min_k4` does one at a time): with the 12 bytes as words a, b, c, sc[0..4] = a & 63,
/// m[0..4] = b & 63, sc[4..8] = c's low nibbles | a's top 2 bits << 4, m[4..8] = c's high nibbles
/// | b's top 2 bits << 4 (per byte).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4k_scales_v(b: &BlockQ4K) -> (__m256, __m256) {
    let w = |i: usize| u32::from_le_bytes([b.scales[i], b.scales[i + 1], b.scales[i + 2], b.scales[i + 3]]);
    let (a, bb, c) = (w(0), w(4), w(8));
    let sc = (a & 0x3f3f_3f3f) as u64 | (((c & 0x0f0f_0f0f) | ((a >> 6) & 0x0303_0303) << 4) as u64) << 32;
    let m = (bb & 0x3f3f_3f3f) as u64 | ((((c >> 4) & 0x0f0f_0f0f) | ((bb >> 6) & 0x0303_0303) << 4) as u64) << 32;
    let to_f32 = |v: u64| _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(v as i64)));
    (
        _mm256_mul_ps(_mm256_set1_ps(f16(b.d)), to_f32(sc)),
        _mm256_mul_ps(_mm256_set1_ps(f16(b.dmin)), to_f32(m)),
    )
}

/// Sub-block `j` (elements 32j..32j+32) of a Q4_K block: `(d·sc[j])·q − dmin·m[j]`, q 4-bit.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4k(b: &BlockQ4K, s: &[f32; 16], j: usize) -> [__m256; 4] {
    let q = _mm256_loadu_si256(b.qs.as_ptr().add(32 * (j / 2)) as *const __m256i);
    // Run c of qs holds sub-block 2c in its low nibbles and 2c + 1 in its high nibbles.
    let shifted = if j.is_multiple_of(2) {
        q
    } else {
        _mm256_srli_epi16(q, 4)
    };
    let nib = _mm256_and_si256(shifted, _mm256_set1_epi8(0x0F));
    let dsc = _mm256_set1_ps(s[j]);
    let dm = _mm256_set1_ps(s[8 + j]);
    let (lo, hi) = (_mm256_castsi256_si128(nib), _mm256_extracti128_si256(nib, 1));
    [
        _mm256_sub_ps(_mm256_mul_ps(dsc, u8x8_lo(lo)), dm),
        _mm256_sub_ps(_mm256_mul_ps(dsc, u8x8_hi(lo)), dm),
        _mm256_sub_ps(_mm256_mul_ps(dsc, u8x8_lo(hi)), dm),
        _mm256_sub_ps(_mm256_mul_ps(dsc, u8x8_hi(hi)), dm),
    ]
}

/// Run `j` (elements 32j..32j+32) of a Q6_K block: `(d·sc)·(q − 32)`, q 6-bit (4 low bits in
/// `ql`, 2 high in `qh`); elements 0..16 of the run use scale 2j', 16..32 scale 2j' + 1.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q6k_scales(b: &BlockQ6K) -> [f32; 16] {
    let d = f16(b.d);
    let mut s = [0f32; 16];
    for (k, v) in s.iter_mut().enumerate() {
        *v = d * b.scales[k] as f32;
    }
    s
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q6k(b: &BlockQ6K, s: &[f32; 16], j: usize) -> [__m256; 4] {
    let (half, r) = (j / 4, j % 4);
    let m4 = _mm256_set1_epi8(0x0F);
    // Runs 0 and 2 take ql[0..32] of the half, runs 1 and 3 ql[32..64]; runs 2 and 3 the high nibbles.
    let ql = _mm256_loadu_si256(b.ql.as_ptr().add(64 * half + 32 * (r % 2)) as *const __m256i);
    let low = if r < 2 {
        _mm256_and_si256(ql, m4)
    } else {
        _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4)
    };
    let qh = _mm256_loadu_si256(b.qh.as_ptr().add(32 * half) as *const __m256i);
    let qh = match r {
        0 => qh,
        1 => _mm256_srli_epi16(qh, 2),
        2 => _mm256_srli_epi16(qh, 4),
        _ => _mm256_srli_epi16(qh, 6),
    };
    let q = _mm256_or_si256(low, _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(3)), 4));
    let (lo, hi) = (_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    let s0 = _mm256_set1_ps(s[8 * half + 2 * r]);
    let s1 = _mm256_set1_ps(s[8 * half + 2 * r + 1]);
    let thirty_two = _mm256_set1_epi32(32);
    let w = |s: __m256, v: __m128i| {
        _mm256_mul_ps(
            s,
            _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(v), thirty_two)),
        )
    };
    [
        w(s0, lo),
        w(s0, _mm_srli_si128(lo, 8)),
        w(s1, hi),
        w(s1, _mm_srli_si128(hi, 8)),
    ]
}
