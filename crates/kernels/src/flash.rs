//! Prompt tokens' attention with an online softmax, the sums on bf16 dot products (`vdpbf16ps`),
//! for CPUs that have the instruction but no matrix unit (AMD Zen 4+).
//!
//! Operands of one KV head: the f32 key panels of the f32 tiles ([ld / 16][hd][16],
//! `attention::key_at`) and the bf16 value tiles (`attention::value_tiles`: [hd / 16][ld / 2][16],
//! lane = dim, a u32 = the pair of positions 2m, 2m + 1). Scores stay f32: Qwen2's keys carry
//! bias channels of magnitude ~100–160, whose bf16 rounding (a step of 0.5–1) moved attention
//! outputs by up to 10% on real text; rounding E and V moves them by ~0.3%. Positions are walked
//! in blocks of `BLOCK` from position 0, the same blocks for every row, so no n-long row of scores
//! exists: per row i (limit L) and block,
//!   s_p = (Σ_d q_d · K_p,d) · scale              p < L, one FMA chain over d in order (the f32
//!                                                tiles' chain, so the scores equal theirs)
//!   m' = max(m, max_p s_p),  α = e^(m − m')       (e^ is `exp_under`: 2^x by `exp2`)
//!   E_p = e^(s_p − m'),  z_l = z_l·α + Σ_v E_(16v + l)   (16 lane sums, vectors in order)
//!   O_d = O_d·α, then O_d = dp2(O_d, bf16 pair of E, pair of V_d) over position pairs in order
//! and at the end out_d = O_d · (1 / Σ_l z_l) (lanes summed in order). A block with no position
//! below L leaves the row as it is. Each row's numbers depend only on its query, its limit and
//! the cache — not on the rows beside it nor on how a prompt is chunked — and the vector kernel
//! (`x86::flash_bf16`) equals `update_scalar` bit for bit (tested). (The vector kernel adds a
//! row's zero-weight pairs up to its group's reach: exact for finite values, so the equality holds
//! up to the sign of an exactly-zero output.)
//!
//! `dp2(acc, a, b)` is `vdpbf16ps`'s lane: acc += a₁·b₁ then acc += a₀·b₀, each rounded to f32,
//! bf16 inputs below the normal range read as zero and results below it flushed to zero. E is
//! rounded to bf16 as `vcvtne2ps2bf16` does (nearest even, subnormal inputs as zero).

use std::f32::consts::LOG2_E;

use crate::attention::keys_ld;
use crate::dispatch::Isa;
use crate::scalar::{bf16, bf16_to_f32};

/// Positions per block of the walk: a block's keys and values (16 + 8 KiB at head size 64) stay
/// in L1 while every row group of a tile passes over them.
pub const BLOCK: usize = 64;

/// Whether the kernel runs at `isa` for head size `hd` (AVX-512 BF16; head size 64 or 128).
pub fn runs(hd: usize, isa: Isa) -> bool {
    isa.bf16_dot() && (hd == 64 || hd == 128)
}

/// Query rows per group: their outputs stay in registers while a block's values pass
/// (16 accumulators: 4 rows × 4 vectors at head size 64, 2 × 8 at 128).
fn group_rows(hd: usize) -> usize {
    if hd <= 64 {
        4
    } else {
        2
    }
}

/// Per-thread state of one call: the rows' queries (padded to whole groups), running max, lane
/// sums and outputs, and one block's scores and E pairs.
#[derive(Default)]
pub struct FlashScratch {
    /// [rows][hd]
    q: Vec<f32>,
    /// [rows]
    m: Vec<f32>,
    /// [rows][16]
    zl: Vec<f32>,
    /// [rows][hd]
    o: Vec<f32>,
    /// [group rows][BLOCK]
    s: Vec<f32>,
    /// [group rows][BLOCK / 2]
    e: Vec<u32>,
}

/// One row group's view of a block: where its operands start and how far each row reaches.
pub(crate) struct Block<'a> {
    /// The group's queries: [R][hd].
    pub q: &'a [f32],
    /// Positions of the block each row sees (0..=BLOCK): [R].
    pub seen: &'a [usize],
    /// Key panels (f32) from the block's first panel on.
    pub keys: &'a [f32],
    /// Value tiles of column tile 0 from the block's first position pair on; column tile c is
    /// `col_stride` u32 further.
    pub values: &'a [u32],
    pub col_stride: usize,
    pub hd: usize,
    pub scale: f32,
}

