//! Kernel throughput probe: `cargo run --release -p tandem-kernels --example kbench`.
//! Times `matmul` on a mini-sized FFN matrix (Q5_0 4864×896) and a flagship-sized one (Q4_K
//! 8960×1536) for a few token counts: the cost of batched decode per token.
use std::time::Instant;

use tandem_kernels::{matmul, GgmlType, QMatrix};

fn main() {
    for (ty, rows, cols) in [(GgmlType::Q5_0, 4864usize, 896usize), (GgmlType::Q4K, 8960, 1536)] {
        let rb = ty.bytes_for(cols as u64).unwrap() as usize;
        let mut data = vec![0u8; rows * rb];
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        // sane f16 scales at each block start
        let bb = ty.block_bytes();
        for blk in 0..data.len() / bb {
            data[blk * bb..blk * bb + 2].copy_from_slice(&half::f16::from_f32(0.01).to_le_bytes());
        }
        let w = QMatrix::new(ty, rows, cols, &data).unwrap();
        for n_tok in [1usize, 2, 3, 4, 8, 16] {
            let x: Vec<f32> = (0..n_tok * cols).map(|i| (i as f32 * 0.01).sin()).collect();
            let mut y = vec![0f32; n_tok * rows];
            matmul(&w, &x, &mut y);
            let reps = 40;
            let t = Instant::now();
            for _ in 0..reps {
                matmul(&w, &x, &mut y);
            }
            let per_call = t.elapsed().as_secs_f64() / reps as f64;
            println!(
                "{:?} {rows}x{cols} n_tok {n_tok:>2}: {:7.3} ms per call, {:6.3} ms per token",
                ty,
                per_call * 1e3,
                per_call * 1e3 / n_tok as f64
            );
        }
    }
}
