//! Every optimised kernel against its scalar twin: dot products per type, and the matmul's decode
//! (row-at-a-time) and prefill (GEMM tile) paths against scalar dot products.

use tandem_kernels::dispatch::{dot_row, Isa, Level};
use tandem_kernels::{matmul, scalar, GgmlType, QMatrix};

mod common;
use common::{activations, random_row};

/// The best level this CPU runs: every SIMD path it has is checked against the scalar twins.
fn best() -> Isa {
    Isa::detected()
}

const TYPES: [(GgmlType, usize); 5] = [
    (GgmlType::Q8_0, 896),
    (GgmlType::Q5_0, 896),
    (GgmlType::Q4K, 1536),
    (GgmlType::Q6K, 1536),
    (GgmlType::Q5K, 512),
];

#[test]
fn dot_products_match_scalar() {
    if !best().simd() {
        eprintln!("no SIMD on this CPU: the dispatch path is the scalar one");
    }
    for (ty, cols) in TYPES {
        for seed in 0..8 {
            let row = random_row(ty, cols, seed);
            let x = activations(cols, seed as f32);
            let want = scalar::dot_row(ty, &row, &x);
            let got = dot_row(ty, &row, &x, best());
            // Error budget: f32 accumulation over `cols` terms, relative to Σ|w·x|.
            let mut w = vec![0f32; cols];
            scalar::dequantize_row(ty, &row, &mut w);
            let mag: f32 = w.iter().zip(&x).map(|(a, b)| (a * b).abs()).sum();
            assert!(
                (got - want).abs() <= 1e-5 * mag + 1e-6,
                "{} seed {seed}: simd {got} vs scalar {want} (Σ|wx| = {mag})",
                ty.name()
            );
        }
    }
}

#[test]
fn matmul_paths_match_scalar() {
    for (ty, cols) in TYPES {
        let rows = 37; // not a multiple of the tile or row block, to cover the edges
        let data: Vec<u8> = (0..rows).flat_map(|r| random_row(ty, cols, 100 + r as u64)).collect();
        let w = QMatrix::new(ty, rows, cols, &data).unwrap();
        for n_tok in [1, 2, 3, 4, 5, 7, 8, 9, 12, 16] {
            let x = activations(n_tok * cols, n_tok as f32);
            let mut y = vec![0f32; n_tok * rows];
            matmul(&w, &x, &mut y, best());
            for t in 0..n_tok {
                for r in 0..rows {
                    let xr = &x[t * cols..(t + 1) * cols];
                    let want = scalar::dot_row(ty, w.row(r), xr);
                    let got = y[t * rows + r];
                    let mut wr = vec![0f32; cols];
                    scalar::dequantize_row(ty, w.row(r), &mut wr);
                    let mag: f32 = wr.iter().zip(xr).map(|(a, b)| (a * b).abs()).sum();
                    assert!(
                        (got - want).abs() <= 1e-5 * mag + 1e-6,
                        "{} n_tok {n_tok} token {t} row {r}: {got} vs {want}",
                        ty.name()
                    );
                }
            }
        }
    }
}

#[test]
fn forced_scalar_isa_gives_the_same_matmul() {
    let (ty, cols, rows) = (GgmlType::Q5_0, 256, 8);
    let data: Vec<u8> = (0..rows).flat_map(|r| random_row(ty, cols, r as u64)).collect();
    let w = QMatrix::new(ty, rows, cols, &data).unwrap();
    let x = activations(4 * cols, 0.5);
    let mut fast = vec![0f32; 4 * rows];
    matmul(&w, &x, &mut fast, best());
    let mut slow = vec![0f32; 4 * rows];
    matmul(&w, &x, &mut slow, Isa::scalar());
    for (a, b) in fast.iter().zip(&slow) {
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
    }
}

/// Batch invariance: a token's outputs are bit-identical whether it is alone (row path) or among
/// others (fused multi-token row paths, AVX2 or AVX-512 pairs, or the tile path), wherever it
/// sits in the batch.
#[test]
fn outputs_do_not_depend_on_the_other_tokens() {
    check_batch_invariance(best());
}

/// The same with the AVX-512 kernels off, so an AVX-512 machine also tests the AVX2 paths (and
/// both give the same bits).
#[test]
fn outputs_do_not_depend_on_the_other_tokens_without_avx512() {
    check_batch_invariance(best().at_most(Level::Avx2));
}

