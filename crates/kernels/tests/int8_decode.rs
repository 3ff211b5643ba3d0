//! The generated tokens' int8 kernels against their scalar twin (bit for bit, on every path this
//! CPU has: AVX2 and scalar), against the exact arithmetic they approximate, and the decode
//! matmul's batch invariance.

use tandem_kernels::dispatch::{dot_q8, DecodeKernel, Isa, KernelChoice, Level};
use tandem_kernels::q8::{self, QuantActs};
use tandem_kernels::{matmul_decode, scalar, GgmlType, QMatrix};

mod common;
use common::{activations, random_row};

/// Odd block counts (96, 992 columns) cover the 512-bit kernels' single last block.
const TYPES: [(GgmlType, usize); 6] = [
    (GgmlType::Q8_0, 896),
    (GgmlType::Q8_0, 96),
    (GgmlType::Q5_0, 896),
    (GgmlType::Q5_0, 992),
    (GgmlType::Q4K, 1536),
    (GgmlType::Q6K, 1536),
];

/// Rows whose blocks are extreme: every byte `fill` and large or zero scales.
fn adversarial_row(ty: GgmlType, cols: usize, fill: u8, scale: f32) -> Vec<u8> {
    let n = ty.bytes_for(cols as u64).unwrap() as usize;
    let mut b = vec![fill; n];
    let bb = ty.block_bytes();
    let h = half::f16::from_f32(scale).to_le_bytes();
    for o in (0..n).step_by(bb) {
        match ty {
            GgmlType::Q8_0 | GgmlType::Q5_0 => b[o..o + 2].copy_from_slice(&h),
            GgmlType::Q4K => {
                b[o..o + 2].copy_from_slice(&h);
                b[o + 2..o + 4].copy_from_slice(&h);
            }
            GgmlType::Q6K => b[o + 208..o + 210].copy_from_slice(&h),
            _ => unreachable!(),
        }
    }
    b
}

/// Activations with awkward blocks: all zero, one spike, tiny values, exact halves to round.
fn awkward_activations(cols: usize) -> Vec<f32> {
    let mut x = activations(cols, 0.5);
    x[..32].fill(0.0);
    x[40] = 1.0e6;
    for v in &mut x[64..96] {
        *v *= 1.0e-30;
    }
    for (i, v) in x[96..128].iter_mut().enumerate() {
        *v = (i as f32 - 16.0) + 0.5;
    }
    x
}

fn rows_of(ty: GgmlType, cols: usize) -> Vec<Vec<u8>> {
    let mut rows: Vec<Vec<u8>> = (0..6).map(|s| random_row(ty, cols, 7 + s)).collect();
    for (fill, scale) in [
        (0x00, 0.0),
        (0xFF, 1000.0),
        (0x80, 0.5),
        (0x7F, 1.0e-3),
        (0x55, 65504.0),
    ] {
        rows.push(adversarial_row(ty, cols, fill, scale));
    }
    rows
}

