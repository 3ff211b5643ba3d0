//! The KV cache's q4_0 rows: ggml's q4_0 arithmetic (blocks of 32 values, one f16 scale
//! d = max / −8 where max is the value of largest magnitude, q = min(15, trunc(x / d + 8.5)),
//! value = (q − 8) · d; value i in the low nibble of byte i, value 16 + i in its high nibble),
//! kept as two arrays so a head's quants are contiguous: quants [positions, kv_dim / 2] bytes and
//! scales [positions, kv_dim / 32] f16. 18 bytes per 32 values, 28% of f16's.
//!
//! Attention reads the blocks as the q8_0 cache does (`kv_q8::scores`, `kv_q8::attend`): each row
//! of a head dequantised once into a stack buffer for all the query heads sharing it ((q − 8) · d
//! is exact in f32), then f32 dot products and axpys.

use crate::dispatch::Isa;
use crate::kv_q8::{QuantRows, QK};

/// Rounds `x` (a multiple of 32 long) into nibbles and f16 scales, as ggml's
/// `quantize_row_q4_0_ref`.
pub fn quantize_row(x: &[f32], qs: &mut [u8], ds: &mut [u16]) {
    assert!(x.len().is_multiple_of(QK) && qs.len() * 2 == x.len() && ds.len() == x.len() / QK);
    for ((x, q), d) in x.chunks_exact(QK).zip(qs.chunks_exact_mut(QK / 2)).zip(ds.iter_mut()) {
        let max = x.iter().fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
        let dv = max / -8.0;
        let id = if dv != 0.0 { 1.0 / dv } else { 0.0 };
        // (x·id + 8.5) lies in [0.5, 16.5]: truncation, as C's (int8_t) cast, then 15 at most.
        let nibble = |v: f32| ((v * id + 8.5) as i8).min(15) as u8;
        for (i, q) in q.iter_mut().enumerate() {
            *q = nibble(x[i]) | nibble(x[i + QK / 2]) << 4;
        }
        *d = half::f16::from_f32(dv).to_bits();
    }
}

/// `out = (q − 8) · d` per block (exact).
pub fn dequantize_row(qs: &[u8], ds: &[u16], out: &mut [f32], isa: Isa) {
    assert!(qs.len() * 2 == out.len() && ds.len() * QK == out.len());
    #[cfg(target_arch = "x86_64")]
    if isa.simd() {
        // SAFETY: the AVX2 set was detected; lengths checked above.
        return unsafe { dequantize_avx2(qs, ds, out) };
    }
    let _ = isa;
    for ((q, &d), o) in qs.chunks_exact(QK / 2).zip(ds).zip(out.chunks_exact_mut(QK)) {
        let d = half::f16::from_bits(d).to_f32();
        for (i, &b) in q.iter().enumerate() {
            o[i] = ((b & 15) as i32 - 8) as f32 * d;
            o[i + QK / 2] = ((b >> 4) as i32 - 8) as f32 * d;
        }
    }
}

/// # Safety
/// AVX2, FMA and F16C must be available; lengths as `dequantize_row` checks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dequantize_avx2(qs: &[u8], ds: &[u16], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let (low, eight) = (_mm_set1_epi8(15), _mm_set1_epi8(8));
    for (b, &d) in ds.iter().enumerate() {
        let dv = _mm256_set1_ps(half::f16::from_bits(d).to_f32());
        let bytes = _mm_loadu_si128(qs.as_ptr().add(b * QK / 2) as *const __m128i);
        // Values 0..16 in the low nibbles, 16..32 in the high ones; both minus 8, as i8.
        let lo = _mm_sub_epi8(_mm_and_si128(bytes, low), eight);
        let hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(bytes, 4), low), eight);
        let o = out.as_mut_ptr().add(b * QK);
        for (i, v) in [lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)]
            .into_iter()
            .enumerate()
        {
            let f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
            _mm256_storeu_ps(o.add(8 * i), _mm256_mul_ps(f, dv));
        }
    }
}

/// A q4_0 cache's rows for one head: position p's nibbles at `qs[p · stride / 2..][..hd / 2]`,
/// its scales at `ds[p · stride / 32..][..hd / 32]` (stride: the row length in values, kv_dim).
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    pub qs: &'a [u8],
    pub ds: &'a [u16],
    pub stride: usize,
    pub hd: usize,
}