fn check_batch_invariance(isa: Isa) {
    for (ty, cols) in TYPES {
        let rows = 37;
        let data: Vec<u8> = (0..rows).flat_map(|r| random_row(ty, cols, 7 + r as u64)).collect();
        let w = QMatrix::new(ty, rows, cols, &data).unwrap();
        let probe = activations(cols, 0.25);
        let mut alone = vec![0f32; rows];
        matmul(&w, &probe, &mut alone, isa);
        for (n_tok, at) in [
            (2, 0),
            (2, 1),
            (3, 2),
            (4, 1),
            (5, 3),
            (6, 5),
            (8, 6),
            (7, 4),
            (7, 6),
            (9, 8),
            (12, 5),
            (16, 15),
        ] {
            let mut x = activations(n_tok * cols, 9.0);
            x[at * cols..(at + 1) * cols].copy_from_slice(&probe);
            let mut y = vec![0f32; n_tok * rows];
            matmul(&w, &x, &mut y, isa);
            assert_eq!(
                &y[at * rows..(at + 1) * rows],
                &alone[..],
                "{} n_tok {n_tok} at {at}",
                ty.name()
            );
        }
    }
}

/// The SIMD dequantisation gives exactly the scalar reference's values.
#[test]
fn simd_dequantisation_is_bit_exact() {
    for (ty, cols) in TYPES {
        for seed in 0..4 {
            let row = random_row(ty, cols, 50 + seed);
            let mut a = vec![0f32; cols];
            let mut b = vec![0f32; cols];
            scalar::dequantize_row(ty, &row, &mut a);
            tandem_kernels::dispatch::dequantize(ty, &row, &mut b, best());
            assert_eq!(a, b, "{}", ty.name());
        }
    }
}

#[test]
fn vector_softmax_and_axpy_match_their_scalar_twins() {
    use tandem_kernels::ops::{axpy, softmax, softmax_scalar};
    for n in [1usize, 7, 8, 33, 1000] {
        let base: Vec<f32> = (0..n).map(|i| ((i as f32 * 1.37).sin() * 30.0) - 5.0).collect();
        let (mut a, mut b) = (base.clone(), base.clone());
        softmax(&mut a, best());
        softmax_scalar(&mut b);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-6 + 2e-6 * y.abs(), "n {n}: {x} vs {y}");
        }
        assert!((a.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    let x: Vec<f32> = (0..64).map(|i| i as f32 * 0.1).collect();
    let mut y1 = vec![1.0f32; 64];
    let mut y2 = y1.clone();
    axpy(0.5, &x, &mut y1, best());
    for (o, v) in y2.iter_mut().zip(&x) {
        *o += 0.5 * v;
    }
    for (a, b) in y1.iter().zip(&y2) {
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0));
    }
}

#[test]
fn f16_kv_helpers_match_their_scalar_twins() {
    use tandem_kernels::ops::{axpy_f16, dot_f16, to_f16};
    let x: Vec<f32> = (0..64)
        .map(|i| ((i as f32) * 0.77).sin() * 3.0 + if i == 5 { 60000.0 } else { 0.0 })
        .collect();
    let mut h = vec![0u16; 64];
    to_f16(&x, &mut h, best());
    for (a, &b) in x.iter().zip(&h) {
        assert_eq!(half::f16::from_f32(*a).to_bits(), b, "rounding of {a}");
    }
    let q: Vec<f32> = (0..64).map(|i| (i as f32 * 0.1).cos()).collect();
    let want: f32 = q
        .iter()
        .zip(&h)
        .map(|(a, &b)| a * half::f16::from_bits(b).to_f32())
        .sum();
    assert!((dot_f16(&q, &h, best()) - want).abs() <= 1e-3 * want.abs().max(1.0));
    let mut y1 = vec![0.5f32; 64];
    let mut y2 = y1.clone();
    axpy_f16(0.25, &h, &mut y1, best());
    for (o, &b) in y2.iter_mut().zip(&h) {
        *o += 0.25 * half::f16::from_bits(b).to_f32();
    }
    for (a, b) in y1.iter().zip(&y2) {
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
    }
}

