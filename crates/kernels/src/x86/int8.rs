//! Generated tokens' int8 kernels (AVX2): activations rounded to int8 once per matmul
//! (`quantize`), then per 32 weights one integer multiply-add of the weights' own integers with
//! the token's (`vpmaddubsw` + `vpmaddwd`: 8 lanes of 4 products each), one conversion and one FMA.
//! The float work per weight drops ~4× against the f32 kernels (`rows`), which is what bounds
//! decoding on few cores. Every output follows the contract in `crate::q8` and equals the scalar
//! twin `q8::dot_scalar` bit for bit, whatever the number of rows and tokens per call.

use std::arch::x86_64::*;

use super::{f16, hsum, prefetch_at, weights};
use crate::blocks::{Block, BlockQ4K, BlockQ5_0, BlockQ6K, BlockQ8_0};
use crate::q8::QuantActs;

/// Rounds `x` to int8 blocks of 32 (`qs`, and `qu = q + 128`), with each block's scale `d` and `s = d · Σq`;
/// bit-identical to `q8::quantize_scalar`.
///
/// # Safety
/// AVX2, FMA and F16C must be available.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn quantize(x: &[f32], qs: &mut [i8], qu: &mut [u8], d: &mut [f32], s: &mut [f32]) {
    let nb = x.len() / 32;
    assert!(x.len() == nb * 32 && qs.len() == x.len() && qu.len() == x.len() && d.len() == nb && s.len() == nb);
    let sign = _mm256_set1_ps(-0.0);
    let (lo, hi) = (_mm256_set1_epi32(-127), _mm256_set1_epi32(127));
    for b in 0..nb {
        let p = x.as_ptr().add(32 * b);
        let v = [0, 8, 16, 24].map(|o| _mm256_loadu_ps(p.add(o)));
        let m = v
            .iter()
            .fold(_mm256_setzero_ps(), |m, &v| _mm256_max_ps(m, _mm256_andnot_ps(sign, v)));
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps(m, m, 1)));
        let id = _mm256_set1_ps(if amax > 0.0 { 127.0 / amax } else { 0.0 });
        let q = v.map(|v| {
            let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(v, id));
            _mm256_max_epi32(_mm256_min_epi32(_mm256_cvtps_epi32(r), hi), lo)
        });
        let sum = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        let sum = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        let sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0b01_00_11_10));
        let sum = _mm_cvtsi128_si32(_mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0b10_11_00_01)));
        // packs work within 128-bit halves: dword k of the packed bytes holds elements
        // [4·(k/4)… of group k % 4]; put the groups back in element order.
        let packed = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        let ordered = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(qs.as_mut_ptr().add(32 * b) as *mut __m256i, ordered);
        let offset = _mm256_xor_si256(ordered, _mm256_set1_epi8(-128));
        _mm256_storeu_si256(qu.as_mut_ptr().add(32 * b) as *mut __m256i, offset);
        let db = amax / 127.0;
        d[b] = db;
        s[b] = db * sum as f32;
    }
}

/// 8 lanes of `Σ_{4 bytes} w·x`, `w` unsigned (≤ 63 here, so no 16-bit saturation).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn lanes_unsigned(w: __m256i, x: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1))
}

/// 8 lanes of `Σ_{4 bytes} w·x`, `w` signed: |w| times x with w's sign (|w| ≤ 128, |x| ≤ 127: the
/// 16-bit pair sums stay below 2¹⁵).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn lanes_signed(w: __m256i, x: __m256i) -> __m256i {
    lanes_unsigned(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w))
}

/// Lane `j` of `v` in every lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn lane(v: __m256, j: usize) -> __m256 {
    _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(j as i32))
}

/// A weight block's int8 view. A block holds `SUBS` sub-blocks of 32 weights.
pub(crate) trait Int8Block: Block {
    const SUBS: usize;
    /// Whether the block has a min term (`w = a·q − m`), summed apart with the activations' `s`.
    const MINS: bool;
    /// The block's scales, decoded once and shared by its sub-blocks and every token.
    type Scales: Copy;
    unsafe fn scales(&self) -> Self::Scales;
    /// Sub-block `j`'s 32 integer weights in element order.
    unsafe fn ints(&self, j: usize) -> __m256i;
    /// The 8 integer lanes of sub-block `j` (`w = ints(j)`) against 32 activations.
    unsafe fn lanes(s: &Self::Scales, j: usize, w: __m256i, x: __m256i) -> __m256i;
    /// A token's float multipliers for the block, from its `SUBS` activation scales at `dx`.
    unsafe fn mults(s: &Self::Scales, dx: *const f32) -> __m256;
    /// Sub-block `j`'s multiplier for each lane.
    unsafe fn mult(s: &Self::Scales, m: __m256, j: usize) -> __m256;
    /// Adds the block's min terms for a token with activation sums `sx` to `macc`.
    unsafe fn mins(_s: &Self::Scales, _sx: *const f32, macc: __m256) -> __m256 {
        macc
    }
}

