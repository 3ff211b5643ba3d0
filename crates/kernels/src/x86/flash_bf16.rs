//! AVX-512 BF16 kernel of `crate::flash`: one block of positions for one group of `R` query rows
//! (head size `16·V`). Scores (f32) run the block's positions × R rows in one pass (each key
//! vector serves the R rows), the softmax update 16 positions per vector, and the sums keep the group's R × V
//! output vectors in registers while the block's value pairs pass (each serving R rows).
//! Lanes are positions (scores) or dims (sums), so each lane is one chain of the contract.

// Index loops over [row][vector] register arrays.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use std::f32::consts::LOG2_E;

use crate::flash::{rescale, Block, State, BLOCK, EXP2_POLY};

/// A u32 lane array as the BF16 pair type.
#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn bh(x: __m512i) -> __m512bh {
    std::mem::transmute(x)
}

/// Lanes below `n - p` set (all 16 where `p + 16 <= n`).
#[inline]
fn tail(p: usize, n: usize) -> __mmask16 {
    if p + 16 <= n {
        0xFFFF
    } else if p >= n {
        0
    } else {
        (1u32 << (n - p)) as u16 - 1
    }
}

/// # Safety
/// AVX-512F, BW and BF16 must be available; `b` and `st` as `flash::prompt_flash` builds them
/// (R rows, head size 16·V, tiles covering every position a row sees).
#[target_feature(enable = "avx512f,avx512bw,avx512bf16,avx2,fma,f16c")]
pub(crate) unsafe fn block_update<const R: usize, const V: usize>(b: &Block, st: State) {
    debug_assert!(b.seen.len() == R && b.q.len() == R * 16 * V && b.hd == 16 * V);
    debug_assert!(st.s.len() >= R * BLOCK && st.e.len() >= R * BLOCK / 2);
    debug_assert!(st.o.len() == R * 16 * V && st.zl.len() == R * 16 && st.m.len() == R);
    let reach = b.seen[..R].iter().copied().max().unwrap_or(0);
    scores::<R, V>(b, reach.next_multiple_of(16), st.s.as_mut_ptr());
    let mut alpha = [1f32; R];
    for r in 0..R {
        let (s, e) = (st.s.as_ptr().add(r * BLOCK), st.e.as_mut_ptr().add(r * BLOCK / 2));
        if b.seen[r] == 0 {
            std::ptr::write_bytes(e, 0, BLOCK / 2);
            continue;
        }
        alpha[r] = softmax_step(s, b.seen[r], &mut st.m[r], st.zl.as_mut_ptr().add(16 * r), e);
    }
    sums::<R, V>(b, reach.div_ceil(2), &alpha, st.e.as_ptr(), st.o.as_mut_ptr());
}

/// `s[r·BLOCK + p] = dot(q_r, K_p) · scale` for p < npos (a multiple of 16, at most `BLOCK`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16,avx2,fma,f16c")]
unsafe fn scores<const R: usize, const V: usize>(b: &Block, npos: usize, s: *mut f32) {
    match npos / 16 {
        4 => score_panels::<R, V, 4>(b, s),
        3 => score_panels::<R, V, 3>(b, s),
        2 => score_panels::<R, V, 2>(b, s),
        _ => score_panels::<R, V, 1>(b, s),
    }
}

/// Scores of R rows over `P` panels of 16 positions: per dim, the R query values are broadcast
/// once and each of the P key vectors serves all R rows (R × P accumulators, each one FMA chain
/// over d in order, as `tile_attention::score_rows`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16,avx2,fma,f16c")]
unsafe fn score_panels<const R: usize, const V: usize, const P: usize>(b: &Block, s: *mut f32) {
    let hd = 16 * V;
    let (kt, q) = (b.keys.as_ptr(), b.q.as_ptr());
    let mut acc = [[_mm512_setzero_ps(); P]; R];
    for d in 0..hd {
        let qv: [__m512; R] = std::array::from_fn(|r| _mm512_set1_ps(*q.add(r * hd + d)));
        for c in 0..P {
            let key = _mm512_loadu_ps(kt.add(16 * (c * hd + d)));
            for r in 0..R {
                acc[r][c] = _mm512_fmadd_ps(qv[r], key, acc[r][c]);
            }
        }
    }
    let sc = _mm512_set1_ps(b.scale);
    for r in 0..R {
        for c in 0..P {
            _mm512_storeu_ps(s.add(r * BLOCK + 16 * c), _mm512_mul_ps(acc[r][c], sc));
        }
    }
}

