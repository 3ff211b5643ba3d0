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
//! depend on how it is chunked or batched. The per-token kernels (`ops::scores_f16`,
//! `ops::attend_f16`) read every K and V row once per token; here each is converted once per
//! chunk and read from cache by register tiles of 8 (scores) or 4 (sums) query rows.

// Index loops over register tiles and the twin's chains.
#![allow(clippy::needless_range_loop)]

/// Whether the tiled kernel runs on this CPU for head size `hd` (else callers keep the per-token
/// kernels: the choice is per machine, never per batch).
pub fn available(hd: usize) -> bool {
    crate::dispatch::avx512() && (hd == 64 || hd == 128)
}

/// Positions rounded up to whole vectors of 16: `keys_t` holds `keys_ld(n) · hd` values.
pub fn keys_ld(n: usize) -> usize {
    n.next_multiple_of(16)
}

/// Where K[p][d] is in `keys_t`: panel p / 16, row d, lane p % 16.
#[inline]
pub fn key_at(p: usize, d: usize, hd: usize) -> usize {
    (p / 16) * hd * 16 + d * 16 + p % 16
}

/// Attention of `limits.len()` query rows (q: [nq, hd]) over positions `0..limits[i]` of one KV
/// head: keys_t [ld / 16][hd][16] (`key_at`; positions `n..ld` zero), values [n][hd].
/// out: [nq, hd]. `scores` is scratch (grown to nq × ld).
#[allow(clippy::too_many_arguments)]
pub fn prompt_tile(
    q: &[f32],
    hd: usize,
    limits: &[usize],
    keys_t: &[f32],
    ld: usize,
    values: &[f32],
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let nq = limits.len();
    let n = values.len() / hd;
    assert!(q.len() == nq * hd && out.len() == nq * hd && keys_t.len() == hd * ld && ld == keys_ld(n));
    assert!(
        limits.iter().all(|&l| (1..=n).contains(&l)),
        "every query row sees 1..=n positions"
    );
    scores.resize(nq * ld, 0.0);
    #[cfg(target_arch = "x86_64")]
    if available(hd) {
        // SAFETY: AVX-512F and the AVX2 set were detected; the lengths were checked above.
        unsafe { crate::x86::tile_attention::prompt_tile(q, hd, limits, keys_t, ld, values, scale, scores, out) };
        return;
    }
    prompt_tile_scalar(q, hd, limits, keys_t, ld, values, scale, scores, out)
}

/// `x[p] = e^(x[p] − max x)`, returning their sum: the AVX-512 kernel's own where it runs (so the
/// twin below checks the tiles' chains bit for bit), else in scalar code.
pub fn exp_row(x: &mut [f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if crate::dispatch::avx512() {
        // SAFETY: AVX-512F and the AVX2 set were detected; `x` holds `x.len()` floats.
        return unsafe { crate::x86::tile_attention::exp_row(x.as_mut_ptr(), x.len()) };
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
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
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
        let inv = 1.0 / exp_row(s);
        for d in 0..hd {
            let mut acc = 0f32;
            for p in 0..lim {
                acc = s[p].mul_add(values[p * hd + d], acc);
            }
            out[i * hd + d] = acc * inv;
        }
    }
}

/// One KV head's keys, positions `0..n`, to f32 in panels: `dst[key_at(p, d)] = k[p·stride + d]`
/// (positions `n..keys_ld(n)` zero). `k` starts at the head's first element.
pub fn keys_t_f16(k: &[u16], stride: usize, hd: usize, n: usize, dst: &mut [f32]) {
    keys_t(n, hd, dst, |p, row| f16_row(&k[p * stride..p * stride + hd], row));
}

/// As `keys_t_f16` for an f32 cache.
pub fn keys_t_f32(k: &[f32], stride: usize, hd: usize, n: usize, dst: &mut [f32]) {
    keys_t(n, hd, dst, |p, row| {
        row.copy_from_slice(&k[p * stride..p * stride + hd])
    });
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

/// One KV head's values, positions `0..n`, to f32: dst: [n, hd].
pub fn values_f16(v: &[u16], stride: usize, hd: usize, n: usize, dst: &mut [f32]) {
    assert_eq!(dst.len(), n * hd);
    for (p, row) in dst.chunks_exact_mut(hd).enumerate() {
        f16_row(&v[p * stride..p * stride + hd], row);
    }
}

/// As `values_f16` for an f32 cache.
pub fn values_f32(v: &[f32], stride: usize, hd: usize, n: usize, dst: &mut [f32]) {
    assert_eq!(dst.len(), n * hd);
    for (p, row) in dst.chunks_exact_mut(hd).enumerate() {
        row.copy_from_slice(&v[p * stride..p * stride + hd]);
    }
}

/// f16 bits → f32 (exact).
fn f16_row(src: &[u16], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::dispatch::isa() == crate::Isa::Avx2 && src.len().is_multiple_of(8) {
        // SAFETY: AVX2 and F16C were detected; equal lengths, a multiple of 8.
        return unsafe { crate::x86::from_f16(src, dst) };
    }
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = half::f16::from_bits(s).to_f32();
    }
}
