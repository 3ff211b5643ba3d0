//! Dense int8 matmul for models whose weights arrive as floats (Whisper): each weight row rounded
//! to int8 with one scale, each token's activations likewise, integer dot products over the whole
//! row (`vpdpbusd`), one float rescale at the end — CTranslate2's int8 arithmetic, and the classic
//! VNNI GEMM layout, so a many-token matmul runs at the int8 units' rate instead of rescaling per
//! 32-block as the decode kernels (`q8`) must for GGUF's block formats.
//!
//! The contract the scalar twin and the AVX-512 VNNI kernel both follow, bit for bit:
//! - weight row r: `s_r = amax / 127`, `q = round(w / s_r)` (ties away), `Σq` kept;
//! - token t: `d_t = amax / 127`, `a = round_ties_even(x · 127 / amax)` clamped to ±127 (0 when
//!   amax = 0), held as `a + 128` (unsigned: the operand order `vpdpbusd` wants);
//! - `y[t][r] = ((Σ_k (a+128)·q − 128·Σq) as f32) · (d_t · s_r)`, the sum exact in i32.
//!
//! So an output depends only on its token and its row: results are batch invariant.
//!
//! Shapes: weights packed [rows_pad / 16][cols / 4][16 rows][4 cols] (rows padded to 32 with zero
//! rows); activations [n_tok, cols] → [n_tok, cols] u8 + [n_tok] scales; y: [n_tok, rows].

use std::cell::RefCell;

use rayon::prelude::*;

use crate::dispatch::Isa;
use crate::matmul::OutPtr;

/// Tokens per task: their activations (≤ 96 × 1,536 bytes) stay in L2 while every row panel of
/// the task passes over them.
const TOKEN_CHUNK: usize = 96;

/// A weight matrix in the int8 GEMM's layout.
pub struct I8Matrix {
    pub rows: usize,
    pub cols: usize,
    /// [rows_pad / 16][cols / 4][16][4].
    packed: Vec<i8>,
    /// Per padded row: the scale and Σq.
    scale: Vec<f32>,
    wsum: Vec<i32>,
}

impl I8Matrix {
    /// w: [rows, cols] f32 row-major; `cols` a multiple of 4.
    pub fn quantize(w: &[f32], rows: usize, cols: usize) -> Self {
        assert!(cols.is_multiple_of(4), "int8 GEMM needs columns in groups of 4");
        assert_eq!(w.len(), rows * cols, "w is not [rows, cols]");
        let rows_pad = rows.div_ceil(32) * 32;
        let mut packed = vec![0i8; rows_pad * cols];
        let (mut scale, mut wsum) = (vec![0f32; rows_pad], vec![0i32; rows_pad]);
        for (r, row) in w.chunks_exact(cols).enumerate() {
            let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            scale[r] = amax / 127.0;
            let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
            let (panel, lane) = (r / 16, r % 16);
            for (c, v) in row.iter().enumerate() {
                let q = (v * inv).round().clamp(-127.0, 127.0) as i8;
                packed[((panel * (cols / 4) + c / 4) * 16 + lane) * 4 + c % 4] = q;
                wsum[r] += q as i32;
            }
        }
        Self {
            rows,
            cols,
            packed,
            scale,
            wsum,
        }
    }

    /// Bytes of one 16-row panel.
    fn panel_len(&self) -> usize {
        16 * self.cols
    }

    fn rows_pad(&self) -> usize {
        self.scale.len()
    }
}

/// Quantised activations: [n, cols] u8 (`a + 128`) and [n] scales.
#[derive(Default)]
pub struct I8Acts {
    pub qu: Vec<u8>,
    pub d: Vec<f32>,
}

