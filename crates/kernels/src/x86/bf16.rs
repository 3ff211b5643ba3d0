//! f32 → bf16 packing for the AMX prompt path, AVX-512. Rounding is `scalar::bf16`'s (to nearest
//! even, by integer arithmetic on the bits) for every finite value, so the packed operands equal
//! the scalar twin's bit for bit.

use std::arch::x86_64::*;

/// 16 floats → 16 bf16 (in the low halves of 16 u32 lanes), rounded to nearest even.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn round16(x: __m512) -> __m512i {
    let b = _mm512_castps_si512(x);
    let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(1));
    _mm512_srli_epi32::<16>(_mm512_add_epi32(b, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff))))
}

/// Lanes j = bf16(a[j]) | bf16(b[j]) << 16 (a bf16 pair of two rows).
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn pair16_regs(a: __m512, b: __m512) -> __m512i {
    _mm512_or_si512(
        _mm512_and_si512(round16(a), _mm512_set1_epi32(0xFFFF)),
        _mm512_slli_epi32::<16>(round16(b)),
    )
}

/// 32 floats → 16 u32 lanes, lane p = bf16(x[2p]) | bf16(x[2p + 1]) << 16 (a bf16 pair).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn pairs32(x: *const f32) -> __m512i {
    let lo = _mm512_cvtepi32_epi16(round16(_mm512_loadu_ps(x)));
    let hi = _mm512_cvtepi32_epi16(round16(_mm512_loadu_ps(x.add(16))));
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
}

/// `dst[i] = bf16(src[i])`; lengths equal.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub unsafe fn to_bf16(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len());
    let n = src.len() / 16 * 16;
    for i in (0..n).step_by(16) {
        let v = _mm512_cvtepi32_epi16(round16(_mm512_loadu_ps(src.as_ptr().add(i))));
        _mm256_storeu_si256(dst.as_mut_ptr().add(i) as *mut __m256i, v);
    }
    for i in n..src.len() {
        dst[i] = crate::scalar::bf16(src[i]);
    }
}

/// One k-step of a weight tile in the B-operand layout: `rows` are 16 rows of f32 at a stride of
/// `stride` floats, 32 columns each; `out` gets 16 k-pairs × 16 rows of bf16 pairs (1 KiB), pair
/// p of row r at u32 `16·p + r` — a 16×16 transpose of the rows' pairs.
///
/// # Safety
/// AVX-512F must be available; `rows` valid for 16 rows of 32 floats at `stride`, `out` for 256 u32.
#[target_feature(enable = "avx512f")]
pub unsafe fn tile_pairs(rows: *const f32, stride: usize, out: *mut u32) {
    let r: [__m512i; 16] = std::array::from_fn(|i| pairs32(rows.add(i * stride)));
    // Stage 1: 32-bit interleave of row pairs; stage 2: 64-bit interleave. Then u[4g + c], 128-bit
    // lane k, holds rows 4g..4g+4 at column 4k + c.
    let t: [__m512i; 16] = std::array::from_fn(|i| {
        let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi32(a, b)
        } else {
            _mm512_unpackhi_epi32(a, b)
        }
    });
    let u: [__m512i; 16] = std::array::from_fn(|i| {
        let (g, c) = (i / 4, i % 4);
        let (a, b) = (t[4 * g + c / 2], t[4 * g + c / 2 + 2]);
        if c % 2 == 0 {
            _mm512_unpacklo_epi64(a, b)
        } else {
            _mm512_unpackhi_epi64(a, b)
        }
    });
    // Stage 3: a 4×4 transpose of 128-bit lanes: column 4k + c = [u[c].k, u[4+c].k, u[8+c].k, u[12+c].k].
    for c in 0..4 {
        let (a, b, cc, d) = (u[c], u[4 + c], u[8 + c], u[12 + c]);
        let v0 = _mm512_shuffle_i32x4::<0b10_00_10_00>(a, b);
        let v1 = _mm512_shuffle_i32x4::<0b11_01_11_01>(a, b);
        let v2 = _mm512_shuffle_i32x4::<0b10_00_10_00>(cc, d);
        let v3 = _mm512_shuffle_i32x4::<0b11_01_11_01>(cc, d);
        let cols = [
            _mm512_shuffle_i32x4::<0b10_00_10_00>(v0, v2),
            _mm512_shuffle_i32x4::<0b10_00_10_00>(v1, v3),
            _mm512_shuffle_i32x4::<0b11_01_11_01>(v0, v2),
            _mm512_shuffle_i32x4::<0b11_01_11_01>(v1, v3),
        ];
        for (k, v) in cols.into_iter().enumerate() {
            _mm512_storeu_si512(out.add(16 * (4 * k + c)) as *mut __m512i, v);
        }
    }
}

/// The AVX-512 BF16 twin of `amx::block_2x2` for CPUs without AMX: 8 tokens × 32 weight rows over
/// `chunk` k-steps, `vdpbf16ps` (16 lanes, each adding a bf16 pair's two products in f32).
///
/// - `a`: token 0 of the 8 in packed step tile 0; step s's tile is `256·s` u32 further on, token
///   i's 16 k-pairs at `16·i` within it (the packed layout [16 tokens][16 pairs]).
/// - `b[i]`: weight tile i (rows 16·i..16·i+16), `chunk` consecutive [16 pairs][16 rows] tiles.
/// - `c`: 8 tokens × 32 f32 (row 16·i + r at column 16·i + r), loaded first when `accumulate`.
///
/// # Safety
/// AVX-512F and AVX-512 BF16 must be available; pointers valid for what is described.
#[target_feature(enable = "avx512f,avx512bf16")]
pub unsafe fn block_dot_8x32(a: *const u32, b: [*const u32; 2], chunk: usize, c: *mut f32, accumulate: bool) {
    let mut acc = [[_mm512_setzero_ps(); 2]; 8];
    if accumulate {
        for (t, a) in acc.iter_mut().enumerate() {
            a[0] = _mm512_loadu_ps(c.add(32 * t));
            a[1] = _mm512_loadu_ps(c.add(32 * t + 16));
        }
    }
    for s in 0..chunk {
        let (ap, b0, b1) = (a.add(256 * s), b[0].add(256 * s), b[1].add(256 * s));
        for p in 0..16 {
            let w0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b0.add(16 * p) as *const __m512i));
            let w1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b1.add(16 * p) as *const __m512i));
            for (t, a) in acc.iter_mut().enumerate() {
                let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ap.add(16 * t + p) as i32));
                a[0] = _mm512_dpbf16_ps(a[0], w0, x);
                a[1] = _mm512_dpbf16_ps(a[1], w1, x);
            }
        }
    }
    for (t, a) in acc.iter().enumerate() {
        _mm512_storeu_ps(c.add(32 * t), a[0]);
        _mm512_storeu_ps(c.add(32 * t + 16), a[1]);
    }
}