/// One row's softmax update over its `seen` scores at `s`: the new max into `m`, E pairs of the
/// block into `e` (zero from `seen` on), lane sums `zl` rescaled and added to. Returns α.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16,avx2,fma,f16c")]
unsafe fn softmax_step(s: *const f32, seen: usize, m: &mut f32, zl: *mut f32, e: *mut u32) -> f32 {
    let mut mx = _mm512_set1_ps(f32::NEG_INFINITY);
    for p in (0..seen).step_by(16) {
        let k = tail(p, seen);
        mx = _mm512_mask_max_ps(mx, k, mx, _mm512_maskz_loadu_ps(k, s.add(p)));
    }
    let new = m.max(_mm512_reduce_max_ps(mx));
    let alpha = rescale(*m, new);
    *m = new;
    let ml = _mm512_set1_ps(new * LOG2_E);
    let mut z = _mm512_mul_ps(_mm512_loadu_ps(zl), _mm512_set1_ps(alpha));
    for w in 0..BLOCK / 32 {
        let [e0, e1] = std::array::from_fn(|h| {
            let (p, k) = (32 * w + 16 * h, tail(32 * w + 16 * h, seen));
            if k == 0 {
                return _mm512_setzero_ps();
            }
            let x = _mm512_maskz_mov_ps(
                k,
                exp2(_mm512_fmsub_ps(_mm512_loadu_ps(s.add(p)), _mm512_set1_ps(LOG2_E), ml)),
            );
            z = _mm512_add_ps(z, x);
            x
        });
        _mm512_storeu_si512(
            e.add(16 * w) as *mut __m512i,
            std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(e1, e0)),
        );
    }
    _mm512_storeu_ps(zl, z);
    alpha
}

/// 2^t on 16 lanes: `flash::exp2`'s steps (nearest integer n, a degree-5 polynomial of t − n,
/// scaled by 2^n in one rounding).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16,avx2,fma,f16c")]
unsafe fn exp2(t: __m512) -> __m512 {
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
    let f = _mm512_sub_ps(t, n);
    let mut y = _mm512_set1_ps(EXP2_POLY[0]);
    for &c in &EXP2_POLY[1..] {
        y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(c));
    }
    _mm512_scalef_ps(y, n)
}

/// O_r ← O_r·α_r, then O_r += Σ_j E pair (r, j) · V pair j over `npairs` position pairs.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16,avx2,fma,f16c")]
unsafe fn sums<const R: usize, const V: usize>(b: &Block, npairs: usize, alpha: &[f32; R], e: *const u32, o: *mut f32) {
    let hd = 16 * V;
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for r in 0..R {
        let a = _mm512_set1_ps(alpha[r]);
        for c in 0..V {
            acc[r][c] = _mm512_mul_ps(_mm512_loadu_ps(o.add(r * hd + 16 * c)), a);
        }
    }
    let vt = b.values.as_ptr();
    for j in 0..npairs {
        let v: [__m512bh; V] =
            std::array::from_fn(|c| bh(_mm512_loadu_si512(vt.add(c * b.col_stride + 16 * j) as *const __m512i)));
        for r in 0..R {
            let eb = bh(_mm512_set1_epi32(*e.add(r * BLOCK / 2 + j) as i32));
            for c in 0..V {
                acc[r][c] = _mm512_dpbf16_ps(acc[r][c], v[c], eb);
            }
        }
    }
    for r in 0..R {
        for c in 0..V {
            _mm512_storeu_ps(o.add(r * hd + 16 * c), acc[r][c]);
        }
    }
}