/// The running state of a row group: max [R], lane sums [R][16], outputs [R][hd], and the
/// block's scratch (scores [R][BLOCK], E pairs [R][BLOCK / 2]).
pub(crate) struct State<'a> {
    pub m: &'a mut [f32],
    pub zl: &'a mut [f32],
    pub o: &'a mut [f32],
    pub s: &'a mut [f32],
    pub e: &'a mut [u32],
}

/// Attention of `limits.len()` query rows (q: [nq, hd]) over positions `0..limits[i]` of one KV
/// head of `n` positions: `keys_t` its f32 key panels ([ld / 16][hd][16]), `values` its bf16
/// value tiles (`attention::value_tiles`). out: [nq, hd].
#[allow(clippy::too_many_arguments)]
pub fn prompt_flash(
    q: &[f32],
    hd: usize,
    limits: &[usize],
    (keys, values): (&[f32], &[u32]),
    n: usize,
    scale: f32,
    sc: &mut FlashScratch,
    out: &mut [f32],
    isa: Isa,
) {
    let (ld, nq, r) = (keys_ld(n), limits.len(), group_rows(hd));
    assert!(hd == 64 || hd == 128, "head size {hd}");
    assert!(q.len() == nq * hd && out.len() == nq * hd);
    assert!(keys.len() == ld * hd && values.len() == ld * hd / 2);
    assert!(
        limits.iter().all(|&l| (1..=n).contains(&l)),
        "every query row sees 1..=n positions"
    );
    // Rows padded to whole groups; a padding row sees nothing.
    let rows = nq.next_multiple_of(r);
    sc.q.clear();
    sc.q.extend_from_slice(q);
    sc.q.resize(rows * hd, 0.0);
    reset(&mut sc.m, rows, f32::NEG_INFINITY);
    reset(&mut sc.zl, rows * 16, 0.0);
    reset(&mut sc.o, rows * hd, 0.0);
    reset(&mut sc.s, r * BLOCK, 0.0);
    reset(&mut sc.e, r * BLOCK / 2, 0);
    let reach = limits.iter().copied().max().unwrap_or(0);
    let mut seen = [0usize; 4];
    let seen = &mut seen[..r];
    for p0 in (0..reach).step_by(BLOCK) {
        for g in 0..rows / r {
            for (i, s) in seen.iter_mut().enumerate() {
                *s = limits.get(g * r + i).map_or(0, |&l| l.saturating_sub(p0).min(BLOCK));
            }
            if seen.iter().all(|&s| s == 0) {
                continue;
            }
            let block = Block {
                q: &sc.q[g * r * hd..(g + 1) * r * hd],
                seen,
                keys: &keys[p0 * hd..],
                values: &values[p0 * 8..],
                col_stride: ld * 8,
                hd,
                scale,
            };
            let state = State {
                m: &mut sc.m[g * r..(g + 1) * r],
                zl: &mut sc.zl[g * r * 16..(g + 1) * r * 16],
                o: &mut sc.o[g * r * hd..(g + 1) * r * hd],
                s: &mut sc.s,
                e: &mut sc.e,
            };
            update(&block, state, isa);
        }
    }
    for (i, out) in out.chunks_exact_mut(hd).enumerate() {
        let z: f32 = sc.zl[i * 16..(i + 1) * 16].iter().fold(0.0, |a, &b| a + b);
        let inv = 1.0 / z;
        for (o, &acc) in out.iter_mut().zip(&sc.o[i * hd..(i + 1) * hd]) {
            *o = acc * inv;
        }
    }
}

fn reset<T: Copy>(v: &mut Vec<T>, len: usize, x: T) {
    v.clear();
    v.resize(len, x);
}

/// One block for one row group: the vector kernel where it runs, else the twin.
fn update(b: &Block, st: State, isa: Isa) {
    #[cfg(target_arch = "x86_64")]
    if runs(b.hd, isa) {
        use crate::x86::flash_bf16::block_update;
        // SAFETY: AVX-512F/BW/BF16 detected (`runs`); slices sized by `prompt_flash`.
        unsafe {
            match b.hd {
                64 => block_update::<4, 4>(b, st),
                _ => block_update::<2, 8>(b, st),
            }
        }
        return;
    }
    let _ = isa;
    update_scalar(b, st)
}

