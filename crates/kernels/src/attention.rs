//! Prompt tokens' attention as two small GEMMs per tile of query rows.
//!
//! Per KV head, the cached keys and values up to a prompt chunk's last position are converted to
//! f32 once (`keys_t`: K transposed in panels of 16 positions, [ld / 16][hd][16], so 16 positions
//! are one vector and a panel is 4–8 contiguous KiB; `values`: [n][hd]).
//! Then each tile of query rows (a few tokens × the query heads sharing that KV head) computes
//!   S[i][p] = (Σ_d q[i][d] · K[p][d]) · scale      one FMA chain over d in order, per (i, p)
//!   E[i][p] = e^(S[i][p] − max_p S[i]), z_i = Σ_p E[i][p]      (`exp_row`, p < lim_i)
//!   O[i][d] = (Σ_{p < lim_i} E[i][p] · V[p][d]) · (1 / z_i)   one FMA chain over p in order
//! with `lim_i` the number of positions query row i sees (causal). Each output's chain depends only
//! on its own query and positions, never on the rows sharing its tile, so a prompt's numbers do not
//! depend on how it is chunked or batched. The per-token kernels (`kv_f16::scores`,
//! `ops::attend_f16`) read every K and V row once per token; here each is converted once per
//! chunk and read from cache by register tiles of 8 (scores) or 4 (sums) query rows.

// Index loops over register tiles and the twin's chains.
#![allow(clippy::needless_range_loop)]

use crate::dispatch::{Isa, KernelChoice, PromptKernel};
use crate::scalar::bf16;

/// Which tiled kernel prompt attention runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileKernel {
    /// Tile products on the matrix unit, bf16 operands (with the AMX prompt matmuls).
    Amx,
    /// f32 register tiles (AVX-512).
    Avx512,
    /// bf16 dot products with an online softmax (`crate::flash`: AVX-512 BF16, no matrix unit).
    Flash,
}

/// The tiled kernel for head size `hd` under the kernel choice `k` (its ISA and prompt kernel),
/// `None` where callers keep the per-token kernels (the choice is per machine and
/// `--prompt-kernel`, never per batch): AMX with the AMX matmuls, f32 tiles with the exact ones,
/// else the flash kernel where AVX-512 BF16 runs (on Zen 4, mini: 1.34× the f32 tiles' pp512 at
/// depth 32,768, 1.15× at 8,192).
pub fn tile_kernel(hd: usize, k: KernelChoice) -> Option<TileKernel> {
    if !f32_tiles_run(hd, k.isa()) {
        return None;
    }
    Some(match k.prompt() {
        PromptKernel::Amx => TileKernel::Amx,
        PromptKernel::Exact => TileKernel::Avx512,
        _ if crate::flash::runs(hd, k.isa()) => TileKernel::Flash,
        _ => TileKernel::Avx512,
    })
}

/// Whether the AMX tiles run under `k` for head size `hd`.
fn amx_tiles_run(hd: usize, k: KernelChoice) -> bool {
    tile_kernel(hd, k) == Some(TileKernel::Amx)
}

/// Whether the f32 register tiles run at `isa` for head size `hd` (AVX-512, hd 64 or 128).
fn f32_tiles_run(hd: usize, isa: Isa) -> bool {
    isa.avx512() && (hd == 64 || hd == 128)
}

/// Whether a tiled kernel runs at `isa` for head size `hd`.
pub fn available(hd: usize, isa: Isa) -> bool {
    f32_tiles_run(hd, isa)
}

/// Positions rounded up to whole tiles of 32: `keys_t` holds `keys_ld(n) · hd` values.
pub fn keys_ld(n: usize) -> usize {
    n.next_multiple_of(32)
}

/// Per-thread scratch of the tile kernels.
#[derive(Default)]
pub struct TileScratch {
    scores: Vec<f32>,
    pub flash: crate::flash::FlashScratch,
    #[cfg(target_arch = "x86_64")]
    amx: crate::x86::amx_attention::Scratch,
}

/// Key and value tiles of bf16 pairs for `prompt_tile_amx` from the f32 operands (`keys_t`
/// panels and values [n][hd]), each `keys_ld(n) · hd / 2` u32: keys [ld / 16][hd / 2][16]
/// (u32 = dims 2k, 2k + 1 of a position), values as `value_tiles`. `isa` must run AVX-512 (it
/// does wherever AMX does).
pub fn to_tiles(
    keys_t: &[f32],
    values: &[f32],
    hd: usize,
    n: usize,
    (key_tiles, value_tiles_out): (&mut [u32], &mut [u32]),
    isa: Isa,
) {
    let ld = keys_ld(n);
    assert!(keys_t.len() == ld * hd && hd.is_multiple_of(32) && key_tiles.len() == ld * hd / 2);
    assert!(isa.avx512(), "AMX tiles where AVX-512 is missing");
    value_tiles(values, hd, n, value_tiles_out, isa);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F detected (asserted); the kernel asserts the lengths.
    unsafe {
        crate::x86::amx_attention::key_tiles(keys_t, hd, ld, key_tiles)
    };
}

