//! Kernel throughput probe: `cargo run --release -p tandem-kernels --example kbench`.
//! Times the generated tokens' matmuls (`matmul_decode`: int8; `matmul_packed`: int8 on packed panels; `matmul`: exact f32) on the
//! tiers' weight types for a few token counts, on a matrix that stays in L2 (compute bound) and on
//! 256 MiB of matrices read in turn (memory bound): per token, and as weight bytes per second.
use std::time::Instant;

use tandem_kernels::packed::{matmul_packed, PackedMatrix};
use tandem_kernels::{matmul_decode, GgmlType, QMatrix};
use tandem_kernels::{DecodeKernel, KernelChoice};

/// Arguments filter the runs: a type name (Q5_0…), `int8`/`exact`, a token count.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let wanted =
        |v: &str| args.is_empty() || args.iter().any(|a| a == v) || !args.iter().any(|a| kind_of(a) == kind_of(v));
    for (ty, cols) in [
        (GgmlType::Q5_0, 896usize),
        (GgmlType::Q8_0, 896),
        (GgmlType::Q4K, 1536),
        (GgmlType::Q6K, 1536),
    ] {
        if !wanted(&format!("{ty:?}")) {
            continue;
        }
        let rb = ty.bytes_for(cols as u64).unwrap() as usize;
        let bb = ty.block_bytes();
        let scale_at = if ty == GgmlType::Q6K { 208 } else { 0 };
        let make = |rows: usize| {
            let mut data: Vec<u8> = (0..rows * rb).map(|i| (i * 7 % 251) as u8).collect();
            for blk in 0..data.len() / bb {
                let o = blk * bb + scale_at;
                data[o..o + 2].copy_from_slice(&half::f16::from_f32(0.01).to_le_bytes());
            }
            data
        };
        let small_rows = (1536 << 10) / rb;
        let big_rows = (32 << 20) / rb;
        let small = make(small_rows);
        let bigs: Vec<Vec<u8>> = (0..8).map(|_| make(big_rows)).collect();
        for kernel in ["int8", "packed", "exact"] {
            if !wanted(kernel) {
                continue;
            }
            let choice = KernelChoice::new(
                None,
                if kernel == "exact" {
                    DecodeKernel::Exact
                } else {
                    DecodeKernel::Int8
                },
            );
            for n_tok in [1usize, 4, 8] {
                if !wanted(&n_tok.to_string()) {
                    continue;
                }
                let x: Vec<f32> = (0..n_tok * cols).map(|i| (i as f32 * 0.01).sin()).collect();
                let mut report = String::new();
                for (name, mats, rows) in [
                    ("L2", vec![&small], small_rows / 16 * 16),
                    ("memory", bigs.iter().collect(), big_rows / 16 * 16),
                ] {
                    let ws: Vec<QMatrix> = mats
                        .iter()
                        .map(|d| QMatrix::new(ty, rows, cols, &d[..rows * rb]).unwrap())
                        .collect();
                    let packed: Vec<PackedMatrix> = match kernel {
                        "packed" => ws.iter().map(|w| PackedMatrix::pack(w).unwrap()).collect(),
                        _ => Vec::new(),
                    };
                    let mut y = vec![0f32; n_tok * rows];
                    let run = |i: usize, y: &mut [f32]| match kernel {
                        "packed" => matmul_packed(&packed[i], &x, y, choice.isa()),
                        _ => matmul_decode(&ws[i], &x, y, choice),
                    };
                    run(0, &mut y);
                    let reps = if name == "L2" { 200 } else { 4 };
                    let t = Instant::now();
                    for _ in 0..reps {
                        for i in 0..ws.len() {
                            run(i, &mut y);
                        }
                    }
                    let secs = t.elapsed().as_secs_f64();
                    let bytes = (reps * ws.len() * rows * rb) as f64;
                    report += &format!("  {name}: {:6.2} GB/s", bytes / secs / 1e9);
                }
                println!("{ty:?} {kernel} cols {cols} n_tok {n_tok}:{report}");
            }
        }
    }
}

/// Which filter an argument belongs to: 0 type, 1 kernel, 2 token count.
fn kind_of(a: &str) -> u8 {
    if a.parse::<usize>().is_ok() {
        2
    } else if a == "int8" || a == "packed" || a == "exact" {
        1
    } else {
        0
    }
}
