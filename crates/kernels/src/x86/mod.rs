//! AVX2 + FMA + F16C kernels. Every function here is `unsafe` because it needs the CPU features
//! that `dispatch` checked before choosing it.
//!
//! - `weights`: one block's weights dequantised in registers, bit-identical to the scalar reference.
//! - `rows`: whole rows: dequantised to memory, or dotted with activations (several rows at once).
//! - `amx`: the AMX tile instructions (matrix unit) of the prompt path (`crate::prompt`).
//! - `attend`: GQA attention over the f16 KV cache, a group of heads per pass.
//! - `tile_attention`: prompt tokens' attention as register-tiled GEMMs (AVX-512).
//! - `flash_bf16`: `crate::flash`'s block update on AVX-512 BF16 dot products.
//! - `bf16`: f32 → bf16 packing of the prompt path's operands (AVX-512).
//! - `int8`: generated tokens' int8 dot products (activations rounded to int8, `crate::q8`);
//!   `int8_512` the same on AVX-512 BW + VNNI, two blocks per instruction.
//! - `packed`: the packed panels' int8 kernels (`crate::packed`, AVX-512 VNNI, 16 rows per register);
//!   `packed_dequant` the panels back to f32 rows.
//! - `stream`: the bandwidth probe's streaming reads.
//! - `gemm_i8`: the register tile of the dense int8 GEMM (`crate::gemm_i8`, AVX-512 VNNI).
//! - here: shared helpers and the f32 register tiles of the GEMM.
//!
//! Every path computes a (row, token) output the same way: exact f32 weights, one 8-lane FMA
//! accumulator over the row in element order, then `hsum`. So the row path (one token) and the
//! tile path (many tokens) give bit-identical results, and a sequence's numbers never depend on
//! what else is in the batch.

pub mod amx;
pub mod amx_attention;
pub mod attend;
pub mod avx512;
pub mod bf16;
pub(crate) mod flash_bf16;
pub mod gemm_i8;
pub mod int8;
pub mod int8_512;
pub mod packed;
pub mod packed_dequant;
mod rows;
mod stream;
pub mod tile_attention;
mod weights;

pub use rows::*;
pub use stream::*;

use std::arch::x86_64::*;

/// An f16 scale (2 little-endian bytes) to f32 with F16C, inline (the `half` crate's conversion is an
/// out-of-line call per block).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f16(b: [u8; 2]) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(u16::from_le_bytes(b) as i32)))
}

/// Prefetches `lines` cache lines at `p` (a hint: any address is safe).
#[inline(always)]
pub(crate) unsafe fn prefetch_at(p: *const u8, lines: usize) {
    for l in 0..lines {
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64 * l) as *const i8);
    }
}

/// Sum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// Bytes 0..8 of `v` (u8) widened to 8 f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn u8x8_lo(v: __m128i) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v))
}

/// Bytes 8..16 of `v` (u8) widened to 8 f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn u8x8_hi(v: __m128i) -> __m256 {
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
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(pw.add(i + 8)), _mm256_loadu_ps(px.add(i + 8)), a1);
        i += 16;
    }
    if i < n {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(pw.add(i)), _mm256_loadu_ps(px.add(i)), a0);
    }
    hsum(_mm256_add_ps(a0, a1))
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

/// `y += a · x`.
///
/// # Safety
/// AVX2 and FMA must be available; `x.len() == y.len()`, a multiple of 8.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    debug_assert!(x.len() == y.len() && x.len().is_multiple_of(8));
    let av = _mm256_set1_ps(a);
    let (px, py) = (x.as_ptr(), y.as_mut_ptr());
    let mut i = 0;
    while i < x.len() {
        _mm256_storeu_ps(
            py.add(i),
            _mm256_fmadd_ps(av, _mm256_loadu_ps(px.add(i)), _mm256_loadu_ps(py.add(i))),
        );
        i += 8;
    }
}

/// e^x on 8 lanes: range reduction by ln 2 and a degree-6 polynomial (the Cephes `expf` scheme),
/// within a few ulp of `f32::exp` over [-87, 88]; inputs are clamped to that range.
///
/// # Safety
/// AVX2 and FMA must be available.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn exp8(x: __m256) -> __m256 {
    let x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3)), _mm256_set1_ps(88.3));
    let fx = _mm256_floor_ps(_mm256_fmadd_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
        _mm256_set1_ps(0.5),
    ));
    let x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693_359_4), x);
    let x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.121_944_4e-4), x);
    let z = _mm256_mul_ps(x, x);
    let mut y = _mm256_set1_ps(1.987_569_1e-4);
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(c));
    }
    y = _mm256_fmadd_ps(y, z, _mm256_add_ps(x, _mm256_set1_ps(1.0)));
    let pow2n = _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)),
        23,
    ));
    _mm256_mul_ps(y, pow2n)
}

