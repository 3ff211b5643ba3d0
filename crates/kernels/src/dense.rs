//! A dense layer whose weights arrive as floats (Whisper's, the image classifier's), held the way
//! the chosen kernels take them: f32 rows for the exact matmul, or int8 rows for the int8 GEMM.

use crate::gemm_i8::{matmul_i8, I8Matrix};
use crate::{matmul, GgmlType, Isa, QMatrix};

/// How a model's weight matrices are held and multiplied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// f32 weights on the exact f32 kernels.
    Exact,
    /// int8 rows (per-row scales) on the int8 GEMM, activations rounded per token: a quarter of
    /// the bytes, CTranslate2 int8's arithmetic.
    Int8,
}

impl Precision {
    /// Int8 where the CPU has the VNNI kernel, else exact (the int8 GEMM's scalar twin is slow).
    pub fn fastest() -> Self {
        if crate::gemm_i8::fast(Isa::detected()) {
            Self::Int8
        } else {
            Self::Exact
        }
    }
}

enum Weights {
    /// [rows, cols] f32 as little-endian bytes (a `QMatrix` of type F32).
    F32(Vec<u8>),
    Int8(I8Matrix),
}

/// y = x·Wᵀ + b over [n, cols] inputs.
pub struct Dense {
    w: Weights,
    pub rows: usize,
    pub cols: usize,
    pub b: Vec<f32>,
    /// The SIMD level its matmuls run at: the CPU's best.
    isa: Isa,
}

impl Dense {
    /// w: [rows, cols] row-major; b: [rows]. Int8 needs `cols` a multiple of 4 (else exact).
    pub fn new(w: &[f32], (rows, cols): (usize, usize), b: Vec<f32>, p: Precision) -> Self {
        assert_eq!((w.len(), b.len()), (rows * cols, rows), "dense layer sizes");
        let w = if p == Precision::Int8 && cols.is_multiple_of(4) {
            Weights::Int8(I8Matrix::quantize(w, rows, cols))
        } else {
            Weights::F32(w.iter().flat_map(|x| x.to_le_bytes()).collect())
        };
        Self {
            w,
            rows,
            cols,
            b,
            isa: Isa::detected(),
        }
    }

    /// x: [n, cols] → [n, rows].
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        let mut y = vec![0f32; x.len() / self.cols * self.rows];
        match &self.w {
            Weights::F32(w) => {
                let q = QMatrix::new(GgmlType::F32, self.rows, self.cols, w).expect("sizes checked at load");
                matmul(&q, x, &mut y, self.isa);
            }
            Weights::Int8(w) => matmul_i8(w, x, &mut y, self.isa),
        }
        for row in y.chunks_exact_mut(self.rows) {
            row.iter_mut().zip(&self.b).for_each(|(a, b)| *a += b);
        }
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both precisions against a direct f64 product, at the shapes image and speech models use
    /// (few and many tokens; columns not a multiple of the tiles).
    #[test]
    fn dense_equals_the_definition() {
        for (n, rows, cols) in [
            (1, 1000, 1280),
            (3, 24, 16),
            (12544, 16, 32),
            (49, 1280, 320),
            (100, 32, 27),
        ] {
            let w: Vec<f32> = (0..rows * cols)
                .map(|i| ((i * 7919 % 1013) as f32 - 506.0) / 2000.0)
                .collect();
            let x: Vec<f32> = (0..n * cols)
                .map(|i| ((i * 104_729 % 997) as f32 - 498.0) / 300.0)
                .collect();
            let b: Vec<f32> = (0..rows).map(|r| r as f32 / 100.0).collect();
            for (p, tol) in [(Precision::Exact, 1e-4), (Precision::Int8, 0.05)] {
                let y = Dense::new(&w, (rows, cols), b.clone(), p).apply(&x);
                for t in 0..n {
                    for r in 0..rows {
                        let want: f64 = b[r] as f64
                            + (0..cols)
                                .map(|c| w[r * cols + c] as f64 * x[t * cols + c] as f64)
                                .sum::<f64>();
                        let got = y[t * rows + r] as f64;
                        assert!(
                            (got - want).abs() <= tol * (1.0 + want.abs()),
                            "{p:?} {n}x{rows}x{cols} [{t},{r}]: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
