//! The int8 kernels of `int8` on 512-bit registers (AVX-512 BW + VNNI): a pair of 32-blocks per
//! instruction, even block in the low 256 bits, odd block in the high — exactly the contract's two
//! accumulator sets (`crate::q8`), so the results equal the AVX2 kernels' and the scalar twin's
//! bit for bit. VNNI's `vpdpbusd` does the 4-product lane sums in one instruction (AVX2 needs two),
//! and AVX-512BW's byte masks decode Q5_0's fifth bits and apply signs without shuffles.

// Index loops over [row][token] register arrays, as in `int8`.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::int8::{Int8Block, Q4KScales};
use super::{f16, hsum, prefetch_at};
use crate::blocks::{BlockQ4K, BlockQ5_0, BlockQ6K, BlockQ8_0};
use crate::q8::QuantActs;

/// `v` in both 256-bit halves.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
unsafe fn twice(v: __m256i) -> __m512i {
    _mm512_inserti64x4(_mm512_castsi256_si512(v), v, 1)
}

/// 16-bit shift counts: `lo` in the low 256 bits, `hi` in the high.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
unsafe fn shifts(lo: i16, hi: i16) -> __m512i {
    _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(lo)), _mm256_set1_epi16(hi), 1)
}

/// Lanes `2p` (low 8) and `2p + 1` (high 8) of `m`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
unsafe fn lane_pair(m: __m256, p: usize) -> __m512 {
    let (a, b) = (2 * p as i32, 2 * p as i32 + 1);
    let idx = _mm512_setr_epi32(a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b);
    _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(m))
}

/// Lanes 0 and 1 of `m`, each spread over 8 lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
unsafe fn spread2(m: __m128) -> __m512 {
    let idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(m))
}

/// Two f16 block scales as f32 in lanes 0 and 1.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
unsafe fn two_scales(a: [u8; 2], b: [u8; 2]) -> __m128 {
    let bits = u16::from_le_bytes(a) as u32 | (u16::from_le_bytes(b) as u32) << 16;
    _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32))
}

/// A weight type's 512-bit int8 view: groups of `GROUP` blocks decoded together, `PAIRS` pairs of
/// 32-blocks (64 weights) per group.
///
/// Signed weights (`SIGNED`) meet the activations as `q + 128` (unsigned, `QuantActs::qu`), the
/// operand order `vpdpbusd` wants; the `128 · Σw` that adds is known per weight pair and starts
/// the sum negated, so per token one instruction gives the contract's exact lanes.
pub(crate) trait Int8Pairs: Int8Block {
    const GROUP: usize;
    const PAIRS: usize;
    const SIGNED: bool;
    type Scales2: Copy;
    /// A token's activation scales for a group.
    type Token: Copy;
    /// `g` points at the group's `GROUP` blocks.
    unsafe fn scales2(g: *const Self) -> Self::Scales2;
    /// Pair `p`'s 64 integer weights: the even block's 32 in the low half, the odd block's high.
    unsafe fn ints2(g: *const Self, p: usize) -> __m512i;
    /// The weight side of pair `p`'s per-lane multipliers.
    unsafe fn wmult(s: &Self::Scales2, p: usize) -> __m512;
    /// From the token's `GROUP · SUBS` activation scales at `dx`.
    unsafe fn token(dx: *const f32) -> Self::Token;
    /// The token side of pair `p`'s per-lane multipliers (`f = wmult · tmult`).
    unsafe fn tmult(t: &Self::Token, p: usize) -> __m512;
    /// Q4_K's min terms, as `Int8Block::mins`.
    unsafe fn mins2(_s: &Self::Scales2, _sx: *const f32, macc: __m256) -> __m256 {
        macc
    }
}

/// What Q8_0 and Q5_0 share: a pair of blocks per group, one f16 scale per block, signed weights.
macro_rules! one_scale_per_block2 {
    () => {
        const GROUP: usize = 2;
        const PAIRS: usize = 1;
        const SIGNED: bool = true;
        type Scales2 = __m512;
        type Token = __m512;
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
        unsafe fn scales2(g: *const Self) -> __m512 {
            spread2(two_scales((*g).d, (*g.add(1)).d))
        }
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
        unsafe fn wmult(s: &__m512, _p: usize) -> __m512 {
            *s
        }
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
        unsafe fn token(dx: *const f32) -> __m512 {
            spread2(_mm_castsi128_ps(_mm_loadl_epi64(dx as *const __m128i)))
        }
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
        unsafe fn tmult(t: &__m512, _p: usize) -> __m512 {
            *t
        }
    };
}

impl Int8Pairs for BlockQ8_0 {
    one_scale_per_block2!();
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn ints2(g: *const Self, _p: usize) -> __m512i {
        let a = _mm256_loadu_si256((*g).qs.as_ptr() as *const __m256i);
        let b = _mm256_loadu_si256((*g.add(1)).qs.as_ptr() as *const __m256i);
        _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1)
    }
}