/// An f16 cache block converted to the prompt kernels' operands (f32 key panels, bf16 value
/// tiles) gives the scalar twins' bits, whatever rows of the block are filled; rows past them
/// (garbage here: NaN) come out as zeros.
#[test]
fn f16_blocks_to_prompt_operands_match_their_scalar_twins() {
    use tandem_kernels::kv_f16::{to_panels, to_value_tiles, BLOCK};
    for hd in [64, 128] {
        // Finite values of every magnitude f16 holds, subnormals included, both signs.
        let base: Vec<u16> = (0..hd * BLOCK)
            .map(|i| ((i * 7919) % 0x7C00) as u16 | ((i % 3 == 0) as u16) << 15)
            .collect();
        for rows in [0, 1, 15, 16, 17, 31, 32] {
            // Unfilled rows hold NaN: keys are [hd][BLOCK], values [BLOCK][hd].
            let mut keys = base.clone();
            for d in 0..hd {
                keys[d * BLOCK + rows..(d + 1) * BLOCK].fill(0x7E00);
            }
            let (mut got, mut want) = (vec![1f32; 2 * hd * 16], vec![2f32; 2 * hd * 16]);
            to_panels(&keys, hd, rows, &mut got, best());
            to_panels(&keys, hd, rows, &mut want, Isa::scalar());
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "key panels hd {hd} rows {rows}");
            let mut values = base.clone();
            values[rows * hd..].fill(0x7E00);
            let ld = 3 * BLOCK;
            let (mut got, mut want) = (vec![7u32; ld * hd / 2], vec![7u32; ld * hd / 2]);
            to_value_tiles(&values, hd, rows, ld, BLOCK / 2, &mut got, best());
            to_value_tiles(&values, hd, rows, ld, BLOCK / 2, &mut want, Isa::scalar());
            assert_eq!(got, want, "value tiles hd {hd} rows {rows}");
            // Only the block's own pairs were written.
            let written = |c: usize, m: usize| (BLOCK / 2..BLOCK).contains(&m) && c < hd / 16;
            for (i, &x) in got.iter().enumerate() {
                let (c, m) = (i / (ld * 8), i % (ld * 8) / 16);
                assert_eq!(x == 7, !written(c, m), "pair {m} tile {c}");
            }
        }
    }
}

/// The vector swiglu stays within a few ulp of the scalar one, saturating ends included.
#[test]
fn vector_swiglu_matches_its_scalar_twin() {
    use tandem_kernels::ops::{swiglu, swiglu_scalar};
    let gate: Vec<f32> = (0..1003)
        .map(|i| match i % 97 {
            0 => -200.0,
            1 => 200.0,
            2 => 0.0,
            _ => ((i as f32) * 0.37).sin() * 12.0,
        })
        .collect();
    let up: Vec<f32> = (0..1003).map(|i| ((i as f32) * 0.11).cos() * 3.0).collect();
    let (mut a, mut b) = (gate.clone(), gate);
    swiglu(&mut a, &up, best());
    swiglu_scalar(&mut b, &up);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            x.is_finite() && (x - y).abs() <= 1e-5 * y.abs().max(1e-3),
            "{i}: {x} vs {y}"
        );
    }
}

/// The grouped attention kernels (each K/V row converted once for all heads of a GQA group):
/// scores on position-minor key blocks equal their scalar twin on every ISA, for every run of rows
/// (a window's first block, a sequence's last), every group size the dispatch knows and one it
/// does not; sums over values equal the one-head kernel.
#[test]
fn grouped_attention_equals_one_head_at_a_time() {
    // With AVX-512 (where the CPU has it), AVX2 and scalar: every kernel set equals the twins.
    for cap in [Level::Avx512Vnni, Level::Avx2, Level::Scalar] {
        check_grouped_attention(best().at_most(cap));
    }
}

