//! Generated tokens' arithmetic: activations rounded to 8-bit integers in blocks of 32, then
//! integer dot products with the weights' own integers (the way the fastest CPU engines decode).
//!
//! The contract every implementation of a (row, token) output follows, so that the scalar twin
//! here and the SIMD kernels (`x86::int8`) agree bit for bit, whatever the number of rows or
//! tokens computed together (batch invariance):
//! - activation block b (32 values): `amax = max|x|`, `d = amax / 127`, `q = clamp(round_even(x ·
//!   (127 / amax)), ±127)` (all zero when `amax = 0`), `s = d · Σq`;
//! - per 32-weight sub-block, 8 integer lanes `L[l] = Σ_{i=4l..4l+3} w[i] · q[i]`;
//! - two sets of 8 float accumulators, even and odd 32-blocks apart (so 512-bit kernels take a
//!   pair of blocks per instruction): `acc[b % 2][l] = fma(L[l], f, acc[b % 2][l])` in block
//!   order, `f` = the weight block's float scale × `d` (Q6_K: `(d_w · sc) · d`, `sc` the scale of
//!   the 16 weights lane l belongs to);
//! - result `hsum8(acc[0] + acc[1])` (Q4_K: minus `hsum8(macc)`, `macc[j] = fma(dmin·m[j],
//!   s[8k + j], macc[j])` over super-blocks k).

// Index loops follow the lanes and sub-blocks of the contract above.
#![allow(clippy::needless_range_loop)]

use crate::blocks::{as_blocks, f16_le, scale_min_k4, BlockQ4K, BlockQ5_0, BlockQ6K, BlockQ8_0};
use crate::GgmlType;

/// Tokens' activations quantised for the int8 kernels, stored by field so that a K-quant
/// super-block's 8 scales load as one vector. For `n` tokens of `cols` values:
/// qs: [n, cols] i8, qu: [n, cols] (`q + 128` as u8, what the VNNI kernels multiply signed
/// weights with), d: [n, cols / 32], s: [n, cols / 32].
#[derive(Default)]
pub struct QuantActs {
    pub cols: usize,
    pub qs: Vec<i8>,
    pub qu: Vec<u8>,
    pub d: Vec<f32>,
    pub s: Vec<f32>,
}

impl QuantActs {
    /// Blocks of 32 per token.
    pub fn blocks(&self) -> usize {
        self.cols / 32
    }

    pub fn tokens(&self) -> usize {
        self.qs.len().checked_div(self.cols).unwrap_or(0)
    }

    /// Sizes the buffers for `n` tokens of `cols` values (`cols` a multiple of 32).
    pub fn reset(&mut self, n: usize, cols: usize) {
        assert!(
            cols.is_multiple_of(32),
            "activations of {cols} values are not whole blocks of 32"
        );
        self.cols = cols;
        self.qs.resize(n * cols, 0);
        self.qu.resize(n * cols, 0);
        self.d.resize(n * cols / 32, 0.0);
        self.s.resize(n * cols / 32, 0.0);
    }
}

/// The weight types with int8 kernels.
pub fn supported(ty: GgmlType) -> bool {
    crate::dispatch::has_kernels(ty)
}

/// Quantises `x` ([n, cols]) into `out` on the chosen ISA (bit-identical to `quantize_scalar`).
pub fn quantize(x: &[f32], cols: usize, out: &mut QuantActs, isa: crate::Isa) {
    let n = x.len() / cols;
    assert_eq!(n * cols, x.len(), "x is not a whole number of rows");
    out.reset(n, cols);
    #[cfg(target_arch = "x86_64")]
    if isa.simd() {
        // SAFETY: AVX2, FMA and F16C were detected; the buffers were sized by `reset` above.
        unsafe { crate::x86::int8::quantize(x, &mut out.qs, &mut out.qu, &mut out.d, &mut out.s) };
        return;
    }
    quantize_scalar(x, out);
}

/// The scalar reference of the activation rounding; `out` sized by `QuantActs::reset`.
pub fn quantize_scalar(x: &[f32], out: &mut QuantActs) {
    for (b, xb) in x.chunks_exact(32).enumerate() {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let id = if amax > 0.0 { 127.0 / amax } else { 0.0 };
        let mut sum = 0i32;
        for (i, &v) in xb.iter().enumerate() {
            let q = (v * id).round_ties_even().clamp(-127.0, 127.0) as i32;
            out.qs[32 * b + i] = q as i8;
            out.qu[32 * b + i] = (q + 128) as u8;
            sum += q;
        }
        let d = amax / 127.0;
        out.d[b] = d;
        out.s[b] = d * sum as f32;
    }
}