/// The scalar twin of `x86::flash_bf16::block_update`: the module's contract, element by element.
pub(crate) fn update_scalar(b: &Block, st: State) {
    let hd = b.hd;
    for (r, &seen) in b.seen.iter().enumerate() {
        if seen == 0 {
            continue;
        }
        let q = &b.q[r * hd..(r + 1) * hd];
        let s = &mut st.s[..BLOCK];
        for (p, sp) in s[..seen].iter_mut().enumerate() {
            let key = |d: usize| b.keys[crate::attention::key_at(p, d, hd)];
            *sp = (0..hd).fold(0.0, |acc, d| q[d].mul_add(key(d), acc)) * b.scale;
        }
        let m = st.m[r].max(s[..seen].iter().copied().fold(f32::NEG_INFINITY, f32::max));
        let alpha = rescale(st.m[r], m);
        st.m[r] = m;
        for (p, sp) in s.iter_mut().enumerate() {
            *sp = if p < seen { exp_under(*sp, m) } else { 0.0 };
        }
        let zl = &mut st.zl[r * 16..(r + 1) * 16];
        for (l, z) in zl.iter_mut().enumerate() {
            *z *= alpha;
            for v in 0..seen.div_ceil(16) {
                *z += s[16 * v + l];
            }
        }
        let o = &mut st.o[r * hd..(r + 1) * hd];
        for (d, o) in o.iter_mut().enumerate() {
            *o *= alpha;
            let (c, lane) = (d / 16, d % 16);
            for j in 0..seen.div_ceil(2) {
                let e = bf16(daz(s[2 * j])) as u32 | (bf16(daz(s[2 * j + 1])) as u32) << 16;
                *o = dp2(*o, e, b.values[c * b.col_stride + 16 * j + lane]);
            }
        }
    }
}

/// One lane of `vdpbf16ps`: `acc += a₁·b₁; acc += a₀·b₀` (u32 = bf16 pair, element 0 low), each
/// step rounded to f32; subnormal inputs (the accumulator too) read as zero, subnormal results
/// flushed to zero.
pub fn dp2(acc: f32, a: u32, b: u32) -> f32 {
    let half = |x: u32, i: u32| daz(bf16_to_f32((x >> (16 * i)) as u16));
    let acc = ftz(half(a, 1).mul_add(half(b, 1), daz(acc)));
    ftz(half(a, 0).mul_add(half(b, 0), acc))
}

fn daz(x: f32) -> f32 {
    if x.is_subnormal() {
        0.0f32.copysign(x)
    } else {
        x
    }
}

fn ftz(x: f32) -> f32 {
    daz(x)
}

/// Coefficients of 2^f on [−½, ½], highest degree first (relative error 3.3e-6, far below the
/// 2⁻⁹ of E's bf16 rounding).
pub(crate) const EXP2_POLY: [f32; 6] = [
    1.333_355_8e-3,
    9.618_129e-3,
    5.550_411e-2,
    0.240_226_5,
    std::f32::consts::LN_2,
    1.0,
];

/// 2^t: n = t rounded to nearest (ties to even), a degree-5 polynomial of f = t − n, times 2^n
/// rounded once (as `vscalefps`; results below the normal range kept, not flushed).
pub fn exp2(t: f32) -> f32 {
    let n = t.round_ties_even();
    let f = t - n;
    let y = EXP2_POLY[1..].iter().fold(EXP2_POLY[0], |y, &c| y.mul_add(f, c));
    (y as f64 * 2f64.powi(n as i32)) as f32
}

/// E of a score `s` under the max `m`: 2^(s·log₂e − m·log₂e), the product and difference one
/// rounding (`vfmsub`); m·log₂e is rounded once, the same for every E of a row, and `rescale`
/// moves earlier E by exactly the difference of two such roundings, so the offset cancels in the
/// normalisation.
fn exp_under(s: f32, m: f32) -> f32 {
    exp2(s.mul_add(LOG2_E, -(m * LOG2_E)))
}

/// α = 2^(old·log₂e − new·log₂e) (each product rounded as in `exp_under`): exactly 1 when the max
/// did not move; 0 for a row's first block (old = −∞).
pub(crate) fn rescale(old: f32, new: f32) -> f32 {
    if old == f32::NEG_INFINITY {
        0.0
    } else {
        exp2(old * LOG2_E - new * LOG2_E)
    }
}