impl Int8Pairs for BlockQ5_0 {
    one_scale_per_block2!();
    /// Each block's `qs` in both 128-bit quarters of its half (low nibbles, then high after a
    /// 4-bit shift); the fifth bits of both blocks form one 64-bit byte mask: where a bit is
    /// clear, `q − 16 = nibble − 16`, where set, `q − 16 = nibble`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn ints2(g: *const Self, _p: usize) -> __m512i {
        let (a, b) = (&*g, &*g.add(1));
        let qa = _mm256_broadcastsi128_si256(_mm_loadu_si128(a.qs.as_ptr() as *const __m128i));
        let qb = _mm256_broadcastsi128_si256(_mm_loadu_si128(b.qs.as_ptr() as *const __m128i));
        let both = _mm512_inserti64x4(_mm512_castsi256_si512(qa), qb, 1);
        let by = _mm512_setr_epi64(
            0,
            0,
            0x0004_0004_0004_0004,
            0x0004_0004_0004_0004,
            0,
            0,
            0x0004_0004_0004_0004,
            0x0004_0004_0004_0004,
        );
        let nib = _mm512_and_si512(_mm512_srlv_epi16(both, by), _mm512_set1_epi8(0x0F));
        let high = u32::from_le_bytes(a.qh) as u64 | (u32::from_le_bytes(b.qh) as u64) << 32;
        _mm512_mask_sub_epi8(nib, !high, nib, _mm512_set1_epi8(16))
    }
}