/// What Q8_0 and Q5_0 share: one f16 scale per 32 signed weights (`w = d · q`).
macro_rules! one_scale_per_block {
    () => {
        const SUBS: usize = 1;
        const MINS: bool = false;
        type Scales = f32;
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn scales(&self) -> f32 {
            f16(self.d)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn lanes(_s: &f32, _j: usize, w: __m256i, x: __m256i) -> __m256i {
            lanes_signed(w, x)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn mults(s: &f32, dx: *const f32) -> __m256 {
            _mm256_set1_ps(*s * *dx)
        }
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn mult(_s: &f32, m: __m256, _j: usize) -> __m256 {
            m
        }
    };
}

impl Int8Block for BlockQ8_0 {
    one_scale_per_block!();
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn ints(&self, _j: usize) -> __m256i {
        _mm256_loadu_si256(self.qs.as_ptr() as *const __m256i)
    }
}

impl Int8Block for BlockQ5_0 {
    one_scale_per_block!();
    /// `q − 16`: low nibbles of `qs` are elements 0..16, high nibbles 16..32; bit e of `qh` is
    /// element e's fifth bit (spread to bytes: byte e takes qh's byte e/8, then tests bit e % 8).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn ints(&self, _j: usize) -> __m256i {
        let m4 = _mm_set1_epi8(0x0F);
        let qs = _mm_loadu_si128(self.qs.as_ptr() as *const __m128i);
        let nib = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(qs, 4), m4), _mm_and_si128(qs, m4));
        let qh = _mm256_set1_epi32(u32::from_le_bytes(self.qh) as i32);
        let spread = _mm256_shuffle_epi8(
            qh,
            _mm256_setr_epi64x(0, 0x0101_0101_0101_0101, 0x0202_0202_0202_0202, 0x0303_0303_0303_0303),
        );
        let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
        let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
        let q = _mm256_or_si256(nib, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
        _mm256_sub_epi8(q, _mm256_set1_epi8(16))
    }
}

/// Q4_K scales: `d·sc[j]` and `dmin·m[j]` for the 8 sub-blocks.
#[derive(Clone, Copy)]
pub(crate) struct Q4KScales {
    pub(crate) dsc: __m256,
    dm: __m256,
}

impl Int8Block for BlockQ4K {
    const SUBS: usize = 8;
    const MINS: bool = true;
    type Scales = Q4KScales;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn scales(&self) -> Q4KScales {
        let (dsc, dm) = weights::q4k_scales_v(self);
        Q4KScales { dsc, dm }
    }
    /// Run j/2 of `qs` holds sub-block j in its low (j even) or high (j odd) nibbles.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn ints(&self, j: usize) -> __m256i {
        let q = _mm256_loadu_si256(self.qs.as_ptr().add(32 * (j / 2)) as *const __m256i);
        let q = if j.is_multiple_of(2) {
            q
        } else {
            _mm256_srli_epi16(q, 4)
        };
        _mm256_and_si256(q, _mm256_set1_epi8(0x0F))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn lanes(_s: &Q4KScales, _j: usize, w: __m256i, x: __m256i) -> __m256i {
        lanes_unsigned(w, x)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn mults(s: &Q4KScales, dx: *const f32) -> __m256 {
        _mm256_mul_ps(s.dsc, _mm256_loadu_ps(dx))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn mult(_s: &Q4KScales, m: __m256, j: usize) -> __m256 {
        lane(m, j)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn mins(s: &Q4KScales, sx: *const f32, macc: __m256) -> __m256 {
        _mm256_fmadd_ps(s.dm, _mm256_loadu_ps(sx), macc)
    }
}

/// Q6_K scales: `d · sc` for the 16 groups of 16 weights, as two 8-lane vectors (halves of the block).
#[derive(Clone, Copy)]
pub(crate) struct Q6KScales {
    scf: [__m256; 2],
}

impl Int8Block for BlockQ6K {
    const SUBS: usize = 8;
    const MINS: bool = false;
    type Scales = Q6KScales;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn scales(&self) -> Q6KScales {
        let d = _mm256_set1_ps(f16(self.d));
        let half = |h: usize| {
            let sc = _mm_loadl_epi64(self.scales.as_ptr().add(8 * h) as *const __m128i);
            _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)))
        };
        Q6KScales {
            scf: [half(0), half(1)],
        }
    }
    /// `q − 32` of run j (elements 32j..32j+32): 4 low bits from `ql` (runs 0, 1 of each half
    /// the low nibbles of its two 32-byte rows, runs 2, 3 the high), 2 high bits from `qh`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn ints(&self, j: usize) -> __m256i {
        let (half, r) = (j / 4, j % 4);
        let m4 = _mm256_set1_epi8(0x0F);
        let ql = _mm256_loadu_si256(self.ql.as_ptr().add(64 * half + 32 * (r % 2)) as *const __m256i);
        let low = if r < 2 {
            _mm256_and_si256(ql, m4)
        } else {
            _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4)
        };
        let qh = _mm256_loadu_si256(self.qh.as_ptr().add(32 * half) as *const __m256i);
        let qh = match r {
            0 => qh,
            1 => _mm256_srli_epi16(qh, 2),
            2 => _mm256_srli_epi16(qh, 4),
            _ => _mm256_srli_epi16(qh, 6),
        };
        let high = _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(3)), 4);
        _mm256_sub_epi8(_mm256_or_si256(low, high), _mm256_set1_epi8(32))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn lanes(_s: &Q6KScales, _j: usize, w: __m256i, x: __m256i) -> __m256i {
        lanes_signed(w, x)
    }
    /// The token's 8 run scales.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn mults(_s: &Q6KScales, dx: *const f32) -> __m256 {
        _mm256_loadu_ps(dx)
    }
    /// Lanes 0..4 are the run's first 16 weights (scale 2j), lanes 4..8 the next 16 (2j + 1).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn mult(s: &Q6KScales, m: __m256, j: usize) -> __m256 {
        let a = 2 * (j % 4) as i32;
        let idx = _mm256_setr_epi32(a, a, a, a, a + 1, a + 1, a + 1, a + 1);
        _mm256_mul_ps(_mm256_permutevar8x32_ps(s.scf[j / 4], idx), lane(m, j))
    }
}

