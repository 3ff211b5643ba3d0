//! Prompt tokens through the CPU's bf16 units: AMX tiles (Intel Xeon since Sapphire Rapids), or
//! AVX-512 BF16 dot products (AMD Zen 4+; opt-in, see `dispatch::KernelChoice`); or the generated
//! tokens' int8 kernels (`PromptKernel::Int8`: CPUs with VNNI but no AMX); else the exact f32
//! `matmul`.
//!
//! A prompt is processed many tokens at a time, so its matmuls are compute-bound, and the f32 FMA
//! tile of `matmul` is at the FMA units' limit. AMX does ~16× the multiply-adds per cycle on bf16,
//! `vdpbf16ps` 2×. Arithmetic here: the weights' exact f32 dequantisation and the activations are
//! rounded to bf16 (round to nearest even) and `tdpbf16ps` (or `vdpbf16ps`) sums their products in
//! f32, in k-steps of 32 (pairs) from element 0. A (row, token) output depends only on that row
//! and that token — not on how many tokens share the call, nor on the K-blocking (the f32 partial sums are stored and reloaded
//! exactly) — so prompt results are batch invariant too, just not equal to `matmul`'s: a token
//! must always take the same one of the two, which is why the model routes by kind (prompt or
//! generated), never by batch size. (AMX and `vdpbf16ps` round their pair sums differently, so
//! results differ between machines with and without AMX, never within one.)
//!
//! Shapes: x: [n_tok, k] f32 → packed to bf16 tiles [n_pad / 16][k / 32][16 tokens][32] (n_pad =
//! n_tok rounded up to 32, zero rows); each task dequantises 32 weight rows × one K-block into a
//! panel in the B layout ([2 tiles][steps][16 k-pairs][16 rows][2]) and runs 2×2 tiles (32 tokens
//! × 32 rows) over it, `L1_STEPS` k-steps at a time so the panel's part stays in L1 while every
//! token tile passes over it.

use std::cell::RefCell;

use rayon::prelude::*;

use crate::dispatch::{dequantize, Isa, KernelChoice, PromptKernel};
use crate::matmul::{matmul, OutPtr as Out, QMatrix};
use crate::scalar::bf16;

/// Bytes of packed activations one K-block may take, so they stay in L2 while every row block of
/// a task runs over them.
const A_BLOCK_BYTES: usize = 1 << 20;

/// Columns dequantised to f32 at a time before conversion to bf16 (32 rows × 1 KiB: L1).
const STAGE: usize = 256;

/// K-steps (of 32) run over all token tiles before the next: the panel's 2 × 8 KiB of them stay
/// in L1 (measured on the flagship's pp512, Xeon with AMX: see the commit).
const L1_STEPS: usize = 8;