/// Rounds each token of `x` ([n, cols]) as the contract says.
pub fn quantize_acts(x: &[f32], cols: usize, out: &mut I8Acts, isa: Isa) {
    let n = x.len() / cols;
    out.qu.resize(n * cols, 0);
    out.d.resize(n, 0.0);
    let simd = fast(isa);
    let rows = out
        .qu
        .par_chunks_mut(cols)
        .zip(out.d.par_iter_mut())
        .zip(x.par_chunks(cols));
    rows.with_min_len(16).for_each(|((q, d), x)| {
        #[cfg(target_arch = "x86_64")]
        if simd {
            // SAFETY: `fast()` checked AVX-512 BW; equal lengths.
            *d = unsafe { crate::x86::gemm_i8::quantize_row(x, q) };
            return;
        }
        let _ = simd;
        *d = quantize_row_scalar(x, q);
    });
}

/// The scalar rounding of one token (the twin of the AVX-512 one).
fn quantize_row_scalar(x: &[f32], q: &mut [u8]) -> f32 {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let id = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    for (q, v) in q.iter_mut().zip(x) {
        *q = ((v * id).round_ties_even().clamp(-127.0, 127.0) as i32 + 128) as u8;
    }
    amax / 127.0
}

thread_local! {
    static ACTS: RefCell<I8Acts> = RefCell::new(I8Acts::default());
}

/// Whether the VNNI kernel runs (else the scalar twin: correct, slow).
pub fn fast(isa: Isa) -> bool {
    isa.avx512_int8()
}

/// `y[t][r] = Σ_c x[t][c] · W[r][c]` under the contract above. x: [n_tok, cols], y: [n_tok, rows].
pub fn matmul_i8(w: &I8Matrix, x: &[f32], y: &mut [f32], isa: Isa) {
    let n = x.len() / w.cols;
    assert_eq!(x.len(), n * w.cols, "x is not a whole number of rows");
    assert_eq!(y.len(), n * w.rows, "y has the wrong size");
    let simd = fast(isa);
    let out = OutPtr(y.as_mut_ptr());
    ACTS.with(|acts| {
        let mut acts = acts.borrow_mut();
        quantize_acts(x, w.cols, &mut acts, isa);
        let acts = &*acts;
        let pairs = w.rows_pad() / 32;
        let token_chunks = n.div_ceil(TOKEN_CHUNK);
        // Few tokens (decoding): split the rows finely so every thread has work.
        let threads = rayon::current_num_threads().max(1);
        let per_task = (pairs * token_chunks / (4 * threads)).clamp(1, pairs);
        let row_chunks = pairs.div_ceil(per_task);
        (0..token_chunks * row_chunks).into_par_iter().for_each(|task| {
            let (tc, rc) = (task / row_chunks, task % row_chunks);
            let tokens = tc * TOKEN_CHUNK..((tc + 1) * TOKEN_CHUNK).min(n);
            for pair in rc * per_task..((rc + 1) * per_task).min(pairs) {
                let mut t = tokens.start;
                while t < tokens.end {
                    let m = (tokens.end - t).min(8);
                    run(w, acts, pair, t, m, simd, &out);
                    t += m;
                }
            }
        });
    });
}

/// Tokens `t..t + m` (m ≤ 8) × the 32 rows of panel pair `pair`.
fn run(w: &I8Matrix, acts: &I8Acts, pair: usize, t: usize, m: usize, simd: bool, out: &OutPtr) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `fast()` checked AVX-512 BW + VNNI; the panels and tokens are in range; each
        // task writes only its own (token, row) outputs.
        unsafe {
            match m {
                8 => crate::x86::gemm_i8::tile::<8>(w, acts, pair, t, out),
                7 => crate::x86::gemm_i8::tile::<7>(w, acts, pair, t, out),
                6 => crate::x86::gemm_i8::tile::<6>(w, acts, pair, t, out),
                5 => crate::x86::gemm_i8::tile::<5>(w, acts, pair, t, out),
                4 => crate::x86::gemm_i8::tile::<4>(w, acts, pair, t, out),
                3 => crate::x86::gemm_i8::tile::<3>(w, acts, pair, t, out),
                2 => crate::x86::gemm_i8::tile::<2>(w, acts, pair, t, out),
                _ => crate::x86::gemm_i8::tile::<1>(w, acts, pair, t, out),
            }
        }
        return;
    }
    let _ = simd;
    tile_scalar(w, acts, pair, t..t + m, out);
}