/// `R` rows dotted with tokens `t0..t0 + T` of `acts`, each block's weights decoded once for all
/// tokens. Per (row, token) the operations are the contract's, in its order: `[row][token]`.
///
/// # Safety
/// AVX2, FMA and F16C must be available.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot<B: Int8Block, const R: usize, const T: usize>(
    rows: [&[B]; R],
    acts: &QuantActs,
    t0: usize,
) -> [[f32; T]; R] {
    let nb = rows[0].len();
    let (cols, nsub) = (acts.cols, acts.blocks());
    assert!(rows.iter().all(|r| r.len() == nb) && nb * B::SUBS == nsub && t0 + T <= acts.tokens());
    let lines = std::mem::size_of::<B>().div_ceil(64);
    // As in `rows`: fetch the same block of the next R rows while this one computes.
    let ahead = R * nb;
    let (q, d, s) = (
        acts.qs.as_ptr().add(t0 * cols),
        acts.d.as_ptr().add(t0 * nsub),
        acts.s.as_ptr().add(t0 * nsub),
    );
    // [row][token][block parity]
    let mut acc = [[[_mm256_setzero_ps(); 2]; T]; R];
    let mut macc = [[_mm256_setzero_ps(); T]; R];
    for i in 0..nb {
        let mut sc = [rows[0][i].scales(); R];
        for r in 0..R {
            prefetch_at(rows[r].as_ptr().wrapping_add(i + ahead) as *const u8, lines);
            sc[r] = rows[r][i].scales();
        }
        let mut m = [[_mm256_setzero_ps(); T]; R];
        for r in 0..R {
            for t in 0..T {
                let sub = t * nsub + i * B::SUBS;
                m[r][t] = B::mults(&sc[r], d.add(sub));
                if B::MINS {
                    macc[r][t] = B::mins(&sc[r], s.add(sub), macc[r][t]);
                }
            }
        }
        for j in 0..B::SUBS {
            let e = (i * B::SUBS + j) * 32;
            for r in 0..R {
                let w = rows[r][i].ints(j);
                for t in 0..T {
                    let x = _mm256_loadu_si256(q.add(t * cols + e) as *const __m256i);
                    let l = _mm256_cvtepi32_ps(B::lanes(&sc[r], j, w, x));
                    let a = &mut acc[r][t][(i * B::SUBS + j) % 2];
                    *a = _mm256_fmadd_ps(l, B::mult(&sc[r], m[r][t], j), *a);
                }
            }
        }
    }
    let mut out = [[0f32; T]; R];
    for r in 0..R {
        for t in 0..T {
            let sum = hsum(_mm256_add_ps(acc[r][t][0], acc[r][t][1]));
            out[r][t] = if B::MINS { sum - hsum(macc[r][t]) } else { sum };
        }
    }
    out
}