fn check_grouped_attention(isa: Isa) {
    use tandem_kernels::kv_f16::{scores, scores_scalar, write_row, BLOCK};
    use tandem_kernels::ops::{attend_f16, axpy_f16, to_f16};
    for hd in [64, 128] {
        let (n, stride) = (37, 2 * hd + 16); // odd: the AVX-512 scores' last position is alone
        let ld = n + 5; // each head's row of scores longer than n, as a paged cache uses it
        let kv: Vec<f32> = (0..n * stride).map(|i| ((i as f32) * 0.37).sin() * 2.0).collect();
        let mut h = vec![0u16; kv.len()];
        to_f16(&kv, &mut h, isa);
        // One block of keys, [stride][BLOCK]: position r's row is kv's row r.
        let mut block = vec![0u16; stride * BLOCK];
        for r in 0..BLOCK {
            write_row(&kv[r * stride..(r + 1) * stride], r, &mut block, isa);
        }
        assert!((0..BLOCK).all(|r| (0..stride).all(|c| block[c * BLOCK + r] == h[r * stride + c])));
        for g in [1, 2, 3, 6, 7, 8] {
            let q: Vec<f32> = (0..g * hd).map(|i| ((i as f32) * 0.11).cos()).collect();
            let keys = &block[8 * BLOCK..]; // the head at channel 8
            for rows in [0..BLOCK, 0..1, 0..16, 3..29, 16..32, 17..18, 5..16, 20..31] {
                let mut got = vec![f32::NAN; g * ld];
                let mut want = got.clone();
                scores(&q, g, keys, keys, rows.clone(), ld, 0.125, &mut got, isa);
                scores_scalar(&q, g, keys, rows.clone(), ld, 0.125, &mut want);
                assert!(
                    got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "scores g={g} hd={hd} rows={rows:?}"
                );
                assert!(
                    (0..g).all(|j| got[j * ld..(j + 1) * ld][..rows.len()].iter().all(|x| x.is_finite())),
                    "every score of rows {rows:?} written"
                );
            }
            let mut got = vec![f32::NAN; g * ld];
            scores(&q, g, keys, keys, 0..BLOCK, ld, 0.125, &mut got, isa);
            scores(&q, g, keys, keys, 0..n - BLOCK, ld, 0.125, &mut got[BLOCK..], isa);
            let mut out = vec![0.5f32; g * hd];
            let mut want = out.clone();
            attend_f16(&got, g, n, ld, &h[8..], &h, stride, hd, &mut out, isa);
            for p in 0..n {
                for j in 0..g {
                    let row = &h[8 + p * stride..8 + p * stride + hd];
                    axpy_f16(got[j * ld + p], row, &mut want[j * hd..(j + 1) * hd], isa);
                }
            }
            assert!(
                out.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                "attend g={g} hd={hd}"
            );
            let mut in_runs = vec![0.5f32; g * hd];
            attend_f16(&got, g, 32, ld, &h[8..], &h, stride, hd, &mut in_runs, isa);
            attend_f16(
                &got[32..],
                g,
                n - 32,
                ld,
                &h[8 + 32 * stride..],
                &h,
                stride,
                hd,
                &mut in_runs,
                isa,
            );
            assert!(
                in_runs.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                "attend in runs g={g} hd={hd}"
            );
        }
    }
}

/// Adversarial blocks: all-zero, every bit set, extreme and subnormal f16 scales. SIMD
/// dequantisation stays bit-exact with the scalar reference, and the row path equals the exact
/// arithmetic on those values (finite inputs give finite, equal results).
#[test]
fn adversarial_blocks_agree_with_the_scalar_reference() {
    let scales: [f32; 5] = [0.0, 6.0e-8, 1.0e-4, 1.0, 60000.0];
    for (ty, cols) in TYPES {
        let n = ty.bytes_for(cols as u64).unwrap() as usize;
        let bb = ty.block_bytes();
        for fill in [0x00u8, 0xFF, 0x80, 0x7F, 0x55] {
            for &scale in &scales {
                let mut row = vec![fill; n];
                let f = half::f16::from_f32(scale).to_le_bytes();
                for blk in 0..n / bb {
                    let o = blk * bb;
                    match ty {
                        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => row[o..o + 2].copy_from_slice(&f),
                        GgmlType::Q4K | GgmlType::Q5K => {
                            row[o..o + 2].copy_from_slice(&f);
                            row[o + 2..o + 4].copy_from_slice(&f);
                        }
                        GgmlType::Q6K => row[o + 208..o + 210].copy_from_slice(&f),
                        _ => {}
                    }
                }
                let mut a = vec![0f32; cols];
                let mut b = vec![0f32; cols];
                scalar::dequantize_row(ty, &row, &mut a);
                tandem_kernels::dispatch::dequantize(ty, &row, &mut b, best());
                assert_eq!(a, b, "{} fill {fill:#x} scale {scale}", ty.name());
                let x = activations(cols, 1.5);
                let exact = tandem_kernels::dispatch::dot_exact(&a, &x, best());
                let fused = dot_row(ty, &row, &x, best());
                assert_eq!(
                    exact.to_bits(),
                    fused.to_bits(),
                    "{} fill {fill:#x} scale {scale}: {exact} vs {fused}",
                    ty.name()
                );
            }
        }
    }
}
