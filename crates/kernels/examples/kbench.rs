//! Quick kernel throughput probe: `cargo run --release -p tandem-kernels --example kbench`.
use std::time::Instant;
use tandem_kernels::{dispatch::dot_row, GgmlType};

fn main() {
    for (ty, cols) in [
        (GgmlType::Q5_0, 896usize),
        (GgmlType::Q8_0, 896),
        (GgmlType::Q4K, 1536),
        (GgmlType::Q6K, 1536),
    ] {
        let rb = ty.bytes_for(cols as u64).unwrap() as usize;
        for total in [64usize << 10, 256 << 20] {
            let rows = total / rb;
            let mut data = vec![0u8; rows * rb];
            for (i, b) in data.iter_mut().enumerate() {
                *b = (i * 7 % 251) as u8 & 0x3f;
            }
            let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.01).sin()).collect();
            let reps = (512 << 20) / total;
            let t = Instant::now();
            let mut s = 0f32;
            for _ in 0..reps {
                for r in 0..rows {
                    s += dot_row(ty, &data[r * rb..(r + 1) * rb], &x);
                }
            }
            let dt = t.elapsed().as_secs_f64();
            let weights = (reps * rows * cols) as f64;
            println!(
                "{:?} {:>9} B: {:.2} GB/s, {:.2} Gweights/s ({s:.1})",
                ty,
                total,
                (reps * rows * rb) as f64 / dt / 1e9,
                weights / dt / 1e9
            );
        }
    }
}
