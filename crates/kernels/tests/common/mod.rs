//! Helpers shared by the kernel tests: deterministic random quantised rows and activations.
// Each test binary uses a subset of these helpers.
#![allow(dead_code)]

use tandem_kernels::GgmlType;

/// Deterministic pseudo-random bytes with sane f16 scales in each block.
pub fn random_row(ty: GgmlType, cols: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let n = ty.bytes_for(cols as u64).unwrap() as usize;
    let mut b: Vec<u8> = (0..n).map(|_| next() as u8).collect();
    let scale = |v: f32| half::f16::from_f32(v).to_le_bytes();
    let bb = ty.block_bytes();
    for blk in 0..n / bb {
        let o = blk * bb;
        let r = (next() % 1000) as f32 / 1000.0;
        match ty {
            GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => b[o..o + 2].copy_from_slice(&scale(0.01 + 0.02 * r)),
            GgmlType::Q4K | GgmlType::Q5K => {
                b[o..o + 2].copy_from_slice(&scale(0.01 + 0.02 * r));
                b[o + 2..o + 4].copy_from_slice(&scale(0.005 * r));
            }
            GgmlType::Q6K => b[o + 208..o + 210].copy_from_slice(&scale(0.002 + 0.004 * r)),
            GgmlType::F32 => {}
            _ => unreachable!(),
        }
    }
    if ty == GgmlType::F32 {
        b = (0..cols)
            .flat_map(|i| ((i as f32 * 0.37).sin()).to_le_bytes())
            .collect();
    }
    b
}

pub fn activations(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.731 + seed).sin() * 2.0).collect()
}
