//! The packed panels' kernels (`crate::packed`) on AVX-512 BW + VNNI: 16 rows in the 16 lanes,
//! `T` tokens per pass. Per 4 weights of the panel: one 64-byte vector of unsigned weights (loaded
//! or decoded from nibbles), and per token one broadcast of 4 activation bytes and one `vpdpbusd`.
//! A block's integer sum starts at the token's correction (`−offset · Σq`), so it ends as the exact
//! signed dot product; then one float rescale per block and token, as `packed::twin` says.

// Index loops over [token] register arrays.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use crate::matmul::OutPtr;
use crate::packed::{corrections_per_token, PackedMatrix, LANES};
use crate::q8::QuantActs;
use crate::GgmlType;

/// Bytes ahead of the current block that are prefetched.
const PREFETCH: usize = 2048;

/// One pass's tokens: int8 activations, block scales `dx`, `s = dx · Σq`, integer corrections.
struct Tokens<const T: usize> {
    q: [*const i8; T],
    dx: [*const f32; T],
    s: [*const f32; T],
    c: [*const i32; T],
}

/// Panel `p` for tokens `t0..t0 + nt` (1 ≤ nt ≤ 8), written to `out` ([n_tok, rows]).
///
/// # Safety
/// AVX-512 F/BW/VNNI must be available; `acts` and `corr` must hold those tokens for `w`'s
/// columns and type; the caller owns the panel's outputs.
pub(crate) unsafe fn panel_tokens(
    w: &PackedMatrix,
    p: usize,
    acts: &QuantActs,
    corr: &[i32],
    t0: usize,
    nt: usize,
    out: OutPtr,
) {
    match nt {
        1 => run::<1>(w, p, acts, corr, t0, out),
        2 => run::<2>(w, p, acts, corr, t0, out),
        3 => run::<3>(w, p, acts, corr, t0, out),
        4 => run::<4>(w, p, acts, corr, t0, out),
        5 => run::<5>(w, p, acts, corr, t0, out),
        6 => run::<6>(w, p, acts, corr, t0, out),
        7 => run::<7>(w, p, acts, corr, t0, out),
        8 => run::<8>(w, p, acts, corr, t0, out),
        _ => unreachable!("{nt} tokens per pass"),
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn run<const T: usize>(w: &PackedMatrix, p: usize, acts: &QuantActs, corr: &[i32], t0: usize, out: OutPtr) {
    let (cols, nb) = (w.cols, w.cols / 32);
    let nc = corrections_per_token(w.ty, cols);
    assert!(acts.cols == cols && t0 + T <= acts.tokens() && corr.len() >= (t0 + T) * nc);
    let k = Tokens::<T> {
        q: std::array::from_fn(|t| acts.qs.as_ptr().add((t0 + t) * cols)),
        dx: std::array::from_fn(|t| acts.d.as_ptr().add((t0 + t) * nb)),
        s: std::array::from_fn(|t| acts.s.as_ptr().add((t0 + t) * nb)),
        c: std::array::from_fn(|t| corr.as_ptr().add((t0 + t) * nc)),
    };
    let panel = w.panel(p).as_ptr();
    let y = match w.ty {
        GgmlType::Q8_0 => q8_0::<T>(panel, nb, &k),
        GgmlType::Q5_0 => q5_0::<T>(panel, nb, &k),
        GgmlType::Q4K => q4k::<T>(panel, nb / 8, &k),
        GgmlType::Q6K => q6k::<T>(panel, nb / 8, &k),
        ty => unreachable!("{} is not packed", ty.name()),
    };
    for t in 0..T {
        _mm512_storeu_ps(out.at((t0 + t) * w.rows + LANES * p), y[t]);
    }
}

/// 4 activation bytes in every lane.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn bcast(q: *const i8) -> __m512i {
    _mm512_set1_epi32((q as *const i32).read_unaligned())
}

/// Integer chains per token: two below 4 tokens (hides `vpdpbusd`'s latency), else one (the
/// tokens' chains are independent already, and registers are scarce).
const fn chains(t: usize) -> usize {
    if t < 4 {
        2
    } else {
        1
    }
}

/// `acc + (Σ chains as f32) · (ws · dx)`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn rescale(acc: __m512, ia: [__m512i; 2], ws: __m512, dx: f32) -> __m512 {
    let d = _mm512_cvtepi32_ps(_mm512_add_epi32(ia[0], ia[1]));
    _mm512_fmadd_ps(d, _mm512_mul_ps(ws, _mm512_set1_ps(dx)), acc)
}

/// Chains started at `c` (the first) and zero.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn start<const T: usize>(c: impl Fn(usize) -> i32) -> [[__m512i; 2]; T] {
    let mut ia = [[_mm512_setzero_si512(); 2]; T];
    for t in 0..T {
        ia[t][0] = _mm512_set1_epi32(c(t));
    }
    ia
}

