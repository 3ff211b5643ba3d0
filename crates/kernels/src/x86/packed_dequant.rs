//! Packed panels back to f32 rows (AVX-512), for the paths that multiply dequantised weights
//! (prompt tokens' tiles): the values `scalar::dequantize_row` gives the GGUF rows, bit for bit
//! (the same products in the same order; no FMA contraction).
//!
//! A step vector holds 4 weights of each of 16 rows ([16][4] bytes); a quarter of it (rows
//! 4i..4i + 4) widens to 16 i32 lanes, is scaled per row and stored as four 4-float runs.

use std::arch::x86_64::*;

use super::packed::{f16x16, nibbles, q4k_scales, q5_0_steps, q6k_high, q6k_scale, q6k_steps};
use crate::packed::PackedMatrix;
use crate::GgmlType;

/// Where the f32 rows go: `out[l · stride + c]` for row `l` of the panel and column `c − c0`.
#[derive(Clone, Copy)]
struct Dest {
    out: *mut f32,
    stride: usize,
}

/// Rows of panel `p`, columns `c0..c1` (multiples of the type's packed group: 64 columns for
/// Q8_0/Q5_0, 256 for the K types), into `out[l · stride + c − c0]`.
///
/// # Safety
/// AVX-512 F/BW must be available; `out` must hold 16 rows of `stride ≥ c1 − c0` floats.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
pub(crate) unsafe fn dequantize(w: &PackedMatrix, p: usize, c0: usize, c1: usize, out: *mut f32, stride: usize) {
    let panel = w.panel(p).as_ptr();
    let dst = Dest { out, stride };
    match w.ty {
        GgmlType::Q8_0 => q8_0(panel, c0, c1, dst),
        GgmlType::Q5_0 => q5_0(panel, c0, c1, dst),
        GgmlType::Q4K => q4k(panel, c0, c1, dst),
        GgmlType::Q6K => q6k(panel, c0, c1, dst),
        ty => unreachable!("{} is not packed", ty.name()),
    }
}

/// Quarter `I` of step vector `u` (rows 4I..4I + 4): `(u − off) · scale[row]` (minus `min[row]`),
/// stored at column `col` of each row.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn quarter<const I: i32>(u: __m512i, off: i32, scale: __m512, min: Option<__m512>, dst: Dest, col: usize) {
    let q = _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32::<I>(u));
    let v = _mm512_cvtepi32_ps(_mm512_sub_epi32(q, _mm512_set1_epi32(off)));
    let r = 4 * I;
    let idx = _mm512_setr_epi32(
        r,
        r,
        r,
        r,
        r + 1,
        r + 1,
        r + 1,
        r + 1,
        r + 2,
        r + 2,
        r + 2,
        r + 2,
        r + 3,
        r + 3,
        r + 3,
        r + 3,
    );
    let mut y = _mm512_mul_ps(_mm512_permutexvar_ps(idx, scale), v);
    if let Some(m) = min {
        y = _mm512_sub_ps(y, _mm512_permutexvar_ps(idx, m));
    }
    let row = |j: usize| dst.out.add((r as usize + j) * dst.stride + col);
    _mm_storeu_ps(row(0), _mm512_extractf32x4_ps::<0>(y));
    _mm_storeu_ps(row(1), _mm512_extractf32x4_ps::<1>(y));
    _mm_storeu_ps(row(2), _mm512_extractf32x4_ps::<2>(y));
    _mm_storeu_ps(row(3), _mm512_extractf32x4_ps::<3>(y));
}

/// A whole step vector: 4 columns of all 16 rows.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn emit(u: __m512i, off: i32, scale: __m512, min: Option<__m512>, dst: Dest, col: usize) {
    quarter::<0>(u, off, scale, min, dst, col);
    quarter::<1>(u, off, scale, min, dst, col);
    quarter::<2>(u, off, scale, min, dst, col);
    quarter::<3>(u, off, scale, min, dst, col);
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn q8_0(panel: *const u8, c0: usize, c1: usize, dst: Dest) {
    for g in c0 / 64..c1 / 64 {
        let base = panel.add(1088 * g);
        for h in 0..2 {
            let ws = f16x16(base.add(32 * h));
            let data = base.add(64 + 512 * h);
            for s in 0..8 {
                let u = _mm512_load_si512(data.add(64 * s) as *const __m512i);
                emit(u, 128, ws, None, dst, 64 * g + 32 * h + 4 * s - c0);
            }
        }
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn q5_0(panel: *const u8, c0: usize, c1: usize, dst: Dest) {
    for g in c0 / 64..c1 / 64 {
        let base = panel.add(704 * g);
        for h in 0..2 {
            let ws = f16x16(base.add(32 * h));
            let data = base.add(64 + 320 * h);
            for v in 0..4 {
                let (u0, u1) = q5_0_steps(data, v);
                let col = 64 * g + 32 * h + 8 * v - c0;
                emit(u0, 16, ws, None, dst, col);
                emit(u1, 16, ws, None, dst, col + 4);
            }
        }
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn q4k(panel: *const u8, c0: usize, c1: usize, dst: Dest) {
    for sb in c0 / 256..c1 / 256 {
        let base = panel.add(2304 * sb);
        let (d, dmin) = (f16x16(base), f16x16(base.add(32)));
        for j in 0..8 {
            let (dsc, dm) = q4k_scales(base, (d, dmin), j);
            let data = base.add(256 + 256 * j);
            for v in 0..4 {
                let (lo, hi) = nibbles(data.add(64 * v));
                let col = 256 * sb + 32 * j + 8 * v - c0;
                emit(lo, 0, dsc, Some(dm), dst, col);
                emit(hi, 0, dsc, Some(dm), dst, col + 4);
            }
        }
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn q6k(panel: *const u8, c0: usize, c1: usize, dst: Dest) {
    for sb in c0 / 256..c1 / 256 {
        let base = panel.add(3392 * sb);
        let d = f16x16(base);
        for jb in 0..8 {
            let data = base.add(320 + 384 * jb);
            for gh in 0..2 {
                let dsc = q6k_scale(base, d, 2 * jb + gh);
                let hv = q6k_high(data, gh);
                for vv in 0..2 {
                    let v = 2 * gh + vv;
                    let (u0, u1) = q6k_steps(data, hv, v);
                    let col = 256 * sb + 32 * jb + 8 * v - c0;
                    emit(u0, 32, dsc, None, dst, col);
                    emit(u1, 32, dsc, None, dst, col + 4);
                }
            }
        }
    }
}