/// Value tiles of bf16 pairs (`prompt_tile_amx`, `flash::prompt_flash`) from values [n][hd]:
/// [hd / 16][ld / 2][16], u32 = positions 2m, 2m + 1 of a dim (positions `n..ld` zero).
pub fn value_tiles(values: &[f32], hd: usize, n: usize, out: &mut [u32], isa: Isa) {
    assert_eq!(values.len(), n * hd);
    value_tiles_with(hd, n, out, isa, |p, row| {
        row.copy_from_slice(&values[p * hd..(p + 1) * hd])
    })
}

/// As `value_tiles` for any cache: `row_of(p, out)` writes position p's value ([hd] f32), two
/// rows at a time.
pub fn value_tiles_with(hd: usize, n: usize, out: &mut [u32], isa: Isa, row_of: impl Fn(usize, &mut [f32])) {
    let ld = keys_ld(n);
    assert!(hd.is_multiple_of(32) && hd <= 256 && out.len() == ld * hd / 2);
    let mut two = [0f32; 512];
    for m in 0..ld / 2 {
        for i in 0..2 {
            let row = &mut two[i * hd..(i + 1) * hd];
            match 2 * m + i {
                p if p < n => row_of(p, row),
                _ => row.fill(0.0),
            }
        }
        for c in 0..hd / 16 {
            let (a, b) = (&two[16 * c..16 * c + 16], &two[hd + 16 * c..hd + 16 * c + 16]);
            let dst = &mut out[c * ld * 8 + m * 16..][..16];
            #[cfg(target_arch = "x86_64")]
            if isa.avx512() {
                // SAFETY: AVX-512F detected; 16 floats in each of a and b, 16 u32 in dst.
                unsafe { crate::x86::amx_attention::pair16(a.as_ptr(), b.as_ptr(), dst.as_mut_ptr()) };
                continue;
            }
            for (d, (&x, &y)) in dst.iter_mut().zip(a.iter().zip(b)) {
                *d = bf16_pair(x, y);
            }
        }
    }
    let _ = isa;
}

pub(crate) fn bf16_pair(a: f32, b: f32) -> u32 {
    bf16(a) as u32 | (bf16(b) as u32) << 16
}

/// `prompt_tile` on the matrix unit: query, keys, E and values rounded to bf16, sums in f32;
/// key and value tiles from `to_tiles` for `n` positions. `k` must run the AMX tiles.
#[allow(clippy::too_many_arguments)]
pub fn prompt_tile_amx(
    q: &[f32],
    hd: usize,
    limits: &[usize],
    (key_tiles, value_tiles): (&[u32], &[u32]),
    n: usize,
    scale: f32,
    scratch: &mut TileScratch,
    out: &mut [f32],
    k: KernelChoice,
) {
    let ld = keys_ld(n);
    assert!(amx_tiles_run(hd, k), "AMX attention where it does not run");
    assert!(q.len() == limits.len() * hd && out.len() == q.len());
    assert!(key_tiles.len() == ld * hd / 2 && value_tiles.len() == ld * hd / 2);
    assert!(
        limits.iter().all(|&l| (1..=n).contains(&l)),
        "every query row sees 1..=n positions"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AMX available (tile_kernel); lengths checked above.
    unsafe {
        crate::x86::amx_attention::prompt_tile(q, hd, limits, key_tiles, value_tiles, ld, scale, &mut scratch.amx, out)
    };
}

/// Where K[p][d] is in `keys_t`: panel p / 16, row d, lane p % 16.
#[inline]
pub fn key_at(p: usize, d: usize, hd: usize) -> usize {
    (p / 16) * hd * 16 + d * 16 + p % 16
}

/// Attention of `limits.len()` query rows (q: [nq, hd]) over positions `0..limits[i]` of one KV
/// head: keys_t [ld / 16][hd][16] (`key_at`; positions `n..ld` zero), values [n][hd].
/// out: [nq, hd].
#[allow(clippy::too_many_arguments)]
pub fn prompt_tile(
    q: &[f32],
    hd: usize,
    limits: &[usize],
    keys_t: &[f32],
    ld: usize,
    values: &[f32],
    scale: f32,
    scratch: &mut TileScratch,
    out: &mut [f32],
    isa: Isa,
) {
    let nq = limits.len();
    let n = values.len() / hd;
    assert!(q.len() == nq * hd && out.len() == nq * hd && keys_t.len() == hd * ld && ld == keys_ld(n));
    assert!(
        limits.iter().all(|&l| (1..=n).contains(&l)),
        "every query row sees 1..=n positions"
    );
    let scores = &mut scratch.scores;
    scores.resize(nq * ld, 0.0);
    #[cfg(target_arch = "x86_64")]
    if f32_tiles_run(hd, isa) {
        // SAFETY: AVX-512F and the AVX2 set were detected; the lengths were checked above.
        unsafe { crate::x86::tile_attention::prompt_tile(q, hd, limits, keys_t, ld, values, scale, scores, out) };
        return;
    }
    prompt_tile_scalar(q, hd, limits, keys_t, ld, values, scale, scratch, out, isa)
}

/// `x[p] = e^(x[p] − max x)`, returning their sum: the AVX-512 kernel's own where it runs (so the
/// twin below checks the tiles' chains bit for bit), else in scalar code.
pub fn exp_row(x: &mut [f32], isa: Isa) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if isa.avx512() {
        // SAFETY: AVX-512F and the AVX2 set were detected; `x` holds `x.len()` floats.
        return unsafe { crate::x86::tile_attention::exp_row(x.as_mut_ptr(), x.len(), 1.0) };
    }
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    sum
}