/// Step `s` of a block: `u` (64 unsigned weight bytes) against each token's bytes at `q + off`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn step<const T: usize>(ia: &mut [[__m512i; 2]; T], s: usize, u: __m512i, k: &Tokens<T>, off: usize) {
    let c = s % chains(T);
    for t in 0..T {
        ia[t][c] = _mm512_dpbusd_epi32(ia[t][c], u, bcast(k.q[t].add(off)));
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn prefetch(p: *const u8, lines: usize) {
    for l in 0..lines {
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH + 64 * l) as *const i8);
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn q8_0<const T: usize>(panel: *const u8, nb: usize, k: &Tokens<T>) -> [__m512; T] {
    let mut acc = [_mm512_setzero_ps(); T];
    for g in 0..nb / 2 {
        let base = panel.add(1088 * g);
        prefetch(base, 17);
        for h in 0..2 {
            let b = 2 * g + h;
            let ws = f16x16(base.add(32 * h));
            let data = base.add(64 + 512 * h);
            let mut ia = start::<T>(|t| *k.c[t].add(b));
            for s in 0..8 {
                let u = _mm512_load_si512(data.add(64 * s) as *const __m512i);
                step(&mut ia, s, u, k, 32 * b + 4 * s);
            }
            for t in 0..T {
                acc[t] = rescale(acc[t], ia[t], ws, *k.dx[t].add(b));
            }
        }
    }
    acc
}

/// 16 f16 values at `p` (one per row: a block's scales) as f32 lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
pub(super) unsafe fn f16x16(p: *const u8) -> __m512 {
    _mm512_cvtph_ps(_mm256_load_si256(p as *const __m256i))
}

/// Steps 2v and 2v + 1 of a nibble vector: low nibbles, high nibbles.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
pub(super) unsafe fn nibbles(v: *const u8) -> (__m512i, __m512i) {
    let m4 = _mm512_set1_epi8(0x0F);
    let n = _mm512_load_si512(v as *const __m512i);
    (_mm512_and_si512(n, m4), _mm512_and_si512(_mm512_srli_epi16::<4>(n), m4))
}

/// Steps 2v and 2v + 1 of the Q5_0 block at `data` as unsigned 5-bit weights: the nibbles, plus
/// 16 where the step's fifth-bit mask says.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
pub(super) unsafe fn q5_0_steps(data: *const u8, v: usize) -> (__m512i, __m512i) {
    let (sixteen, masks) = (_mm512_set1_epi8(16), data.add(256) as *const u64);
    let (lo, hi) = nibbles(data.add(64 * v));
    (
        _mm512_mask_add_epi8(lo, masks.add(2 * v).read(), lo, sixteen),
        _mm512_mask_add_epi8(hi, masks.add(2 * v + 1).read(), hi, sixteen),
    )
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn q5_0<const T: usize>(panel: *const u8, nb: usize, k: &Tokens<T>) -> [__m512; T] {
    let mut acc = [_mm512_setzero_ps(); T];
    for g in 0..nb / 2 {
        let base = panel.add(704 * g);
        prefetch(base, 11);
        for h in 0..2 {
            let b = 2 * g + h;
            let ws = f16x16(base.add(32 * h));
            let data = base.add(64 + 320 * h);
            let mut ia = start::<T>(|t| *k.c[t].add(b));
            for v in 0..4 {
                let (u0, u1) = q5_0_steps(data, v);
                step(&mut ia, 2 * v, u0, k, 32 * b + 8 * v);
                step(&mut ia, 2 * v + 1, u1, k, 32 * b + 8 * v + 4);
            }
            for t in 0..T {
                acc[t] = rescale(acc[t], ia[t], ws, *k.dx[t].add(b));
            }
        }
    }
    acc
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn q4k<const T: usize>(panel: *const u8, nsb: usize, k: &Tokens<T>) -> [__m512; T] {
    let mut acc = [_mm512_setzero_ps(); T];
    let mut macc = [_mm512_setzero_ps(); T];
    for sb in 0..nsb {
        let base = panel.add(2304 * sb);
        let (d, dmin) = (f16x16(base), f16x16(base.add(32)));
        prefetch(base, 4);
        for j in 0..8 {
            let b = 8 * sb + j;
            let (dsc, dm) = q4k_scales(base, (d, dmin), j);
            let data = base.add(256 + 256 * j);
            prefetch(data, 4);
            let mut ia = start::<T>(|_| 0);
            for v in 0..4 {
                let (lo, hi) = nibbles(data.add(64 * v));
                step(&mut ia, 2 * v, lo, k, 32 * b + 8 * v);
                step(&mut ia, 2 * v + 1, hi, k, 32 * b + 8 * v + 4);
            }
            for t in 0..T {
                acc[t] = rescale(acc[t], ia[t], dsc, *k.dx[t].add(b));
                macc[t] = _mm512_fmadd_ps(dm, _mm512_set1_ps(*k.s[t].add(b)), macc[t]);
            }
        }
    }
    for t in 0..T {
        acc[t] = _mm512_sub_ps(acc[t], macc[t]);
    }
    acc
}

/// Sub-block `j`'s `d · sc` and `dmin · m` for the 16 rows of the Q4_K super-block at `base`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
pub(super) unsafe fn q4k_scales(base: *const u8, (d, dmin): (__m512, __m512), j: usize) -> (__m512, __m512) {
    let (sc, m) = scale_min_k4x16(base.add(64), j);
    (_mm512_mul_ps(d, sc), _mm512_mul_ps(dmin, m))
}

/// Sub-block `j`'s 6-bit scale and min of 16 rows as f32 lanes, from the rows' 12 packed Q4_K
/// scale bytes laid out [12][16] at `q` (`blocks::scale_min_k4`, 16 rows at once).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn scale_min_k4x16(q: *const u8, j: usize) -> (__m512, __m512) {
    let byte = |i: usize| _mm_load_si128(q.add(16 * i) as *const __m128i);
    let (m63, m15, m30) = (_mm_set1_epi8(63), _mm_set1_epi8(15), _mm_set1_epi8(0x30));
    let (sc, m) = if j < 4 {
        (_mm_and_si128(byte(j), m63), _mm_and_si128(byte(j + 4), m63))
    } else {
        // (q >> 6) << 4 = (q >> 2) & 0x30; 16-bit shifts, the neighbour byte's bits masked off.
        let sc_hi = _mm_and_si128(_mm_srli_epi16::<2>(byte(j - 4)), m30);
        let m_hi = _mm_and_si128(_mm_srli_epi16::<2>(byte(j)), m30);
        let low = byte(j + 4);
        (
            _mm_or_si128(_mm_and_si128(low, m15), sc_hi),
            _mm_or_si128(_mm_and_si128(_mm_srli_epi16::<4>(low), m15), m_hi),
        )
    };
    let f = |v: __m128i| _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v));
    (f(sc), f(m))
}

