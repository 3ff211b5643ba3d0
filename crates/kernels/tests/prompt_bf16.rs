//! The prompt path's bf16 kernels (AMX tiles, AVX-512 BF16 dot products) against their scalar
//! twin: every output equals the f64 sum of bf16-rounded weights × bf16-rounded activations within
//! f32 summation error, and a token's outputs are bit-identical whatever else shares the call
//! (token count, tail tiles, K-blocking). A kernel the CPU or OS lacks is skipped, saying so.

use tandem_kernels::prompt::{matmul_prompt, uses_matrix_unit};
use tandem_kernels::scalar::{bf16, bf16_to_f32};
use tandem_kernels::{DecodeKernel, KernelChoice, PromptKernel};
use tandem_kernels::{GgmlType, QMatrix};

mod common;
use common::{activations, random_row};

const TYPES: [(GgmlType, usize); 4] = [
    (GgmlType::Q8_0, 896),
    (GgmlType::Q5_0, 896),
    (GgmlType::Q4K, 1536),
    (GgmlType::Q6K, 512),
];

const ROWS: usize = 96;

fn matrix(ty: GgmlType, cols: usize) -> Vec<u8> {
    (0..ROWS).flat_map(|r| random_row(ty, cols, 1000 + r as u64)).collect()
}

/// The scalar twin: Σ bf16(w)·bf16(x) in f64, and Σ |w·x| (the error budget's scale).
fn reference(w: &QMatrix, r: usize, x: &[f32]) -> (f64, f64) {
    let mut wr = vec![0f32; w.cols];
    w.dequantize_row(r, &mut wr);
    let (mut sum, mut mag) = (0f64, 0f64);
    for (&a, &b) in wr.iter().zip(x) {
        let p = bf16_to_f32(bf16(a)) as f64 * bf16_to_f32(bf16(b)) as f64;
        sum += p;
        mag += p.abs();
    }
    (sum, mag)
}

fn run(w: &QMatrix, x: &[f32], kernel: KernelChoice) -> Vec<f32> {
    let mut y = vec![f32::NAN; x.len() / w.cols * w.rows];
    matmul_prompt(w, x, &mut y, kernel);
    y
}

#[test]
fn bf16_prompt_kernels_match_the_scalar_twin_and_are_batch_invariant() {
    for kernel in [PromptKernel::Amx, PromptKernel::Bf16Dot] {
        let choice = KernelChoice::new(Some(kernel), DecodeKernel::Int8);
        if choice.prompt() != kernel {
            eprintln!("{kernel:?}: not on this CPU/OS, skipped");
            continue;
        }
        check(choice);
    }
}

fn check(kernel: KernelChoice) {
    for (ty, cols) in TYPES {
        let data = matrix(ty, cols);
        let w = QMatrix::new(ty, ROWS, cols, &data).unwrap();
        assert!(uses_matrix_unit(&w, kernel), "{ty:?}");
        // 600 tokens make K-blocks (1 MiB of packed activations holds < 896 columns of 608 tokens).
        let n_max = 600;
        let x = activations(n_max * cols, 0.3);
        let full = run(&w, &x, kernel);
        for t in [0, 1, 15, 16, 31, 32, 599] {
            for r in [0, 1, 17, 31, 32, 95] {
                let got = full[t * ROWS + r] as f64;
                let (want, mag) = reference(&w, r, &x[t * cols..(t + 1) * cols]);
                assert!(
                    (got - want).abs() <= 1e-5 * mag + 1e-6,
                    "{kernel:?} {ty:?} token {t} row {r}: {got} vs {want} (Σ|wx| {mag})"
                );
            }
        }
        for n in [1, 2, 17, 33, 40, 64, 70] {
            let part = run(&w, &x[..n * cols], kernel);
            assert!(
                part.iter().zip(&full).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{kernel:?} {ty:?}: {n} tokens differ from the same tokens among {n_max}"
            );
        }
    }
}
