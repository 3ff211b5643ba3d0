//! Run-time choice of kernels. Chosen once from the CPU's features (never from compile-time
//! `target-cpu`, so one binary runs on any x86_64), overridable for tests and benchmarks.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::blocks::as_blocks;
use crate::{scalar, GgmlType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Scalar,
    /// x86_64 with AVX2, FMA and F16C.
    Avx2,
}

/// 0 = not yet detected, 1 = scalar, 2 = AVX2.
static CHOSEN: AtomicU8 = AtomicU8::new(0);

fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
    {
        return Isa::Avx2;
    }
    Isa::Scalar
}

/// The instruction set the kernels use.
pub fn isa() -> Isa {
    match CHOSEN.load(Ordering::Relaxed) {
        1 => Isa::Scalar,
        2 => Isa::Avx2,
        _ => {
            let isa = detect();
            CHOSEN.store(if isa == Isa::Avx2 { 2 } else { 1 }, Ordering::Relaxed);
            isa
        }
    }
}

/// Forces `isa` (e.g. scalar, to compare paths). Asking for an ISA the CPU lacks gives the best it has.
pub fn force_isa(isa: Isa) {
    let isa = if isa == Isa::Avx2 { detect() } else { isa };
    CHOSEN.store(if isa == Isa::Avx2 { 2 } else { 1 }, Ordering::Relaxed);
}

/// A one-line description of the CPU features that matter here, for logs and bench reports.
pub fn cpu_features() -> String {
    let mut f = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        for (name, on) in [
            ("avx2", is_x86_feature_detected!("avx2")),
            ("fma", is_x86_feature_detected!("fma")),
            ("f16c", is_x86_feature_detected!("f16c")),
            ("avx512f", is_x86_feature_detected!("avx512f")),
            ("avx512bw", is_x86_feature_detected!("avx512bw")),
            ("avx512vnni", is_x86_feature_detected!("avx512vnni")),
        ] {
            if on {
                f.push(name);
            }
        }
    }
    format!("isa={:?} features=[{}]", isa(), f.join(","))
}

/// Dot product of one quantised row with f32 activations, on the chosen ISA.
pub fn dot_row(ty: GgmlType, row: &[u8], x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if isa() == Isa::Avx2 {
        // SAFETY: AVX2, FMA and F16C were detected; the lengths are asserted by the callers
        // (QMatrix checks rows against cols) and re-checked by debug assertions inside.
        unsafe {
            use crate::x86;
            match ty {
                GgmlType::Q8_0 => return x86::dot_q8_0(as_blocks(row), x),
                GgmlType::Q5_0 => return x86::dot_q5_0(as_blocks(row), x),
                GgmlType::Q4K => return x86::dot_q4k(as_blocks(row), x),
                GgmlType::Q6K => return x86::dot_q6k(as_blocks(row), x),
                _ => {}
            }
        }
    }
    dot_row_generic(ty, row, x)
}

/// Dequantise in 256-element pieces on the stack, then dot. Used for types without a
/// dedicated kernel; sums in f32 like the SIMD paths.
fn dot_row_generic(ty: GgmlType, row: &[u8], x: &[f32]) -> f32 {
    const PIECE: usize = 256;
    let bl = ty.block_len();
    let piece = if PIECE.is_multiple_of(bl) { PIECE } else { bl };
    let bytes_per_piece = piece / bl * ty.block_bytes();
    let mut buf = [0f32; PIECE];
    let mut sum = 0f32;
    for (xs, ws) in x.chunks(piece).zip(row.chunks(bytes_per_piece)) {
        let w = &mut buf[..xs.len()];
        scalar::dequantize_row(ty, ws, w);
        sum += dot_f32(w, xs);
    }
    sum
}

/// f32 dot product on the chosen ISA.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if isa() == Isa::Avx2 && a.len().is_multiple_of(8) {
        // SAFETY: features detected; equal lengths, multiple of 8.
        return unsafe { crate::x86::dot_f32(a, b) };
    }
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}