/// The high 2 bits of step 4h + `kk` from a Q6_K high-bit vector, at bits 4..5 of each byte
/// (other bits are masked by the caller).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn high2(hv: __m512i, kk: usize) -> __m512i {
    match kk {
        0 => _mm512_slli_epi16::<4>(hv),
        1 => _mm512_slli_epi16::<2>(hv),
        2 => hv,
        _ => _mm512_srli_epi16::<2>(hv),
    }
}

/// 16-weight group `g`'s `d · sc` for the 16 rows of the Q6_K super-block at `base`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
pub(super) unsafe fn q6k_scale(base: *const u8, d: __m512, g: usize) -> __m512 {
    let sc = _mm512_cvtepi8_epi32(_mm_load_si128(base.add(64 + 16 * g) as *const __m128i));
    _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc))
}

/// The Q6_K 32-block at `data`'s high-bit vector `h` (steps 4h..4h + 4).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
pub(super) unsafe fn q6k_high(data: *const u8, h: usize) -> __m512i {
    _mm512_load_si512(data.add(256 + 64 * h) as *const __m512i)
}

/// Steps 2v and 2v + 1 (v in 0..4) of the Q6_K 32-block at `data` as unsigned 6-bit weights: the
/// low nibbles with the high 2 bits from `hv`, its high-bit vector `v / 2` (`q6k_high`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
pub(super) unsafe fn q6k_steps(data: *const u8, hv: __m512i, v: usize) -> (__m512i, __m512i) {
    let m30 = _mm512_set1_epi8(0x30);
    let (lo, hi) = nibbles(data.add(64 * v));
    let kk = 2 * (v % 2);
    (
        _mm512_ternarylogic_epi32::<0xF8>(lo, high2(hv, kk), m30),
        _mm512_ternarylogic_epi32::<0xF8>(hi, high2(hv, kk + 1), m30),
    )
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn q6k<const T: usize>(panel: *const u8, nsb: usize, k: &Tokens<T>) -> [__m512; T] {
    let mut acc = [_mm512_setzero_ps(); T];
    for sb in 0..nsb {
        let base = panel.add(3392 * sb);
        let d = f16x16(base);
        prefetch(base, 5);
        for jb in 0..8 {
            let b = 8 * sb + jb;
            let data = base.add(320 + 384 * jb);
            prefetch(data, 6);
            for gh in 0..2 {
                let dsc = q6k_scale(base, d, 2 * jb + gh);
                let hv = q6k_high(data, gh);
                let mut ia = start::<T>(|t| *k.c[t].add(2 * b + gh));
                for vv in 0..2 {
                    let v = 2 * gh + vv;
                    let (u0, u1) = q6k_steps(data, hv, v);
                    step(&mut ia, 2 * vv, u0, k, 32 * b + 8 * v);
                    step(&mut ia, 2 * vv + 1, u1, k, 32 * b + 8 * v + 4);
                }
                for t in 0..T {
                    acc[t] = rescale(acc[t], ia[t], dsc, *k.dx[t].add(b));
                }
            }
        }
    }
    acc
}