thread_local! {
    /// Packed activations (on the calling thread, read by the workers): [n_pad / 16][k / 32][16][32] bf16.
    static PACKED: RefCell<Vec<u16>> = const { RefCell::new(Vec::new()) };
    /// A task's weight panel ([2][steps][16][16][2] bf16), f32 rows before conversion
    /// ([32][k-block]), and a row block's outputs ([n_pad][32] f32).
    static PANEL: RefCell<(Vec<u16>, Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// Whether `matmul_prompt` with `kernel` runs `w` on a bf16 kernel (else it is `matmul`).
pub fn uses_matrix_unit(w: &QMatrix, k: KernelChoice) -> bool {
    fits(w, k)
}

/// Whether `k`'s prompt kernel is a bf16 one (a `KernelChoice` only holds one its ISA runs) and
/// `w`'s shape suits the panels.
fn fits(w: &QMatrix, k: KernelChoice) -> bool {
    matches!(k.prompt(), PromptKernel::Amx | PromptKernel::Bf16Dot)
        && w.rows.is_multiple_of(32)
        && w.cols.is_multiple_of(32)
        && w.cols.is_multiple_of(w.ty.block_len())
        && w.ty.block_len() <= 256
}

/// `y[t][r] = Σ_c x[t][c] · W[r][c]` for prompt tokens (x: [n_tok, cols], y: [n_tok, rows]), on
/// the matrix unit where `k` says (see the module's
/// notes for its arithmetic).
pub fn matmul_prompt(w: &QMatrix, x: &[f32], y: &mut [f32], k: KernelChoice) {
    if k.prompt() == PromptKernel::Int8 {
        return crate::decode::matmul_decode(w, x, y, k);
    }
    if !fits(w, k) {
        return matmul(w, x, y, k.isa());
    }
    let (kc, rows) = (k, w.rows);
    let k = w.cols;
    let n_tok = x.len() / k;
    assert_eq!(x.len(), n_tok * k, "x is not a whole number of rows");
    assert_eq!(y.len(), n_tok * rows, "y has the wrong size");
    if n_tok == 0 {
        return;
    }
    let n_pad = n_tok.div_ceil(32) * 32;
    // K-blocks of whole 256-element groups (a whole number of blocks of every type), sized so a
    // block of packed activations stays in L2.
    let kb = (A_BLOCK_BYTES / (2 * n_pad) / 256 * 256).clamp(256, k.div_ceil(256) * 256);
    PACKED.with(|packed| {
        let mut packed = packed.borrow_mut();
        packed.clear();
        packed.resize(n_pad * k, 0);
        packed
            .par_chunks_mut(16 * k)
            .zip(x.par_chunks(16 * k))
            .for_each(|(tile, x)| {
                for (t, x) in x.chunks_exact(k).enumerate() {
                    for (s, x) in x.chunks_exact(32).enumerate() {
                        pack_bf16(x, &mut tile[(s * 16 + t) * 32..][..32], kc.isa());
                    }
                }
            });
        let packed = &packed[..];
        // Each task writes the columns (weight rows) of its own row blocks.
        let out = Out(y.as_mut_ptr());
        let n_rb = rows / 32;
        let tasks = rayon::current_num_threads().clamp(1, n_rb);
        let per = n_rb.div_ceil(tasks);
        (0..tasks).into_par_iter().for_each(|task| {
            let (rb0, rb1) = (task * per, ((task + 1) * per).min(n_rb));
            if rb0 < rb1 {
                task_rows(w, kc, packed, n_tok, kb, rb0, rb1, out);
            }
        });
    });
}

/// Row blocks `rb0..rb1` (32 rows each) for every token, K-block by K-block.
#[cfg(not(target_arch = "x86_64"))]
fn task_rows(_: &QMatrix, _: KernelChoice, _: &[u16], _: usize, _: usize, _: usize, _: usize, _: Out) {
    unreachable!("no matrix unit off x86_64 (`uses_matrix_unit` is false)")
}

/// Row blocks `rb0..rb1` (32 rows each) for every token, K-block by K-block.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn task_rows(w: &QMatrix, kc: KernelChoice, packed: &[u16], n_tok: usize, kb: usize, rb0: usize, rb1: usize, out: Out) {
    use crate::x86::{amx, bf16::block_dot_8x32};
    let (amx, isa) = (kc.prompt() == PromptKernel::Amx, kc.isa());
    let (k, rows) = (w.cols, w.rows);
    let n_pad = n_tok.div_ceil(32) * 32;
    let (bl, bb) = (w.ty.block_len(), w.ty.block_bytes());
    PANEL.with(|panel| {
        let mut panel = panel.borrow_mut();
        let (panel, f32_rows, acc) = &mut *panel;
        panel.resize(2 * (kb / 32) * 512, 0);
        f32_rows.resize(32 * STAGE, 0.0);
        acc.resize(n_pad * 32, 0.0);
        if amx {
            // SAFETY: the `KernelChoice` found AMX usable; the tile state is this thread's.
            unsafe { amx::configure() };
        }
        for (kbi, k0) in (0..k).step_by(kb).enumerate() {
            let k1 = (k0 + kb).min(k);
            let steps = (k1 - k0) / 32;
            for rb in rb0..rb1 {
                let r0 = rb * 32;
                // Dequantised STAGE columns at a time, so the f32 staging stays in L1.
                for c in (k0..k1).step_by(STAGE) {
                    let len = STAGE.min(k1 - c);
                    match w.packed.filter(|_| crate::packed::packs(isa)) {
                        // The packed copy's panels (16 rows each), same values as the rows'.
                        Some(p) => {
                            for half in 0..2 {
                                let dst = &mut f32_rows[half * 16 * STAGE..(half + 1) * 16 * STAGE];
                                p.dequantize_panel(r0 / 16 + half, (c, c + len), dst, STAGE, isa);
                            }
                        }
                        None => {
                            for r in 0..32 {
                                let row = &w.row(r0 + r)[c / bl * bb..(c + len) / bl * bb];
                                dequantize(w.ty, row, &mut f32_rows[r * STAGE..r * STAGE + len], isa);
                            }
                        }
                    }
                    fill_panel(f32_rows, STAGE, len / 32, panel, (steps, (c - k0) / 32), isa);
                }
                // acc: [n_pad][32] f32 — this row block's outputs so far, contiguous so the
                // tiles' loads and stores between L1 chunks stay in cache (y's rows are far
                // apart). Later K-blocks continue from y's values: each output's sum goes on in
                // the same order whatever the blocking. Padding tokens' values are never read.
                if kbi > 0 {
                    for t in 0..n_tok {
                        // SAFETY: token t < n_tok; columns r0..r0+32 are this task's.
                        let src = unsafe { std::slice::from_raw_parts(out.at(t * rows + r0), 32) };
                        acc[t * 32..t * 32 + 32].copy_from_slice(src);
                    }
                }
                for c0 in (0..steps).step_by(L1_STEPS) {
                    let chunk = L1_STEPS.min(steps - c0);
                    let s0 = k0 / 32 + c0;
                    let b = [panel[c0 * 512..].as_ptr(), panel[(steps + c0) * 512..].as_ptr()];
                    let accumulate = kbi > 0 || c0 > 0;
                    if !amx {
                        for g in 0..n_pad / 8 {
                            let (j, t0) = (g / 2, 8 * (g % 2));
                            let a = packed[((j * (k / 32) + s0) * 16 + t0) * 32..].as_ptr();
                            // SAFETY: the `KernelChoice` found AVX-512 BF16; a: tokens 8g..8g+8 of
                            // `chunk` packed step tiles; b: `chunk` tiles of each half of the
                            // panel; c: 8 rows of 32 floats of acc.
                            unsafe {
                                block_dot_8x32(
                                    a as *const u32,
                                    b.map(|p| p as *const u32),
                                    chunk,
                                    acc[8 * g * 32..].as_mut_ptr(),
                                    accumulate,
                                )
                            };
                        }
                        continue;
                    }
                    for tp in 0..n_pad / 32 {
                        let a = [
                            packed[(2 * tp * (k / 32) + s0) * 512..].as_ptr(),
                            packed[((2 * tp + 1) * (k / 32) + s0) * 512..].as_ptr(),
                        ];
                        let c = [
                            acc[32 * tp * 32..].as_mut_ptr(),
                            acc[(32 * tp + 16) * 32..].as_mut_ptr(),
                        ];
                        // SAFETY: a: `chunk` packed tiles of each of two token tiles (n_pad rows
                        // exist); b: `chunk` tiles of each half of the panel; c: 16 rows of 32
                        // floats of acc each.
                        unsafe { amx::block_2x2(a, b, chunk, c, [128, 128], accumulate) };
                    }
                }
                for t in 0..n_tok {
                    // SAFETY: as above.
                    let dst = unsafe { std::slice::from_raw_parts_mut(out.at(t * rows + r0), 32) };
                    dst.copy_from_slice(&acc[t * 32..t * 32 + 32]);
                }
            }
        }
        if amx {
            // SAFETY: as `configure`.
            unsafe { amx::release() };
        }
    });
}

/// `dst[i] = bf16(src[i])`, vectorised where the CPU allows (always, where AMX is).
fn pack_bf16(src: &[f32], dst: &mut [u16], isa: Isa) {
    #[cfg(target_arch = "x86_64")]
    if isa.avx512() {
        // SAFETY: AVX-512F detected.
        return unsafe { crate::x86::bf16::to_bf16(src, dst) };
    }
    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = bf16(s));
}

