//! The packed panels: packing is lossless (every GGUF byte comes back), the AVX-512 VNNI kernels
//! equal their scalar twin bit for bit at every token count (so a token's numbers never depend on
//! the batch), and the twin stays within int8 rounding of the exact product.

use tandem_kernels::dispatch::{Isa, Level};
use tandem_kernels::packed::{matmul_packed, packs, twin, PackedMatrix, LANES};
use tandem_kernels::q8::{self, QuantActs};
use tandem_kernels::{scalar, GgmlType, QMatrix};

mod common;
use common::{activations, random_row};

const TYPES: [(GgmlType, usize); 5] = [
    (GgmlType::Q8_0, 896),
    (GgmlType::Q5_0, 896),
    (GgmlType::Q5_0, 128),
    (GgmlType::Q4K, 1536),
    (GgmlType::Q6K, 768),
];

/// 48 rows: random ones, then rows of extreme bytes (every byte 0x00, 0xFF, 0x80, 0x7F) with
/// zero or large scales.
fn matrix(ty: GgmlType, cols: usize) -> Vec<u8> {
    let rb = ty.bytes_for(cols as u64).unwrap() as usize;
    let mut data: Vec<u8> = (0..40).flat_map(|r| random_row(ty, cols, 900 + r)).collect();
    for (n, fill) in [0x00u8, 0xFF, 0x80, 0x7F, 0x55, 0xAA, 0x0F, 0xF0]
        .into_iter()
        .enumerate()
    {
        let mut row = random_row(ty, cols, 50 + n as u64);
        let scales: Vec<usize> = (0..rb).step_by(ty.block_bytes()).collect();
        let keep = |i: usize| {
            scales.iter().any(|&o| match ty {
                GgmlType::Q6K => (o + 208..o + 210).contains(&i),
                GgmlType::Q4K => (o..o + 4).contains(&i),
                _ => (o..o + 2).contains(&i),
            })
        };
        for (i, b) in row.iter_mut().enumerate() {
            if !keep(i) {
                *b = fill;
            }
        }
        data.extend(row);
    }
    data
}

#[test]
fn packing_gives_every_byte_back() {
    for (ty, cols) in TYPES {
        let data = matrix(ty, cols);
        let rb = data.len() / 48;
        let w = QMatrix::new(ty, 48, cols, &data).unwrap();
        let p = PackedMatrix::pack(&w).expect("packable");
        assert_eq!(p.bytes() % 64, 0);
        let mut back = vec![0u8; LANES * rb];
        for panel in 0..3 {
            p.unpack_panel(panel, &mut back);
            assert!(
                back == data[panel * LANES * rb..(panel + 1) * LANES * rb],
                "{} panel {panel}",
                ty.name()
            );
        }
    }
}

#[test]
fn shapes_that_do_not_divide_are_not_packed() {
    let data = random_row(GgmlType::Q8_0, 96, 1).repeat(16);
    assert!(PackedMatrix::pack(&QMatrix::new(GgmlType::Q8_0, 16, 96, &data).unwrap()).is_none());
    let data = random_row(GgmlType::Q8_0, 128, 1).repeat(17);
    assert!(PackedMatrix::pack(&QMatrix::new(GgmlType::Q8_0, 17, 128, &data).unwrap()).is_none());
    let data = random_row(GgmlType::Q4_0, 128, 1).repeat(16);
    assert!(PackedMatrix::pack(&QMatrix::new(GgmlType::Q4_0, 16, 128, &data).unwrap()).is_none());
}

