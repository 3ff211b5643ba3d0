//! Streaming reads for the bandwidth probe (`crate::bandwidth`): sums of u64 words with the
//! widest loads into four independent accumulators, so the adds never wait on each other and the
//! loads are the limit.

use std::arch::x86_64::*;

/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn sum_u64_avx512(data: &[u64]) -> u64 {
    // Four streams, one per quarter of the slice: a core's prefetchers follow several sequential
    // streams at once, and one stream alone leaves bandwidth unused.
    let quarter = data.len() / 32 * 8;
    let mut acc = [_mm512_setzero_si512(); 4];
    let p = data.as_ptr();
    let mut i = 0;
    while i < quarter {
        // SAFETY: i + 8 <= quarter, so every load stays inside its quarter of `data`.
        for (k, a) in acc.iter_mut().enumerate() {
            *a = _mm512_add_epi64(*a, _mm512_loadu_si512(p.add(k * quarter + i).cast()));
        }
        i += 8;
    }
    let v = _mm512_add_epi64(_mm512_add_epi64(acc[0], acc[1]), _mm512_add_epi64(acc[2], acc[3]));
    let s = _mm512_reduce_add_epi64(v) as u64;
    data[4 * quarter..].iter().fold(s, |a, &x| a.wrapping_add(x))
}

/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn sum_u64_avx2(data: &[u64]) -> u64 {
    // Four streams, as `sum_u64_avx512`.
    let quarter = data.len() / 16 * 4;
    let mut acc = [_mm256_setzero_si256(); 4];
    let p = data.as_ptr();
    let mut i = 0;
    while i < quarter {
        // SAFETY: i + 4 <= quarter, so every load stays inside its quarter of `data`.
        for (k, a) in acc.iter_mut().enumerate() {
            *a = _mm256_add_epi64(*a, _mm256_loadu_si256(p.add(k * quarter + i).cast()));
        }
        i += 4;
    }
    let v = _mm256_add_epi64(_mm256_add_epi64(acc[0], acc[1]), _mm256_add_epi64(acc[2], acc[3]));
    let mut lanes = [0u64; 4];
    _mm256_storeu_si256(lanes.as_mut_ptr().cast(), v);
    let s = lanes.iter().fold(0u64, |a, &x| a.wrapping_add(x));
    data[4 * quarter..].iter().fold(s, |a, &x| a.wrapping_add(x))
}