/// Converts 32 rows of f32 weights (`f32_rows`: [32][stride], `steps` × 32 columns used) to bf16
/// in the B-operand layout: [tile (16 rows)][step][k-pair][row][2], as steps `first..first +
/// steps` of a panel of `total` steps (`at = (total, first)`).
fn fill_panel(f32_rows: &[f32], stride: usize, steps: usize, panel: &mut [u16], at: (usize, usize), isa: Isa) {
    let (total, first) = at;
    #[cfg(target_arch = "x86_64")]
    if isa.avx512() {
        assert!(f32_rows.len() >= 31 * stride + 32 * steps && first + steps <= total && panel.len() >= 2 * total * 512);
        for tile in 0..2 {
            for s in 0..steps {
                // SAFETY: AVX-512F detected; 16 rows of 32 floats from column 32·s exist (asserted
                // above), and the panel holds 256 u32 at tile step (tile, s).
                unsafe {
                    crate::x86::bf16::tile_pairs(
                        f32_rows[16 * tile * stride + 32 * s..].as_ptr(),
                        stride,
                        panel[(tile * total + first + s) * 512..].as_mut_ptr() as *mut u32,
                    )
                };
            }
        }
        return;
    }
    fill_panel_scalar(f32_rows, stride, steps, panel, at)
}

