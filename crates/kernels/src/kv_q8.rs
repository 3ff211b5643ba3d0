//! The KV cache's q8_0 rows: ggml's q8_0 arithmetic (blocks of 32 values, one f16 scale
//! d = amax / 127, q = round(x / d)), kept as two arrays so a head's quants are contiguous:
//! quants [positions, kv_dim] i8 and scales [positions, kv_dim / 32] f16. 34 bytes per 32 values,
//! 53% of f16's.
//!
//! Attention reads the blocks directly: each cached row of a head is dequantised once into a
//! stack buffer for all the query heads sharing it (q·d is exact in f32: 8 × 11 significant bits),
//! then the same f32 dot products and axpys as an f32 cache (`dispatch::dot_f32`, `ops::axpy`).
//! `scores` and `attend` take any `QuantRows`: the q4_0 cache's (`kv_q4`) too.

use crate::dispatch::{dot_f32, Isa};
use crate::ops::axpy;

/// Values per q8_0 block.
pub const QK: usize = 32;

/// Longest head the stack buffers take.
const MAX_HEAD: usize = 256;

/// Rounds `x` (a multiple of 32 long) into quants and f16 scales, as ggml's
/// `quantize_row_q8_0_ref`: d = amax / 127, q = round(x · (1 / d)) half away from zero.
pub fn quantize_row(x: &[f32], qs: &mut [i8], ds: &mut [u16]) {
    assert!(x.len().is_multiple_of(QK) && qs.len() == x.len() && ds.len() == x.len() / QK);
    for ((x, q), d) in x.chunks_exact(QK).zip(qs.chunks_exact_mut(QK)).zip(ds.iter_mut()) {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let dv = amax / 127.0;
        let id = if dv != 0.0 { 1.0 / dv } else { 0.0 };
        for (q, &v) in q.iter_mut().zip(x) {
            *q = (v * id).round() as i8;
        }
        *d = half::f16::from_f32(dv).to_bits();
    }
}

/// `out[i] = q[i] · d[i / 32]` (exact).
pub fn dequantize_row(qs: &[i8], ds: &[u16], out: &mut [f32], isa: Isa) {
    assert!(qs.len() == out.len() && ds.len() * QK == qs.len());
    #[cfg(target_arch = "x86_64")]
    if isa.simd() {
        // SAFETY: the AVX2 set was detected; lengths checked above.
        return unsafe { dequantize_avx2(qs, ds, out) };
    }
    let _ = isa;
    for ((q, &d), o) in qs.chunks_exact(QK).zip(ds).zip(out.chunks_exact_mut(QK)) {
        let d = half::f16::from_bits(d).to_f32();
        for (o, &q) in o.iter_mut().zip(q) {
            *o = q as f32 * d;
        }
    }
}

/// # Safety
/// AVX2, FMA and F16C must be available; lengths as `dequantize_row` checks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dequantize_avx2(qs: &[i8], ds: &[u16], out: &mut [f32]) {
    use std::arch::x86_64::*;
    for (b, &d) in ds.iter().enumerate() {
        let dv = _mm256_set1_ps(half::f16::from_bits(d).to_f32());
        for i in (0..QK).step_by(8) {
            let at = b * QK + i;
            let q = _mm_loadl_epi64(qs.as_ptr().add(at) as *const __m128i);
            let f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
            _mm256_storeu_ps(out.as_mut_ptr().add(at), _mm256_mul_ps(f, dv));
        }
    }
}

/// A q8_0 cache's rows for one head: position p's quants at `qs[p · stride..][..hd]`, its scales
/// at `ds[p · stride / 32..][..hd / 32]` (stride: the row length, kv_dim).
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    pub qs: &'a [i8],
    pub ds: &'a [u16],
    pub stride: usize,
    pub hd: usize,
}

/// One head's rows of a quantised cache, as attention reads them.
pub trait QuantRows: Copy {
    /// Values per row of the head.
    fn hd(&self) -> usize;
    /// Position `p`'s row of the head, dequantised into `out` ([hd], exact).
    fn row(&self, p: usize, out: &mut [f32], isa: Isa);
}

impl QuantRows for Rows<'_> {
    fn hd(&self) -> usize {
        self.hd
    }

    fn row(&self, p: usize, out: &mut [f32], isa: Isa) {
        let (at, hd) = (p * self.stride, self.hd);
        dequantize_row(&self.qs[at..at + hd], &self.ds[at / QK..(at + hd) / QK], out, isa);
    }
}

/// `scores[j·ld + p] = dot_f32(q[j], K[p]) · scale` for the `g` query heads sharing the head
/// (q: [g, hd]), positions `p < n`; each K row dequantised once.
#[allow(clippy::too_many_arguments)]
pub fn scores(q: &[f32], g: usize, k: impl QuantRows, n: usize, ld: usize, scale: f32, scores: &mut [f32], isa: Isa) {
    let hd = k.hd();
    assert!(q.len() == g * hd && hd <= MAX_HEAD && ld >= n);
    let mut row = [0f32; MAX_HEAD];
    for p in 0..n {
        k.row(p, &mut row[..hd], isa);
        for j in 0..g {
            scores[j * ld + p] = dot_f32(&q[j * hd..(j + 1) * hd], &row[..hd], isa) * scale;
        }
    }
}

