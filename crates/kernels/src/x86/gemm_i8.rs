//! The int8 GEMM's register tile (`crate::gemm_i8`) on AVX-512 VNNI: `M` tokens × 32 rows, 2·M
//! i32 accumulators. Per 4 columns: the two panels' 64-byte lines (16 rows × 4 weights each) are
//! loaded once, each token's 4 activation bytes broadcast, and `vpdpbusd` adds the 4 products of
//! every row lane — no per-block rescaling, one float epilogue per output.

use std::arch::x86_64::*;

use crate::gemm_i8::{I8Acts, I8Matrix};
use crate::matmul::OutPtr;

/// Tokens `t0..t0 + M` × the 32 rows of panel pair `pair`, written to `out` ([n, rows]).
///
/// # Safety
/// AVX-512 F/BW/VNNI must be available; `t0 + M` tokens must be quantised in `acts`; the caller
/// owns those outputs.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(crate) unsafe fn tile<const M: usize>(w: &I8Matrix, acts: &I8Acts, pair: usize, t0: usize, out: &OutPtr) {
    let p = w.pair(pair);
    let k4 = p.cols / 4;
    let (b0, b1) = (p.packed.as_ptr(), p.packed.as_ptr().add(16 * p.cols));
    let a: [*const u8; M] = std::array::from_fn(|i| acts.qu.as_ptr().add((t0 + i) * p.cols));
    let mut acc = [[_mm512_setzero_si512(); 2]; M];
    for k in 0..k4 {
        let w0 = _mm512_loadu_si512(b0.add(64 * k) as *const _);
        let w1 = _mm512_loadu_si512(b1.add(64 * k) as *const _);
        for i in 0..M {
            let x = _mm512_set1_epi32((a[i].add(4 * k) as *const i32).read_unaligned());
            acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], x, w0);
            acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], x, w1);
        }
    }
    let row0 = 32 * pair;
    for h in 0..2 {
        let scale = _mm512_loadu_ps(p.scale.as_ptr().add(16 * h));
        let offset = _mm512_slli_epi32::<7>(_mm512_loadu_si512(p.wsum.as_ptr().add(16 * h) as *const _));
        let r = row0 + 16 * h;
        if r >= p.rows {
            break;
        }
        let valid = (p.rows - r).min(16);
        let mask: __mmask16 = if valid == 16 { 0xFFFF } else { (1u16 << valid) - 1 };
        for (i, acc) in acc.iter().enumerate() {
            let t = t0 + i;
            let s = _mm512_mul_ps(_mm512_set1_ps(acts.d[t]), scale);
            let v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[h], offset)), s);
            _mm512_mask_storeu_ps(out.at(t * p.rows + r), mask, v);
        }
    }
}

/// One token's activations rounded as `gemm_i8`'s contract says (`a + 128` into `q`), returning
/// the scale `amax / 127`; bit-identical to the scalar rounding (`vcvtps2dq` rounds to nearest
/// even, as `round_ties_even` does).
///
/// # Safety
/// AVX-512 F/BW must be available; `q.len() == x.len()`.
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn quantize_row(x: &[f32], q: &mut [u8]) -> f32 {
    let n16 = x.len() / 16 * 16;
    let mut m = _mm512_setzero_ps();
    for i in (0..n16).step_by(16) {
        m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x.as_ptr().add(i))));
    }
    let amax = x[n16..].iter().fold(_mm512_reduce_max_ps(m), |m, v| m.max(v.abs()));
    let id = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    let (vid, lo, hi, off) = (
        _mm512_set1_ps(id),
        _mm512_set1_epi32(-127),
        _mm512_set1_epi32(127),
        _mm512_set1_epi32(128),
    );
    for i in (0..n16).step_by(16) {
        let v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x.as_ptr().add(i)), vid));
        let v = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(v, lo), hi), off);
        _mm_storeu_si128(q.as_mut_ptr().add(i) as *mut __m128i, _mm512_cvtepi32_epi8(v));
    }
    for (q, v) in q[n16..].iter_mut().zip(&x[n16..]) {
        *q = ((v * id).round_ties_even().clamp(-127.0, 127.0) as i32 + 128) as u8;
    }
    amax / 127.0
}