/// The scalar twin of `fill_panel`.
fn fill_panel_scalar(f32_rows: &[f32], stride: usize, steps: usize, panel: &mut [u16], at: (usize, usize)) {
    let (total, first) = at;
    for r in 0..32 {
        let (tile, r16) = (r / 16, r % 16);
        let src = &f32_rows[r * stride..r * stride + 32 * steps];
        for (q, pair) in src.chunks_exact(2).enumerate() {
            let (s, p) = (q / 16, q % 16);
            let i = (((tile * total + first + s) * 16 + p) * 16 + r16) * 2;
            panel[i] = bf16(pair[0]);
            panel[i + 1] = bf16(pair[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize) -> Vec<f32> {
        let special = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            1e-40,
            -3e-39,
            65504.0,
            3.0e38,
            f32::MIN_POSITIVE,
            1.0 + 1.0 / 256.0,
        ];
        (0..n)
            .map(|i| match i % 7 {
                0 => special[i / 7 % special.len()],
                _ => ((i as f32) * 0.618).sin() * 10f32.powi((i % 5) as i32 - 2),
            })
            .collect()
    }

    #[test]
    fn vector_packing_equals_the_scalar_twin() {
        let src = values(32 * 200 + 9);
        let (mut a, mut b) = (vec![0u16; src.len()], vec![0u16; src.len()]);
        pack_bf16(&src, &mut a, Isa::detected());
        b.iter_mut().zip(&src).for_each(|(d, &s)| *d = bf16(s));
        assert_eq!(a, b);

        let (stride, steps) = (200, 6);
        let rows = values(32 * stride);
        let (mut a, mut b) = (vec![0u16; 2 * steps * 512], vec![1u16; 2 * steps * 512]);
        fill_panel(&rows, stride, steps, &mut a, (steps, 0), Isa::detected());
        fill_panel_scalar(&rows, stride, steps, &mut b, (steps, 0));
        assert_eq!(a, b);
        // The same columns as the second half of a panel twice as long.
        let (mut a, mut b) = (vec![0u16; 4 * steps * 512], vec![1u16; 4 * steps * 512]);
        fill_panel(&rows, stride, steps, &mut a, (2 * steps, steps), Isa::detected());
        fill_panel_scalar(&rows, stride, steps, &mut b, (2 * steps, steps));
        let part =
            |v: &[u16], tile: usize| v[(tile * 2 * steps + steps) * 512..(tile * 2 * steps + 2 * steps) * 512].to_vec();
        assert_eq!(part(&a, 0), part(&b, 0));
        assert_eq!(part(&a, 1), part(&b, 1));
    }
}