/// The 8-lane horizontal sum of the contract: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)).
pub fn hsum8(a: &[f32; 8]) -> f32 {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

/// `acc[l] = fma(L[l], f(l), acc[l])` for the 32 weights `w` (element order) against `q`.
fn block(acc: &mut [f32; 8], w: &[i32; 32], q: &[i8], f: impl Fn(usize) -> f32) {
    for l in 0..8 {
        let sum: i32 = (4 * l..4 * l + 4).map(|i| w[i] * q[i] as i32).sum();
        acc[l] = (sum as f32).mul_add(f(l), acc[l]);
    }
}

/// Scalar twin of the int8 kernels: row `row` (type `ty`) against token `t` of `acts`.
pub fn dot_scalar(ty: GgmlType, row: &[u8], acts: &QuantActs, t: usize) -> f32 {
    let nb = acts.blocks();
    let (q, d, s) = (
        &acts.qs[t * acts.cols..(t + 1) * acts.cols],
        &acts.d[t * nb..(t + 1) * nb],
        &acts.s[t * nb..(t + 1) * nb],
    );
    let mut acc = [[0f32; 8]; 2];
    let mut w = [0i32; 32];
    match ty {
        GgmlType::Q8_0 => {
            for (b, blk) in as_blocks::<BlockQ8_0>(row).iter().enumerate() {
                for i in 0..32 {
                    w[i] = blk.qs[i] as i32;
                }
                let f = f16_le(blk.d) * d[b];
                block(&mut acc[b % 2], &w, &q[32 * b..], |_| f);
            }
        }
        GgmlType::Q5_0 => {
            for (b, blk) in as_blocks::<BlockQ5_0>(row).iter().enumerate() {
                let qh = u32::from_le_bytes(blk.qh);
                for i in 0..16 {
                    w[i] = ((blk.qs[i] & 0x0F) as u32 | ((qh >> i) & 1) << 4) as i32 - 16;
                    w[i + 16] = ((blk.qs[i] >> 4) as u32 | ((qh >> (i + 16)) & 1) << 4) as i32 - 16;
                }
                let f = f16_le(blk.d) * d[b];
                block(&mut acc[b % 2], &w, &q[32 * b..], |_| f);
            }
        }
        GgmlType::Q4K => {
            let mut macc = [0f32; 8];
            for (k, blk) in as_blocks::<BlockQ4K>(row).iter().enumerate() {
                let (dd, dmin) = (f16_le(blk.d), f16_le(blk.dmin));
                for j in 0..8 {
                    let (sc, m) = scale_min_k4(j, &blk.scales);
                    let run = &blk.qs[32 * (j / 2)..32 * (j / 2) + 32];
                    for i in 0..32 {
                        w[i] = if j % 2 == 0 { run[i] & 0x0F } else { run[i] >> 4 } as i32;
                    }
                    let b = 8 * k + j;
                    let f = dd * sc as f32 * d[b];
                    block(&mut acc[b % 2], &w, &q[32 * b..], |_| f);
                    macc[j] = (dmin * m as f32).mul_add(s[b], macc[j]);
                }
            }
            return hsum8(&pair_sum(&acc)) - hsum8(&macc);
        }
        GgmlType::Q6K => {
            for (k, blk) in as_blocks::<BlockQ6K>(row).iter().enumerate() {
                let dd = f16_le(blk.d);
                for j in 0..8 {
                    let (half, r) = (j / 4, j % 4);
                    for i in 0..32 {
                        let ql = blk.ql[64 * half + 32 * (r % 2) + i];
                        let low = if r < 2 { ql & 0x0F } else { ql >> 4 };
                        let high = (blk.qh[32 * half + i] >> (2 * r)) & 3;
                        w[i] = (low | high << 4) as i32 - 32;
                    }
                    let b = 8 * k + j;
                    let f = |l: usize| (dd * blk.scales[2 * j + l / 4] as f32) * d[b];
                    block(&mut acc[b % 2], &w, &q[32 * b..], f);
                }
            }
        }
        _ => panic!("no int8 kernel for {}", ty.name()),
    }
    hsum8(&pair_sum(&acc))
}

/// The even and odd blocks' accumulators added lane by lane.
fn pair_sum(acc: &[[f32; 8]; 2]) -> [f32; 8] {
    std::array::from_fn(|l| acc[0][l] + acc[1][l])
}

/// What the int8 arithmetic approximates, computed exactly: the dequantised row against the
/// dequantised activations, summed in f64 (tests bound the kernels' rounding against it).
pub fn dot_dequantized(ty: GgmlType, row: &[u8], acts: &QuantActs, t: usize) -> f64 {
    let mut w = vec![0f32; acts.cols];
    crate::scalar::dequantize_row(ty, row, &mut w);
    let nb = acts.blocks();
    (0..acts.cols)
        .map(|i| w[i] as f64 * acts.qs[t * acts.cols + i] as f64 * acts.d[t * nb + i / 32] as f64)
        .sum()
}