#[test]
fn quantisation_matches_the_scalar_twin() {
    for x in [activations(4096, 1.0), awkward_activations(4096)] {
        let mut simd = QuantActs::default();
        q8::quantize(&x, 1024, &mut simd, Isa::detected());
        let mut twin = QuantActs::default();
        twin.reset(4, 1024);
        q8::quantize_scalar(&x, &mut twin);
        assert_eq!(simd.qs, twin.qs);
        assert_eq!(simd.qu, twin.qu);
        assert!(twin.qs.iter().zip(&twin.qu).all(|(&q, &u)| u as i32 == q as i32 + 128));
        assert_eq!(
            simd.d.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            twin.d.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(
            simd.s.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            twin.s.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        // Every value is within half a step of its block's scale.
        for (i, &v) in x.iter().enumerate() {
            let d = twin.d[i / 32];
            assert!(
                (v - d * twin.qs[i] as f32).abs() <= 0.5 * d * 1.0001 + 1e-37,
                "element {i}: {v}"
            );
        }
    }
}

#[test]
fn int8_dots_match_the_scalar_twin_and_the_exact_sum() {
    let best = Isa::detected();
    if !best.simd() {
        eprintln!("no SIMD on this CPU: only the scalar twin runs");
    }
    for (ty, cols) in TYPES {
        let rows = rows_of(ty, cols);
        for x in [activations(3 * cols, 2.0), awkward_activations(3 * cols)] {
            let mut acts = QuantActs::default();
            q8::quantize(&x, cols, &mut acts, best);
            for (n, row) in rows.iter().enumerate() {
                let narrow = dot_q8::<1, 3>(ty, [row], &acts, 0, best.at_most(Level::Avx2))[0];
                let got = dot_q8::<1, 3>(ty, [row], &acts, 0, best)[0];
                assert_eq!(
                    got.map(f32::to_bits),
                    narrow.map(f32::to_bits),
                    "{} row {n}: AVX-512 vs AVX2",
                    ty.name()
                );
                for (t, &got) in got.iter().enumerate() {
                    let twin = q8::dot_scalar(ty, row, &acts, t);
                    assert_eq!(
                        got.to_bits(),
                        twin.to_bits(),
                        "{} row {n} token {t}: {got} vs twin {twin}",
                        ty.name()
                    );
                    // The contract's only roundings are f32 products and sums of exact integers.
                    let exact = q8::dot_dequantized(ty, row, &acts, t);
                    let mut w = vec![0f32; cols];
                    scalar::dequantize_row(ty, row, &mut w);
                    let nb = cols / 32;
                    let mag: f64 = (0..cols)
                        .map(|i| (w[i] as f64 * acts.qs[t * cols + i] as f64 * acts.d[t * nb + i / 32] as f64).abs())
                        .sum();
                    assert!(
                        (got as f64 - exact).abs() <= 1e-5 * mag + 1e-30,
                        "{} row {n} token {t}: {got} vs exact {exact} (Σ|wx| {mag})",
                        ty.name()
                    );
                }
            }
        }
    }
}

/// The decode matmul at every token count and grouping gives each (row, token) the twin's value
/// (so a token's numbers never depend on the batch), on SIMD and on the scalar path alike, and
/// stays within int8 rounding of the f32 product.
#[test]
fn decode_matmul_is_batch_invariant_and_close_to_f32() {
    for (ty, cols) in TYPES {
        let n_rows = 37; // not a multiple of the row groups, to cover the edges
        let data: Vec<u8> = (0..n_rows).flat_map(|r| random_row(ty, cols, 300 + r as u64)).collect();
        let w = QMatrix::new(ty, n_rows, cols, &data).unwrap();
        let x = activations(9 * cols, 3.0);
        let mut acts = QuantActs::default();
        q8::quantize(&x, cols, &mut acts, Isa::detected());
        // The best kernels this CPU has, then AVX2 without AVX-512, then the scalar twin.
        for cap in [Level::Avx512Vnni, Level::Avx2, Level::Scalar] {
            let k = KernelChoice::new(None, DecodeKernel::Int8).with_isa_at_most(cap);
            eprintln!("{}: {:?}", ty.name(), k.isa().level());
            for n_tok in [1, 2, 3, 4, 5, 8, 9] {
                let mut y = vec![0f32; n_tok * n_rows];
                matmul_decode(&w, &x[..n_tok * cols], &mut y, k);
                for t in 0..n_tok {
                    for r in 0..n_rows {
                        let got = y[t * n_rows + r];
                        let twin = q8::dot_scalar(ty, w.row(r), &acts, t);
                        assert_eq!(
                            got.to_bits(),
                            twin.to_bits(),
                            "{} n_tok {n_tok} token {t} row {r}",
                            ty.name()
                        );
                        let xr = &x[t * cols..(t + 1) * cols];
                        let f32_dot = scalar::dot_row(ty, w.row(r), xr);
                        let mut wr = vec![0f32; cols];
                        scalar::dequantize_row(ty, w.row(r), &mut wr);
                        let mag: f32 = wr.iter().zip(xr).map(|(a, b)| (a * b).abs()).sum();
                        assert!(
                            (got - f32_dot).abs() <= 0.01 * mag,
                            "{} token {t} row {r}: int8 {got} vs f32 {f32_dot} (Σ|wx| {mag})",
                            ty.name()
                        );
                    }
                }
            }
        }
    }
}