#[test]
fn packed_matmul_equals_the_twin_at_every_token_count() {
    let isa = Isa::detected();
    if !packs(isa) {
        eprintln!("no AVX-512 VNNI here: only the twin's fallback runs");
    }
    for (ty, cols) in TYPES {
        let data = matrix(ty, cols);
        let w = QMatrix::new(ty, 48, cols, &data).unwrap();
        let p = PackedMatrix::pack(&w).unwrap();
        let mut x = activations(19 * cols, 1.5);
        // Awkward blocks: all zero, a spike, tiny values.
        x[..32].fill(0.0);
        x[cols + 40] = 1.0e6;
        for v in &mut x[2 * cols..2 * cols + 32] {
            *v *= 1.0e-30;
        }
        let mut acts = QuantActs::default();
        q8::quantize(&x, cols, &mut acts, isa);
        for cap in [Level::Avx512Vnni, Level::Scalar] {
            let isa = isa.at_most(cap);
            for n_tok in [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 19] {
                let mut y = vec![0f32; n_tok * 48];
                matmul_packed(&p, &x[..n_tok * cols], &mut y, isa);
                for t in 0..n_tok {
                    for r in 0..48 {
                        let want = twin::dot(ty, w.row(r), &acts, t);
                        assert_eq!(
                            y[t * 48 + r].to_bits(),
                            want.to_bits(),
                            "{} {cap:?} n_tok {n_tok} token {t} row {r}: {} vs twin {want}",
                            ty.name(),
                            y[t * 48 + r]
                        );
                    }
                }
            }
        }
    }
}

/// The twin's only roundings are f32 products and sums of exact integers: close to the exact sum
/// of the dequantised weights times the rounded activations.
#[test]
fn the_twin_is_the_exact_product_within_float_rounding() {
    for (ty, cols) in TYPES {
        let data = matrix(ty, cols);
        let w = QMatrix::new(ty, 48, cols, &data).unwrap();
        let x = activations(2 * cols, 0.3);
        let mut acts = QuantActs::default();
        q8::quantize(&x, cols, &mut acts, Isa::scalar());
        let nb = cols / 32;
        for r in 0..48 {
            let mut wr = vec![0f32; cols];
            scalar::dequantize_row(ty, w.row(r), &mut wr);
            for t in 0..2 {
                let got = twin::dot(ty, w.row(r), &acts, t) as f64;
                let exact = q8::dot_dequantized(ty, w.row(r), &acts, t);
                let mag: f64 = (0..cols)
                    .map(|i| (wr[i] as f64 * acts.qs[t * cols + i] as f64 * acts.d[t * nb + i / 32] as f64).abs())
                    .sum();
                assert!(
                    (got - exact).abs() <= 1e-5 * mag + 1e-30,
                    "{} row {r} token {t}: {got} vs {exact} (Σ|wx| {mag})",
                    ty.name()
                );
            }
        }
    }
}

/// Panels back to f32 rows, whole or by column ranges, equal the GGUF rows' dequantisation bit
/// for bit (the prompt path multiplies these), with AVX-512 and on the scalar fallback.
#[test]
fn panels_dequantise_to_the_rows_values() {
    let isa = Isa::detected();
    for (ty, cols) in TYPES {
        let data = matrix(ty, cols);
        let w = QMatrix::new(ty, 48, cols, &data).unwrap();
        let p = PackedMatrix::pack(&w).unwrap();
        let g = p.group();
        let ranges = [(0, cols), (g, cols), (0, g), (cols - g, cols)];
        for cap in [Level::Avx512Vnni, Level::Scalar] {
            for (c0, c1) in ranges {
                let stride = c1 - c0 + 3;
                for panel in 0..3 {
                    let mut out = vec![f32::NAN; 16 * stride];
                    p.dequantize_panel(panel, (c0, c1), &mut out, stride, isa.at_most(cap));
                    for l in 0..LANES {
                        let mut want = vec![0f32; cols];
                        scalar::dequantize_row(ty, w.row(16 * panel + l), &mut want);
                        let got = &out[l * stride..l * stride + c1 - c0];
                        assert!(
                            got.iter().zip(&want[c0..c1]).all(|(a, b)| a.to_bits() == b.to_bits()),
                            "{} {cap:?} panel {panel} row {l} columns {c0}..{c1}",
                            ty.name()
                        );
                    }
                }
            }
        }
    }
}