/// GELU in place, `ops::gelu`'s formula (Abramowitz & Stegun erf) on 8 lanes with the vector exp.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn gelu(x: &mut [f32]) {
    let n8 = x.len() / 8 * 8;
    let p = x.as_mut_ptr();
    let c = |v: f32| _mm256_set1_ps(v);
    let sign = c(-0.0);
    let mut i = 0;
    while i < n8 {
        let v = _mm256_loadu_ps(p.add(i));
        let z = _mm256_mul_ps(v, c(std::f32::consts::FRAC_1_SQRT_2));
        let a = _mm256_andnot_ps(sign, z);
        let t = _mm256_div_ps(c(1.0), _mm256_fmadd_ps(c(0.327_591_1), a, c(1.0)));
        let mut poly = c(1.061_405_4);
        for k in [-1.453_152_1, 1.421_413_8, -0.284_496_72, 0.254_829_6] {
            poly = _mm256_fmadd_ps(poly, t, c(k));
        }
        poly = _mm256_mul_ps(poly, t);
        let e = exp8(_mm256_xor_ps(_mm256_mul_ps(z, z), sign));
        let erf_abs = _mm256_fnmadd_ps(poly, e, c(1.0));
        let erf = _mm256_or_ps(erf_abs, _mm256_and_ps(sign, z));
        _mm256_storeu_ps(
            p.add(i),
            _mm256_mul_ps(_mm256_mul_ps(c(0.5), v), _mm256_add_ps(c(1.0), erf)),
        );
        i += 8;
    }
    for v in x[n8..].iter_mut() {
        *v = crate::ops::gelu(*v);
    }
}

/// In-place softmax with the vector exp.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mv = _mm256_set1_ps(max);
    let n8 = x.len() / 8 * 8;
    let p = x.as_mut_ptr();
    let mut sum = _mm256_setzero_ps();
    let mut i = 0;
    while i < n8 {
        let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), mv));
        _mm256_storeu_ps(p.add(i), e);
        sum = _mm256_add_ps(sum, e);
        i += 8;
    }
    let mut total = hsum(sum);
    for v in x[n8..].iter_mut() {
        *v = (*v - max).exp();
        total += *v;
    }
    let inv = _mm256_set1_ps(1.0 / total);
    let mut i = 0;
    while i < n8 {
        _mm256_storeu_ps(p.add(i), _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), inv));
        i += 8;
    }
    for v in x[n8..].iter_mut() {
        *v /= total;
    }
}

/// `gate = silu(gate) · up = gate / (1 + e^−gate) · up` with the vector exp.
///
/// # Safety
/// AVX2 and FMA must be available; equal lengths.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn swiglu(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len());
    let n8 = gate.len() / 8 * 8;
    let (g, u) = (gate.as_mut_ptr(), up.as_ptr());
    let one = _mm256_set1_ps(1.0);
    for i in (0..n8).step_by(8) {
        let x = _mm256_loadu_ps(g.add(i));
        let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
        let s = _mm256_div_ps(x, _mm256_add_ps(one, e));
        _mm256_storeu_ps(g.add(i), _mm256_mul_ps(s, _mm256_loadu_ps(u.add(i))));
    }
    for i in n8..gate.len() {
        gate[i] = gate[i] / (1.0 + (-gate[i]).exp()) * up[i];
    }
}

/// `Σ q[i] · f16(k[i])`, one 8-lane accumulator.
///
/// # Safety
/// AVX2, FMA and F16C must be available; equal lengths, a multiple of 8.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_f16(q: &[f32], k: &[u16]) -> f32 {
    debug_assert!(q.len() == k.len() && q.len().is_multiple_of(8));
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i < q.len() {
        let kv = _mm256_cvtph_ps(_mm_loadu_si128(k.as_ptr().add(i) as *const __m128i));
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(i)), kv, acc);
        i += 8;
    }
    hsum(acc)
}

/// `y += a · f16(x)`.
///
/// # Safety
/// AVX2, FMA and F16C must be available; equal lengths, a multiple of 8.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn axpy_f16(a: f32, x: &[u16], y: &mut [f32]) {
    debug_assert!(x.len() == y.len() && x.len().is_multiple_of(8));
    let av = _mm256_set1_ps(a);
    let mut i = 0;
    while i < x.len() {
        let xv = _mm256_cvtph_ps(_mm_loadu_si128(x.as_ptr().add(i) as *const __m128i));
        let p = y.as_mut_ptr().add(i);
        _mm256_storeu_ps(p, _mm256_fmadd_ps(av, xv, _mm256_loadu_ps(p)));
        i += 8;
    }
}

/// f32 → f16 bits, round to nearest even.
///
/// # Safety
/// AVX2 and F16C must be available; equal lengths, a multiple of 8.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn to_f16(src: &[f32], dst: &mut [u16]) {
    debug_assert!(src.len() == dst.len() && src.len().is_multiple_of(8));
    let mut i = 0;
    while i < src.len() {
        let h = _mm256_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT }>(_mm256_loadu_ps(src.as_ptr().add(i)));
        _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, h);
        i += 8;
    }
}

/// f16 bits → f32 (exact).
///
/// # Safety
/// AVX2 and F16C must be available; equal lengths, a multiple of 8.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn from_f16(src: &[u16], dst: &mut [f32]) {
    assert!(src.len() == dst.len() && src.len().is_multiple_of(8));
    let mut i = 0;
    while i < src.len() {
        let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
        _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
        i += 8;
    }
}