impl QuantRows for Rows<'_> {
    fn hd(&self) -> usize {
        self.hd
    }

    fn row(&self, p: usize, out: &mut [f32], isa: Isa) {
        let (at, hd) = (p * self.stride, self.hd);
        dequantize_row(
            &self.qs[at / 2..(at + hd) / 2],
            &self.ds[at / QK..(at + hd) / QK],
            out,
            isa,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n)
            .map(|i| match i % 61 {
                0 => 0.0,
                1 => -300.0 * seed,
                _ => ((i as f32 * 0.37 + seed).sin()) * 2.5,
            })
            .collect()
    }

    /// ggml's q4_0 reference, written out again for the test: d = max / −8, nibbles as C does.
    fn ggml_reference(x: &[f32]) -> (Vec<u8>, Vec<u16>) {
        let mut qs = vec![0u8; x.len() / 2];
        let mut ds = vec![0u16; x.len() / 32];
        for (b, x) in x.chunks(32).enumerate() {
            let (mut amax, mut max) = (0f32, 0f32);
            for &v in x {
                if amax < v.abs() {
                    amax = v.abs();
                    max = v;
                }
            }
            let d = max / -8.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            ds[b] = half::f16::from_f32(d).to_bits();
            for j in 0..16 {
                let xi0 = ((x[j] * id + 8.5) as i8 as u8).min(15);
                let xi1 = ((x[16 + j] * id + 8.5) as i8 as u8).min(15);
                qs[b * 16 + j] = xi0 | (xi1 << 4);
            }
        }
        (qs, ds)
    }

    fn d_signed(bits: u16) -> f32 {
        half::f16::from_bits(bits).to_f32()
    }

    #[test]
    fn rows_round_as_ggml_and_dequantise_exactly() {
        let x = values(256, 1.0);
        let (mut qs, mut ds) = (vec![0u8; 128], vec![0u16; 8]);
        quantize_row(&x, &mut qs, &mut ds);
        assert_eq!((qs.clone(), ds.clone()), ggml_reference(&x));
        let (mut fast, mut twin) = (vec![0f32; 256], vec![0f32; 256]);
        dequantize_row(&qs, &ds, &mut fast, Isa::detected());
        dequantize_row(&qs, &ds, &mut twin, Isa::scalar());
        assert_eq!(fast, twin);
        for (b, x) in x.chunks(QK).enumerate() {
            let d = half::f16::from_bits(ds[b]).to_f32().abs();
            for (i, &v) in x.iter().enumerate() {
                // Half a step, plus the f16 scale's rounding times 8 steps; a whole step at the end
                // opposite the largest value (levels −8..7: +8 steps clamps to 7).
                let step = if (v > 0.0) == (d_signed(ds[b]) > 0.0) && v.abs() > 7.5 * d {
                    1.0
                } else {
                    0.5
                };
                assert!(
                    (fast[b * QK + i] - v).abs() <= step * d + 8.0 * d * 1e-3 + 1e-6,
                    "{v} vs {}",
                    fast[b * QK + i]
                );
            }
        }
        let zeros = [0f32; 32];
        quantize_row(&zeros, &mut qs[..16], &mut ds[..1]);
        // d = 0 / −8 = −0 (ggml stores the same), every value (8 − 8) · −0 = 0.
        assert!(qs[..16].iter().all(|&q| q == 0x88) && half::f16::from_bits(ds[0]).to_f32() == 0.0);
    }

    /// The grouped kernels on q4_0 rows equal one head at a time on the dequantised rows.
    #[test]
    fn scores_and_sums_read_the_nibbles_like_dequantised_rows() {
        let (hd, kv_dim, n, g, ld) = (64, 128, 37, 7, 40);
        let kv = values(n * kv_dim, 2.0);
        let (mut qs, mut ds) = (vec![0u8; n * kv_dim / 2], vec![0u16; n * kv_dim / QK]);
        for p in 0..n {
            let r = p * kv_dim;
            quantize_row(
                &kv[r..r + kv_dim],
                &mut qs[r / 2..(r + kv_dim) / 2],
                &mut ds[r / QK..(r + kv_dim) / QK],
            );
        }
        let q = values(g * hd, 3.0);
        let rows = Rows {
            qs: &qs[hd / 2..],
            ds: &ds[hd / QK..],
            stride: kv_dim,
            hd,
        };
        crate::kv_q8::tests::grouped_equal_one_head_at_a_time(&q, g, n, ld, rows);
    }
}
