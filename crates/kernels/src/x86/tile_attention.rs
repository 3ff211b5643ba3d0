//! AVX-512 register tiles of `crate::attention::prompt_tile`: scores for 8 query rows × 32
//! positions per pass (16 accumulators; each key vector serves 8 rows), exponentials 16 at a time,
//! sums for 6 rows (head size 64) or 3 rows (128) × the whole head (24 accumulators; each value
//! row serves them all). Lanes are positions (scores) or head dimensions (sums), so each lane is
//! one chain of the contract.

// Index loops over [row][vector] register arrays.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

/// # Safety
/// AVX-512F and the AVX2 set must be available; lengths as `attention::prompt_tile` checks, and
/// `hd` is 64 or 128.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub unsafe fn prompt_tile(
    q: &[f32],
    hd: usize,
    limits: &[usize],
    keys_t: &[f32],
    ld: usize,
    values: &[f32],
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let nq = limits.len();
    let (kt, s) = (keys_t.as_ptr(), scores.as_mut_ptr());
    let mut i = 0;
    while i < nq {
        let r = match nq - i {
            8.. => 8,
            4..=7 => 4,
            2..=3 => 2,
            _ => 1,
        };
        let npos = crate::attention::keys_ld(limits[i..i + r].iter().copied().max().unwrap_or(0));
        let (qi, si) = (q.as_ptr().add(i * hd), s.add(i * ld));
        match r {
            8 => score_rows::<8>(qi, hd, kt, ld, npos, scale, si),
            4 => score_rows::<4>(qi, hd, kt, ld, npos, scale, si),
            2 => score_rows::<2>(qi, hd, kt, ld, npos, scale, si),
            _ => score_rows::<1>(qi, hd, kt, ld, npos, scale, si),
        }
        i += r;
    }
    let mut inv = [0f32; 8];
    let (s, v, o) = (scores.as_mut_ptr(), values.as_ptr(), out.as_mut_ptr());
    let mut i = 0;
    while i < nq {
        // Exponentials of up to 8 rows, then their sums, while the rows are in cache.
        let r = (nq - i).min(8);
        for (k, inv) in inv[..r].iter_mut().enumerate() {
            *inv = 1.0 / exp_row(s.add((i + k) * ld), limits[i + k], 1.0);
        }
        let mut k = 0;
        while k < r {
            let lims = &limits[i + k..i + r];
            let (si, oi, inv) = (s.add((i + k) * ld), o.add((i + k) * hd), &inv[k..r]);
            k += match (hd, r - k) {
                (64, 6..) => sum_rows::<6, 4>(si, ld, lims, inv, v, oi),
                (64, 4..) => sum_rows::<4, 4>(si, ld, lims, inv, v, oi),
                (64, 2..) => sum_rows::<2, 4>(si, ld, lims, inv, v, oi),
                (64, _) => sum_rows::<1, 4>(si, ld, lims, inv, v, oi),
                (_, 3..) => sum_rows::<3, 8>(si, ld, lims, inv, v, oi),
                (_, 2..) => sum_rows::<2, 8>(si, ld, lims, inv, v, oi),
                _ => sum_rows::<1, 8>(si, ld, lims, inv, v, oi),
            };
        }
        i += r;
    }
}

/// `x[p] = e^(x[p]·scale − max)` for `p < n` (max over the scaled values); returns `Σ x[p]` (16
/// lane sums, then their sum).
///
/// # Safety
/// AVX-512F and the AVX2 set must be available; `x` valid for `n` floats.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub unsafe fn exp_row(x: *mut f32, n: usize, scale: f32) -> f32 {
    let sc = _mm512_set1_ps(scale);
    let tail = |p: usize| -> __mmask16 {
        if p + 16 <= n {
            0xFFFF
        } else {
            (1u32 << (n - p)) as u16 - 1
        }
    };
    let mut m = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut p = 0;
    while p < n {
        m = _mm512_mask_max_ps(
            m,
            tail(p),
            m,
            _mm512_mul_ps(_mm512_maskz_loadu_ps(tail(p), x.add(p)), sc),
        );
        p += 16;
    }
    let m = _mm512_set1_ps(_mm512_reduce_max_ps(m));
    let mut sum = _mm512_setzero_ps();
    let mut p = 0;
    while p < n {
        let k = tail(p);
        let e = exp16(_mm512_sub_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, x.add(p)), sc), m));
        _mm512_mask_storeu_ps(x.add(p), k, e);
        sum = _mm512_mask_add_ps(sum, k, sum, e);
        p += 16;
    }
    _mm512_reduce_add_ps(sum)
}

