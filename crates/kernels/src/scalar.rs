//! The scalar reference: dequantisation of every supported type, written to read like the format
//! description. Every SIMD kernel is tested against these.

// Index loops mirror the format descriptions (element j of block b), which is the point here.
#![allow(clippy::needless_range_loop)]

use crate::blocks::*;
use crate::GgmlType;

/// f32 → bf16 bits, rounding to nearest even (a NaN stays a NaN). The activations and weights of
/// the prompt path (`prompt`) are rounded with this.
pub fn bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// bf16 bits → f32 (exact).
pub fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// Dequantises one row (`bytes` of type `ty`) into `out` (`out.len()` elements).
pub fn dequantize_row(ty: GgmlType, bytes: &[u8], out: &mut [f32]) {
    assert_eq!(
        ty.bytes_for(out.len() as u64),
        Some(bytes.len() as u64),
        "{} row of {} bytes does not hold {} elements",
        ty.name(),
        bytes.len(),
        out.len()
    );
    match ty {
        GgmlType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes(c.try_into().unwrap());
            }
        }
        GgmlType::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f16_le([c[0], c[1]]);
            }
        }
        GgmlType::BF16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16);
            }
        }
        GgmlType::Q4_0 => {
            for (b, y) in as_blocks::<BlockQ4_0>(bytes).iter().zip(out.chunks_exact_mut(32)) {
                let d = f16_le(b.d);
                for j in 0..16 {
                    y[j] = d * ((b.qs[j] & 0x0F) as i32 - 8) as f32;
                    y[j + 16] = d * ((b.qs[j] >> 4) as i32 - 8) as f32;
                }
            }
        }
        GgmlType::Q5_0 => {
            for (b, y) in as_blocks::<BlockQ5_0>(bytes).iter().zip(out.chunks_exact_mut(32)) {
                let d = f16_le(b.d);
                let qh = u32::from_le_bytes(b.qh);
                for j in 0..16 {
                    let h0 = ((qh >> j) & 1) << 4;
                    let h1 = ((qh >> (j + 16)) & 1) << 4;
                    y[j] = d * (((b.qs[j] & 0x0F) as u32 | h0) as i32 - 16) as f32;
                    y[j + 16] = d * (((b.qs[j] >> 4) as u32 | h1) as i32 - 16) as f32;
                }
            }
        }
        GgmlType::Q8_0 => {
            for (b, y) in as_blocks::<BlockQ8_0>(bytes).iter().zip(out.chunks_exact_mut(32)) {
                let d = f16_le(b.d);
                for j in 0..32 {
                    y[j] = d * b.qs[j] as f32;
                }
            }
        }
        GgmlType::Q4K => {
            for (b, y) in as_blocks::<BlockQ4K>(bytes).iter().zip(out.chunks_exact_mut(256)) {
                let (d, dmin) = (f16_le(b.d), f16_le(b.dmin));
                for c in 0..4 {
                    let q = &b.qs[32 * c..32 * c + 32];
                    let (sc0, m0) = scale_min_k4(2 * c, &b.scales);
                    let (sc1, m1) = scale_min_k4(2 * c + 1, &b.scales);
                    for l in 0..32 {
                        y[64 * c + l] = d * sc0 as f32 * (q[l] & 0x0F) as f32 - dmin * m0 as f32;
                        y[64 * c + 32 + l] = d * sc1 as f32 * (q[l] >> 4) as f32 - dmin * m1 as f32;
                    }
                }
            }
        }
        GgmlType::Q5K => {
            for (b, y) in as_blocks::<BlockQ5K>(bytes).iter().zip(out.chunks_exact_mut(256)) {
                let (d, dmin) = (f16_le(b.d), f16_le(b.dmin));
                for c in 0..4 {
                    let q = &b.qs[32 * c..32 * c + 32];
                    let (sc0, m0) = scale_min_k4(2 * c, &b.scales);
                    let (sc1, m1) = scale_min_k4(2 * c + 1, &b.scales);
                    for l in 0..32 {
                        let h0 = ((b.qh[l] >> (2 * c)) & 1) << 4;
                        let h1 = ((b.qh[l] >> (2 * c + 1)) & 1) << 4;
                        y[64 * c + l] = d * sc0 as f32 * ((q[l] & 0x0F) | h0) as f32 - dmin * m0 as f32;
                        y[64 * c + 32 + l] = d * sc1 as f32 * ((q[l] >> 4) | h1) as f32 - dmin * m1 as f32;
                    }
                }
            }
        }
        GgmlType::Q6K => {
            for (b, y) in as_blocks::<BlockQ6K>(bytes).iter().zip(out.chunks_exact_mut(256)) {
                let d = f16_le(b.d);
                for half in 0..2 {
                    let ql = &b.ql[64 * half..64 * half + 64];
                    let qh = &b.qh[32 * half..32 * half + 32];
                    let sc = &b.scales[8 * half..8 * half + 8];
                    let y = &mut y[128 * half..128 * half + 128];
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
                        let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                        let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                        let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                        y[l] = d * sc[is] as f32 * q1 as f32;
                        y[l + 32] = d * sc[is + 2] as f32 * q2 as f32;
                        y[l + 64] = d * sc[is + 4] as f32 * q3 as f32;
                        y[l + 96] = d * sc[is + 6] as f32 * q4 as f32;
                    }
                }
            }
        }
        GgmlType::Q8K => {
            for (b, y) in as_blocks::<BlockQ8K>(bytes).iter().zip(out.chunks_exact_mut(256)) {
                let d = f32::from_le_bytes(b.d);
                for j in 0..256 {
                    y[j] = d * b.qs[j] as f32;
                }
            }
        }
    }
}

/// Reference dot product of a quantised row with f32 activations: dequantise, then sum in f64
/// (so the reference is more exact than any fast path it judges).
pub fn dot_row(ty: GgmlType, bytes: &[u8], x: &[f32]) -> f32 {
    let mut w = vec![0f32; x.len()];
    dequantize_row(ty, bytes, &mut w);
    w.iter().zip(x).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() as f32
}
