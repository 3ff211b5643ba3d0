//! Prompt attention on the matrix unit (AMX bf16), the same three steps as `tile_attention` with
//! the two products as tile products (`amx::block_2x2`, 32 × 32 outputs per call):
//!   S = Q·Kᵀ   A: 32 query rows × 32 dims (bf16), B: 32 dims × 32 positions (key tiles)
//!   E = e^(S·scale − max) on AVX-512 (`tile_attention::exp_row`), zero past each row's limit
//!   O = E·V    A: 32 rows × 32 positions (bf16), B: 32 positions × 32 dims (value tiles)
//! Query, key, value and E are rounded to bf16 (as the prompt matmuls' operands are); the sums
//! are f32. A row's outputs depend only on its own query, its limit and the cache: rows sharing a
//! tile add exact zeros to it (E past a row's limit), so chunking does not change them.
//!
//! Layouts (u32 = a bf16 pair, the B operand of `tdpbf16ps`):
//! - key tiles: [ld / 16 panels][hd / 2 dim pairs][16 positions], pairs of dims 2k, 2k + 1;
//! - value tiles: [hd / 16 column tiles][ld / 32 steps][16 position pairs][16 dims].

// Index loops over rows and tiles.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::amx;
use super::bf16::pair16_regs;
use super::tile_attention::exp_row;

/// Lanes j = bf16(a[j]) | bf16(b[j]) << 16 for 16 floats at `a` and `b`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn pair_rows(a: *const f32, b: *const f32) -> __m512i {
    pair16_regs(_mm512_loadu_ps(a), _mm512_loadu_ps(b))
}

/// Key tiles from the f32 key panels (`attention::key_at` layout, [ld / 16][hd][16]).
///
/// # Safety
/// AVX-512F must be available; `panels` holds `ld · hd` floats, `out` `ld · hd / 2` u32.
#[target_feature(enable = "avx512f")]
pub unsafe fn key_tiles(panels: &[f32], hd: usize, ld: usize, out: &mut [u32]) {
    assert!(panels.len() == ld * hd && out.len() == ld * hd / 2 && hd.is_multiple_of(32) && ld.is_multiple_of(32));
    for panel in 0..ld / 16 {
        let src = panels.as_ptr().add(panel * hd * 16);
        let dst = out.as_mut_ptr().add(panel * hd * 8);
        for k in 0..hd / 2 {
            let v = pair_rows(src.add(2 * k * 16), src.add((2 * k + 1) * 16));
            _mm512_storeu_si512(dst.add(16 * k) as *mut __m512i, v);
        }
    }
}

/// `out[j] = bf16(a[j]) | bf16(b[j]) << 16` for 16 lanes (a value tile's pairs of positions).
///
/// # Safety
/// AVX-512F must be available; `a`, `b` valid for 16 floats, `out` for 16 u32.
#[target_feature(enable = "avx512f")]
pub unsafe fn pair16(a: *const f32, b: *const f32, out: *mut u32) {
    _mm512_storeu_si512(out as *mut __m512i, pair_rows(a, b));
}

/// Scratch of one thread: query tiles, scores, E tiles, outputs of 32 rows.
#[derive(Default)]
pub struct Scratch {
    qa: Vec<u16>,
    scores: Vec<f32>,
    ea: Vec<u16>,
    out: Vec<f32>,
}

/// As `tile_attention::prompt_tile` on tiles (q: [nq, hd], out: [nq, hd]).
///
/// # Safety
/// `amx::available()`; `hd` a multiple of 32; `keys`/`values` from `key_tiles`/`value_tiles` for
/// `ld` positions (a multiple of 32); every limit in `1..=ld`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub unsafe fn prompt_tile(
    q: &[f32],
    hd: usize,
    limits: &[usize],
    keys: &[u32],
    values: &[u32],
    ld: usize,
    scale: f32,
    sc: &mut Scratch,
    out: &mut [f32],
) {
    let nq = limits.len();
    let steps = hd / 32;
    sc.qa.resize(32 * hd, 0);
    sc.scores.resize(32 * ld, 0.0);
    sc.ea.resize(32 * ld, 0);
    sc.out.resize(32 * hd, 0.0);
    amx::configure();
    for i0 in (0..nq).step_by(32) {
        let nr = (nq - i0).min(32);
        let lims = &limits[i0..i0 + nr];
        let npos = lims.iter().copied().max().unwrap_or(0).next_multiple_of(32);
        // Query tiles: [2 row tiles][steps][16 rows][32 dims].
        sc.qa.fill(0);
        for r in 0..nr {
            let row = &q[(i0 + r) * hd..(i0 + r + 1) * hd];
            for s in 0..steps {
                let at = ((r / 16 * steps + s) * 16 + r % 16) * 32;
                super::bf16::to_bf16(&row[32 * s..32 * s + 32], &mut sc.qa[at..at + 32]);
            }
        }
        // S: 32 rows × 32 positions per call, unscaled.
        let qa = [sc.qa.as_ptr(), sc.qa.as_ptr().add(steps * 512)];
        for pb in 0..npos / 32 {
            let b = [
                keys.as_ptr().add(2 * pb * hd * 8) as *const u16,
                keys.as_ptr().add((2 * pb + 1) * hd * 8) as *const u16,
            ];
            let c = [
                sc.scores.as_mut_ptr().add(32 * pb),
                sc.scores.as_mut_ptr().add(16 * ld + 32 * pb),
            ];
            amx::block_2x2(qa, b, steps, c, [4 * ld; 2], false);
        }
        // E as bf16 A tiles [2 row tiles][npos / 32][16 rows][32 positions], zero past each limit.
        let ps = npos / 32;
        let mut inv = [0f32; 32];
        sc.ea[..32 * npos].fill(0);
        for r in 0..nr {
            let row = sc.scores.as_mut_ptr().add(r * ld);
            inv[r] = 1.0 / exp_row(row, lims[r], scale);
            let e = std::slice::from_raw_parts(row, lims[r]);
            for s in 0..lims[r].div_ceil(32) {
                let at = ((r / 16 * ps + s) * 16 + r % 16) * 32;
                let len = (lims[r] - 32 * s).min(32);
                super::bf16::to_bf16(&e[32 * s..32 * s + len], &mut sc.ea[at..at + len]);
            }
        }
        // O = E·V: 32 rows × 32 dims per call, over all npos positions.
        let ea = [sc.ea.as_ptr(), sc.ea.as_ptr().add(ps * 512)];
        let vsteps = ld / 32;
        for cb in 0..hd / 32 {
            let b = [
                values.as_ptr().add(2 * cb * vsteps * 256) as *const u16,
                values.as_ptr().add((2 * cb + 1) * vsteps * 256) as *const u16,
            ];
            let c = [
                sc.out.as_mut_ptr().add(32 * cb),
                sc.out.as_mut_ptr().add(16 * hd + 32 * cb),
            ];
            amx::block_2x2(ea, b, ps, c, [4 * hd; 2], false);
        }
        for r in 0..nr {
            let s = _mm512_set1_ps(inv[r]);
            for c in (0..hd).step_by(16) {
                let v = _mm512_mul_ps(_mm512_loadu_ps(sc.out.as_ptr().add(r * hd + c)), s);
                _mm512_storeu_ps(out.as_mut_ptr().add((i0 + r) * hd + c), v);
            }
        }
    }
    amx::release();
}