/// e^x on 16 lanes: `x86::exp8`'s scheme (range reduction by ln 2, degree-6 polynomial),
/// operation for operation, so each lane equals `exp8`'s.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn exp16(x: __m512) -> __m512 {
    let x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3)), _mm512_set1_ps(88.3));
    let fx = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(_mm512_fmadd_ps(
        x,
        _mm512_set1_ps(std::f32::consts::LOG2_E),
        _mm512_set1_ps(0.5),
    ));
    let x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693_359_4), x);
    let x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.121_944_4e-4), x);
    let z = _mm512_mul_ps(x, x);
    let mut y = _mm512_set1_ps(1.987_569_1e-4);
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(c));
    }
    y = _mm512_fmadd_ps(y, z, _mm512_add_ps(x, _mm512_set1_ps(1.0)));
    let pow2n = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
        _mm512_cvtps_epi32(fx),
        _mm512_set1_epi32(127),
    )));
    _mm512_mul_ps(y, pow2n)
}

/// Scores of `R` query rows (q: [R, hd] from `q`) for positions `0..npos` (a multiple of 16):
/// `s[r·ld + p] = (Σ_d q[r][d] · K[p][d]) · scale`, K in panels (`attention::key_at`).
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn score_rows<const R: usize>(
    q: *const f32,
    hd: usize,
    kt: *const f32,
    ld: usize,
    npos: usize,
    scale: f32,
    s: *mut f32,
) {
    let sc = _mm512_set1_ps(scale);
    let mut p = 0;
    while p < npos {
        // Two vectors of positions while there are, then one.
        let two = p + 32 <= npos;
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        // The panel of positions p..p + 16: [hd][16]; the next one follows it.
        let panel = kt.add(p * hd);
        for d in 0..hd {
            let k0 = _mm512_loadu_ps(panel.add(16 * d));
            let k1 = if two {
                _mm512_loadu_ps(panel.add(16 * (hd + d)))
            } else {
                k0
            };
            for r in 0..R {
                let qv = _mm512_set1_ps(*q.add(r * hd + d));
                acc[r][0] = _mm512_fmadd_ps(qv, k0, acc[r][0]);
                if two {
                    acc[r][1] = _mm512_fmadd_ps(qv, k1, acc[r][1]);
                }
            }
        }
        for r in 0..R {
            _mm512_storeu_ps(s.add(r * ld + p), _mm512_mul_ps(acc[r][0], sc));
            if two {
                _mm512_storeu_ps(s.add(r * ld + p + 16), _mm512_mul_ps(acc[r][1], sc));
            }
        }
        p += if two { 32 } else { 16 };
    }
}

/// `o[r·hd + d] = (Σ_{p < lims[r]} e[r·ld + p] · v[p·hd + d]) · inv[r]` for `R` rows (e: the
/// exponentials, inv: 1 / their sums), head size `16·V`; positions all rows see first, then each
/// row's own tail. Returns `R`.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn sum_rows<const R: usize, const V: usize>(
    s: *const f32,
    ld: usize,
    lims: &[usize],
    inv: &[f32],
    v: *const f32,
    o: *mut f32,
) -> usize {
    let hd = 16 * V;
    let common = lims[..R].iter().copied().min().unwrap_or(0);
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for p in 0..common {
        let vr: [__m512; V] = std::array::from_fn(|c| _mm512_loadu_ps(v.add(p * hd + 16 * c)));
        for r in 0..R {
            let b = _mm512_set1_ps(*s.add(r * ld + p));
            for c in 0..V {
                acc[r][c] = _mm512_fmadd_ps(b, vr[c], acc[r][c]);
            }
        }
    }
    for r in 0..R {
        for p in common..lims[r] {
            let b = _mm512_set1_ps(*s.add(r * ld + p));
            for c in 0..V {
                acc[r][c] = _mm512_fmadd_ps(b, _mm512_loadu_ps(v.add(p * hd + 16 * c)), acc[r][c]);
            }
        }
        let scale = _mm512_set1_ps(inv[r]);
        for c in 0..V {
            _mm512_storeu_ps(o.add(r * hd + 16 * c), _mm512_mul_ps(acc[r][c], scale));
        }
    }
    R
}