/// The scalar twin of `prompt_tile`: the same chains, element by element.
#[allow(clippy::too_many_arguments)]
pub fn prompt_tile_scalar(
    q: &[f32],
    hd: usize,
    limits: &[usize],
    keys_t: &[f32],
    ld: usize,
    values: &[f32],
    scale: f32,
    scratch: &mut TileScratch,
    out: &mut [f32],
    isa: Isa,
) {
    let scores = &mut scratch.scores;
    scores.resize(limits.len() * ld, 0.0);
    for (i, &lim) in limits.iter().enumerate() {
        let s = &mut scores[i * ld..i * ld + lim];
        for (p, sp) in s.iter_mut().enumerate() {
            let mut acc = 0f32;
            for d in 0..hd {
                acc = q[i * hd + d].mul_add(keys_t[key_at(p, d, hd)], acc);
            }
            *sp = acc * scale;
        }
        let inv = 1.0 / exp_row(s, isa);
        for d in 0..hd {
            let mut acc = 0f32;
            for p in 0..lim {
                acc = s[p].mul_add(values[p * hd + d], acc);
            }
            out[i * hd + d] = acc * inv;
        }
    }
}

/// One KV head's keys, positions `0..n`, to f32 in panels: `dst[key_at(p, d)] = row(p)[d]`
/// (positions `n..keys_ld(n)` zero). `row(p)` is position p's key for this head (hd long or
/// more), wherever the cache keeps it: a paged cache finds each position in its block. (An f16
/// cache's keys convert block by block: `kv_f16::to_panels`.)
pub fn keys_t_f32<'a>(row: impl Fn(usize) -> &'a [f32], hd: usize, n: usize, dst: &mut [f32]) {
    keys_t(n, hd, dst, |p, out| out.copy_from_slice(&row(p)[..hd]));
}

/// As `keys_t_f32` for any cache: `row_of(p, out)` writes position p's key for this head ([hd]).
pub fn keys_t_with(hd: usize, n: usize, dst: &mut [f32], row_of: impl Fn(usize, &mut [f32])) {
    keys_t(n, hd, dst, row_of)
}

fn keys_t(n: usize, hd: usize, dst: &mut [f32], row_of: impl Fn(usize, &mut [f32])) {
    let ld = keys_ld(n);
    assert_eq!(dst.len(), hd * ld);
    let mut row = [0f32; 256];
    assert!(hd <= row.len(), "head size {hd} above 256");
    for p in 0..n {
        row_of(p, &mut row[..hd]);
        for (d, &x) in row[..hd].iter().enumerate() {
            dst[key_at(p, d, hd)] = x;
        }
    }
    for p in n..ld {
        for d in 0..hd {
            dst[key_at(p, d, hd)] = 0.0;
        }
    }
}

/// One KV head's values, positions `0..n`, to f32 (an f32 cache): dst: [n, hd]; `row(p)` as in
/// `keys_t_f32`.
pub fn values_f32<'a>(row: impl Fn(usize) -> &'a [f32], hd: usize, n: usize, dst: &mut [f32]) {
    assert_eq!(dst.len(), n * hd);
    for (p, out) in dst.chunks_exact_mut(hd).enumerate() {
        out.copy_from_slice(&row(p)[..hd]);
    }
}

/// f16 bits → f32 (exact).
pub fn f16_row(src: &[u16], dst: &mut [f32], isa: Isa) {
    #[cfg(target_arch = "x86_64")]
    if isa.simd() && src.len().is_multiple_of(8) {
        // SAFETY: AVX2 and F16C were detected; equal lengths, a multiple of 8.
        return unsafe { crate::x86::from_f16(src, dst) };
    }
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = half::f16::from_bits(s).to_f32();
    }
}