/// `out[j] += Σ_p probs[j·ld + p] · V[p]` for `g` heads (out: [g, hd]) in position order; each V
/// row dequantised once.
pub fn attend(probs: &[f32], g: usize, n: usize, ld: usize, v: impl QuantRows, out: &mut [f32], isa: Isa) {
    let hd = v.hd();
    assert!(out.len() == g * hd && hd <= MAX_HEAD && ld >= n);
    let mut row = [0f32; MAX_HEAD];
    for p in 0..n {
        v.row(p, &mut row[..hd], isa);
        for j in 0..g {
            axpy(probs[j * ld + p], &row[..hd], &mut out[j * hd..(j + 1) * hd], isa);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n)
            .map(|i| match i % 61 {
                0 => 0.0,
                1 => 300.0 * seed,
                _ => ((i as f32 * 0.37 + seed).sin()) * 2.5,
            })
            .collect()
    }

    /// Quantisation as ggml's reference, and dequantisation on SIMD equal to the scalar twin.
    #[test]
    fn rows_round_as_ggml_and_dequantise_exactly() {
        let x = values(256, 1.0);
        let (mut qs, mut ds) = (vec![0i8; 256], vec![0u16; 8]);
        quantize_row(&x, &mut qs, &mut ds);
        let (mut fast, mut twin) = (vec![0f32; 256], vec![0f32; 256]);
        dequantize_row(&qs, &ds, &mut fast, Isa::detected());
        dequantize_row(&qs, &ds, &mut twin, Isa::scalar());
        assert_eq!(fast, twin);
        for (b, x) in x.chunks(QK).enumerate() {
            let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = half::f16::from_bits(ds[b]).to_f32();
            assert!((d - amax / 127.0).abs() <= amax / 127.0 * 1e-3);
            for (i, &v) in x.iter().enumerate() {
                // Half a step of the f32 scale, plus the f16 scale's rounding times 127.
                assert!((fast[b * QK + i] - v).abs() <= 0.5 * amax / 127.0 + 127.0 * amax / 127.0 * 1e-3);
            }
        }
        let zeros = [0f32; 32];
        quantize_row(&zeros, &mut qs[..32], &mut ds[..1]);
        assert!(qs[..32].iter().all(|&q| q == 0) && ds[0] == 0);
    }

    /// The grouped kernels equal one head at a time on dequantised rows, on every level.
    #[test]
    fn scores_and_sums_read_the_blocks_like_dequantised_rows() {
        let (hd, kv_dim, n, g, ld) = (64, 128, 37, 7, 40);
        let kv = values(n * kv_dim, 2.0);
        let (mut qs, mut ds) = (vec![0i8; n * kv_dim], vec![0u16; n * kv_dim / QK]);
        for p in 0..n {
            let r = p * kv_dim;
            quantize_row(
                &kv[r..r + kv_dim],
                &mut qs[r..r + kv_dim],
                &mut ds[r / QK..(r + kv_dim) / QK],
            );
        }
        let q = values(g * hd, 3.0);
        let rows = Rows {
            qs: &qs[hd..],
            ds: &ds[hd / QK..],
            stride: kv_dim,
            hd,
        };
        grouped_equal_one_head_at_a_time(&q, g, n, ld, rows);
    }

    /// `scores` and `attend` over `rows` for `g` heads (q: [g, hd]) equal dot products and axpys
    /// one head at a time on the rows dequantised, bit for bit, at every level: the q8_0 and
    /// q4_0 caches' shared check.
    pub(crate) fn grouped_equal_one_head_at_a_time(q: &[f32], g: usize, n: usize, ld: usize, rows: impl QuantRows) {
        let hd = rows.hd();
        for isa in [Isa::detected(), Isa::scalar()] {
            let mut s = vec![f32::NAN; g * ld];
            scores(q, g, rows, n, ld, 0.125, &mut s, isa);
            let mut out = vec![0.5f32; g * hd];
            attend(&s, g, n, ld, rows, &mut out, isa);
            let mut want_out = vec![0.5f32; g * hd];
            let mut row = vec![0f32; hd];
            for p in 0..n {
                rows.row(p, &mut row, Isa::scalar());
                for j in 0..g {
                    let want = dot_f32(&q[j * hd..(j + 1) * hd], &row, isa) * 0.125;
                    assert_eq!(s[j * ld + p].to_bits(), want.to_bits(), "{isa:?} p {p} head {j}");
                    axpy(s[j * ld + p], &row, &mut want_out[j * hd..(j + 1) * hd], isa);
                }
            }
            assert_eq!(out, want_out, "{isa:?}");
        }
    }
}