impl Int8Pairs for BlockQ4K {
    const GROUP: usize = 1;
    const PAIRS: usize = 4;
    const SIGNED: bool = false;
    type Scales2 = Q4KScales;
    type Token = __m256;
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn scales2(g: *const Self) -> Q4KScales {
        (*g).scales()
    }
    /// Pair p is run p of `qs`: sub-block 2p in its low nibbles, 2p + 1 in its high.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn ints2(g: *const Self, p: usize) -> __m512i {
        let run = _mm256_loadu_si256((*g).qs.as_ptr().add(32 * p) as *const __m256i);
        _mm512_and_si512(_mm512_srlv_epi16(twice(run), shifts(0, 4)), _mm512_set1_epi8(0x0F))
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn wmult(s: &Q4KScales, p: usize) -> __m512 {
        lane_pair(s.dsc, p)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn token(dx: *const f32) -> __m256 {
        _mm256_loadu_ps(dx)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn tmult(t: &__m256, p: usize) -> __m512 {
        lane_pair(*t, p)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn mins2(s: &Q4KScales, sx: *const f32, macc: __m256) -> __m256 {
        Self::mins(s, sx, macc)
    }
}

impl Int8Pairs for BlockQ6K {
    const GROUP: usize = 1;
    const PAIRS: usize = 4;
    const SIGNED: bool = true;
    /// `d · sc` of the 16 groups of 16 weights.
    type Scales2 = __m512;
    type Token = __m256;
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn scales2(g: *const Self) -> __m512 {
        let sc = _mm512_cvtepi8_epi32(_mm_loadu_si128((*g).scales.as_ptr() as *const __m128i));
        _mm512_mul_ps(_mm512_set1_ps(f16((*g).d)), _mm512_cvtepi32_ps(sc))
    }
    /// Pair p = runs 2p', 2p' + 1 of half p / 2 (p' = p % 2): the low (p' = 0) or high nibbles of
    /// the half's 64 `ql` bytes, and its 32 `qh` bytes shifted by 4p' (first run) and 4p' + 2.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn ints2(g: *const Self, p: usize) -> __m512i {
        let (half, hi) = (p / 2, (p % 2) as i16);
        let m4 = _mm512_set1_epi8(0x0F);
        let ql = _mm512_loadu_si512((*g).ql.as_ptr().add(64 * half) as *const __m512i);
        let low = _mm512_and_si512(_mm512_srlv_epi16(ql, _mm512_set1_epi16(4 * hi)), m4);
        let qh = twice(_mm256_loadu_si256((*g).qh.as_ptr().add(32 * half) as *const __m256i));
        let qh = _mm512_srlv_epi16(qh, shifts(4 * hi, 4 * hi + 2));
        let high = _mm512_slli_epi16(_mm512_and_si512(qh, _mm512_set1_epi8(3)), 4);
        _mm512_sub_epi8(_mm512_or_si512(low, high), _mm512_set1_epi8(32))
    }
    /// Lane l (4 weights) of pair p belongs to the 16 weights with scale 4p + l / 4.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn wmult(s: &__m512, p: usize) -> __m512 {
        let b = 4 * p as i32;
        let idx = _mm512_setr_epi32(
            b,
            b,
            b,
            b,
            b + 1,
            b + 1,
            b + 1,
            b + 1,
            b + 2,
            b + 2,
            b + 2,
            b + 2,
            b + 3,
            b + 3,
            b + 3,
            b + 3,
        );
        _mm512_permutexvar_ps(idx, *s)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn token(dx: *const f32) -> __m256 {
        _mm256_loadu_ps(dx)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn tmult(t: &__m256, p: usize) -> __m512 {
        lane_pair(*t, p)
    }
}

/// As `int8::dot`, two 32-blocks per instruction: `[row][token]`.
///
/// # Safety
/// AVX-512 F, BW and VNNI and the AVX2 set must be available.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn dot<B: Int8Pairs, const R: usize, const T: usize>(
    rows: [&[B]; R],
    acts: &QuantActs,
    t0: usize,
) -> [[f32; T]; R] {
    let nb = rows[0].len();
    let (cols, nsub) = (acts.cols, acts.blocks());
    assert!(rows.iter().all(|r| r.len() == nb) && nb * B::SUBS == nsub && t0 + T <= acts.tokens());
    assert_eq!(acts.qu.len(), acts.qs.len());
    let lines = (B::GROUP * std::mem::size_of::<B>()).div_ceil(64);
    // As in `int8`: fetch the same group of the next R rows while this one computes.
    let ahead = R * nb;
    // Activations as the weights' sign asks: q + 128 against signed weights, q against unsigned.
    let q = if B::SIGNED {
        acts.qu.as_ptr().add(t0 * cols)
    } else {
        acts.qs.as_ptr().add(t0 * cols) as *const u8
    };
    let (d, s) = (acts.d.as_ptr().add(t0 * nsub), acts.s.as_ptr().add(t0 * nsub));
    let zero = _mm512_setzero_si512();
    let mut acc = [[_mm512_setzero_ps(); T]; R];
    let mut macc = [[_mm256_setzero_ps(); T]; R];
    let groups = nb / B::GROUP;
    for g in 0..groups {
        let i = g * B::GROUP;
        let mut sc = [B::scales2(rows[0].as_ptr().add(i)); R];
        for r in 0..R {
            prefetch_at(rows[r].as_ptr().wrapping_add(i + ahead) as *const u8, lines);
            sc[r] = B::scales2(rows[r].as_ptr().add(i));
        }
        let tok: [B::Token; T] = std::array::from_fn(|t| B::token(d.add(t * nsub + i * B::SUBS)));
        if B::MINS {
            for r in 0..R {
                for t in 0..T {
                    macc[r][t] = B::mins2(&sc[r], s.add(t * nsub + i * B::SUBS), macc[r][t]);
                }
            }
        }
        for p in 0..B::PAIRS {
            let e = (i * B::SUBS + 2 * p) * 32;
            let x: [__m512i; T] = std::array::from_fn(|t| _mm512_loadu_si512(q.add(t * cols + e) as *const __m512i));
            let ft: [__m512; T] = std::array::from_fn(|t| B::tmult(&tok[t], p));
            for r in 0..R {
                let w = B::ints2(rows[r].as_ptr().add(i), p);
                let fw = B::wmult(&sc[r], p);
                // −128 · Σ4 w per lane: what the +128 of the activations adds.
                let base = if B::SIGNED {
                    _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, _mm512_set1_epi8(-128), w))
                } else {
                    zero
                };
                for t in 0..T {
                    let l = if B::SIGNED {
                        _mm512_dpbusd_epi32(base, x[t], w)
                    } else {
                        _mm512_dpbusd_epi32(zero, w, x[t])
                    };
                    acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(l), _mm512_mul_ps(fw, ft[t]), acc[r][t]);
                }
            }
        }
    }
    // An odd last 32-block (even index: the low half's set) with the 256-bit kernel.
    if groups * B::GROUP < nb {
        let i = nb - 1;
        let qs = acts.qs.as_ptr().add(t0 * cols);
        for r in 0..R {
            let sc = rows[r][i].scales();
            let w = rows[r][i].ints(0);
            for t in 0..T {
                let x = _mm256_loadu_si256(qs.add(t * cols + i * 32) as *const __m256i);
                let l = _mm256_cvtepi32_ps(B::lanes(&sc, 0, w, x));
                let f = B::mult(&sc, B::mults(&sc, d.add(t * nsub + i)), 0);
                let lo = _mm256_fmadd_ps(l, f, _mm512_castps512_ps256(acc[r][t]));
                acc[r][t] = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(acc[r][t]), _mm256_castps_pd(lo), 0));
            }
        }
    }
    let mut out = [[0f32; T]; R];
    for r in 0..R {
        for t in 0..T {
            let a = acc[r][t];
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(a)));
            let sum = hsum(_mm256_add_ps(_mm512_castps512_ps256(a), hi));
            out[r][t] = if B::MINS { sum - hsum(macc[r][t]) } else { sum };
        }
    }
    out
}