/// The scalar twin: the same integers and the same two float multiplies per output.
fn tile_scalar(w: &I8Matrix, acts: &I8Acts, pair: usize, tokens: std::ops::Range<usize>, out: &OutPtr) {
    let k4 = w.cols / 4;
    for t in tokens {
        let a = &acts.qu[t * w.cols..(t + 1) * w.cols];
        for r in 32 * pair..(32 * pair + 32).min(w.rows) {
            let panel = &w.packed[(r / 16) * w.panel_len()..][..w.panel_len()];
            let mut acc = 0i32;
            for k in 0..k4 {
                for j in 0..4 {
                    acc += a[4 * k + j] as i32 * panel[(k * 16 + r % 16) * 4 + j] as i32;
                }
            }
            let v = (acc - 128 * w.wsum[r]) as f32 * (acts.d[t] * w.scale[r]);
            // SAFETY: (t, r) is inside y and owned by this task.
            unsafe { *out.at(t * w.rows + r) = v };
        }
    }
}

/// What the x86 kernel reads of a matrix.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Panels<'a> {
    /// The pair's two panels, [2][cols / 4][16][4].
    pub packed: &'a [i8],
    pub scale: &'a [f32],
    pub wsum: &'a [i32],
    pub rows: usize,
    pub cols: usize,
}

#[cfg(target_arch = "x86_64")]
impl I8Matrix {
    pub(crate) fn pair(&self, pair: usize) -> Panels<'_> {
        Panels {
            packed: &self.packed[2 * pair * self.panel_len()..][..2 * self.panel_len()],
            scale: &self.scale[32 * pair..32 * pair + 32],
            wsum: &self.wsum[32 * pair..32 * pair + 32],
            rows: self.rows,
            cols: self.cols,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn simd_equals_scalar_twin_and_tracks_f32() {
        // Rows not a multiple of 32 and token counts around the 8-token tile and the task chunk.
        for &(rows, cols, n) in &[(40, 64, 1), (96, 128, 13), (33, 388, 100), (64, 32, 8)] {
            let w = data(rows * cols, 1);
            let mut x = data(n * cols, 2);
            x[..cols].fill(0.0); // a silent token: amax 0
            let m = I8Matrix::quantize(&w, rows, cols);
            let mut fast_y = vec![0f32; n * rows];
            matmul_i8(&m, &x, &mut fast_y, Isa::detected());
            let mut acts = I8Acts::default();
            quantize_acts(&x, cols, &mut acts, Isa::detected());
            let mut q = vec![0u8; cols];
            for (t, xt) in x.chunks(cols).enumerate() {
                assert_eq!(quantize_row_scalar(xt, &mut q), acts.d[t]);
                assert_eq!(q, acts.qu[t * cols..(t + 1) * cols]);
            }
            let mut slow = vec![0f32; n * rows];
            let out = OutPtr(slow.as_mut_ptr());
            for p in 0..m.rows_pad() / 32 {
                tile_scalar(&m, &acts, p, 0..n, &out);
            }
            assert_eq!(fast_y, slow, "rows {rows} cols {cols} tokens {n}");
            for t in 0..n {
                for r in 0..rows {
                    let exact: f32 = (0..cols).map(|c| x[t * cols + c] * w[r * cols + c]).sum();
                    let tol = 0.02 * (cols as f32).sqrt() * 0.5;
                    assert!(
                        (fast_y[t * rows + r] - exact).abs() < tol,
                        "{} vs {exact}",
                        fast_y[t * rows + r]
                    );
                }
            }
        }
    }
}
