//! The packed kernels' contract, as a scalar twin over the GGUF row itself (so a test of the SIMD
//! kernel against it also tests the packing).
//!
//! For row `r` and token `t` (activations as `q8::quantize` rounds them: int8 `q`, scale `dx[b]`
//! and `s[b] = dx[b] · Σq` per 32-block `b`), with `D` an exact integer dot product:
//! - Q8_0, Q5_0: `acc = fma(D_b, dw_b · dx_b, acc)` over blocks in order, `D_b = Σ_32 w·q`;
//! - Q4_K: `acc = fma(D_j, (d · sc_j) · dx_j, acc)` and `macc = fma(dmin · m_j, s_j, macc)` over
//!   sub-blocks in order, `D_j = Σ_32 q4·q`; the result `acc − macc`;
//! - Q6_K: `acc = fma(D_g, (d · sc_g) · dx_b, acc)` over 16-weight groups in order, `D_g =
//!   Σ_16 (q6 − 32)·q`, `b` the group's 32-block.
//!
//! One float rounding per block instead of per 4-product lane (as `q8`'s contract has): a 16-row
//! kernel keeps one row per lane and sums a block's integers before converting them. An output
//! depends only on its row and its token, so results are batch invariant.

use crate::blocks::{as_blocks, f16_le, scale_min_k4, BlockQ4K, BlockQ5_0, BlockQ6K, BlockQ8_0};
use crate::q8::QuantActs;
use crate::GgmlType;

/// Row `row` (GGUF bytes of `ty`) against token `t` of `acts`, as the contract says.
pub fn dot(ty: GgmlType, row: &[u8], acts: &QuantActs, t: usize) -> f32 {
    let nb = acts.blocks();
    let q = &acts.qs[t * acts.cols..(t + 1) * acts.cols];
    let (dx, s) = (&acts.d[t * nb..(t + 1) * nb], &acts.s[t * nb..(t + 1) * nb]);
    let int = |b: usize, w: &dyn Fn(usize) -> i32, range: std::ops::Range<usize>| -> f32 {
        range.map(|i| w(i) * q[32 * b + i] as i32).sum::<i32>() as f32
    };
    let mut acc = 0f32;
    match ty {
        GgmlType::Q8_0 => {
            for (b, blk) in as_blocks::<BlockQ8_0>(row).iter().enumerate() {
                let d = int(b, &|i| blk.qs[i] as i32, 0..32);
                acc = d.mul_add(f16_le(blk.d) * dx[b], acc);
            }
        }
        GgmlType::Q5_0 => {
            for (b, blk) in as_blocks::<BlockQ5_0>(row).iter().enumerate() {
                let d = int(b, &|i| super::layout::q5(blk, i) as i32 - 16, 0..32);
                acc = d.mul_add(f16_le(blk.d) * dx[b], acc);
            }
        }
        GgmlType::Q4K => {
            let mut macc = 0f32;
            for (k, blk) in as_blocks::<BlockQ4K>(row).iter().enumerate() {
                for j in 0..8 {
                    let (sc, m) = scale_min_k4(j, &blk.scales);
                    let run = &blk.qs[32 * (j / 2)..];
                    let nib = |i: usize| (if j % 2 == 0 { run[i] & 0x0F } else { run[i] >> 4 }) as i32;
                    let b = 8 * k + j;
                    acc = int(b, &nib, 0..32).mul_add((f16_le(blk.d) * sc as f32) * dx[b], acc);
                    macc = (f16_le(blk.dmin) * m as f32).mul_add(s[b], macc);
                }
            }
            return acc - macc;
        }
        GgmlType::Q6K => {
            for (k, blk) in as_blocks::<BlockQ6K>(row).iter().enumerate() {
                for j in 0..8 {
                    let b = 8 * k + j;
                    let w = |i: usize| super::layout::q6k(blk, j, i) as i32 - 32;
                    for h in 0..2 {
                        let f = (f16_le(blk.d) * blk.scales[2 * j + h] as f32) * dx[b];
                        acc = int(b, &w, 16 * h..16 * h + 16).mul_add(f, acc);
                    }
                }
            }
        }
        _ => panic!("no packed kernel for {}", ty.name()),
    }
    acc
}
