//! The memory-bandwidth probe: how fast the compute threads read a buffer much larger than the
//! caches, with the widest loads the CPU has. A decode step reads every weight once per token, so
//! this read rate is its ceiling on this machine — measured in the same run as the decode it is
//! compared with (`tandem bench --bandwidth`), not quoted from another CPU.

use std::time::Instant;

use rayon::prelude::*;

use crate::dispatch::Isa;

/// The wrapping sum of `data`: the work the probe times (a sum, so the loads cannot be skipped).
pub fn sum_u64(data: &[u64], isa: Isa) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if isa.avx512() {
        // SAFETY: AVX-512F was detected.
        return unsafe { crate::x86::sum_u64_avx512(data) };
    }
    #[cfg(target_arch = "x86_64")]
    if isa.simd() {
        // SAFETY: AVX2 was detected.
        return unsafe { crate::x86::sum_u64_avx2(data) };
    }
    sum_u64_scalar(data)
}

/// The scalar twin of `sum_u64`.
pub fn sum_u64_scalar(data: &[u64]) -> u64 {
    data.iter().fold(0u64, |a, &x| a.wrapping_add(x))
}

/// Read bandwidth in GB/s (10⁹ bytes): the best of `reps` timed passes over `buf`, split into
/// one contiguous slice per compute thread (run inside the pool, as a forward step is).
pub fn read_gbps(buf: &[u64], reps: usize, isa: Isa) -> f64 {
    let threads = crate::pool::threads().max(1);
    let chunk = buf.len().div_ceil(threads);
    let bytes = std::mem::size_of_val(buf) as f64;
    let mut best = 0f64;
    let mut sink = 0u64;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let s: u64 = crate::pool::install(|| {
            buf.par_chunks(chunk)
                .map(|c| sum_u64(c, isa))
                .reduce(|| 0, u64::wrapping_add)
        });
        let secs = t.elapsed().as_secs_f64();
        sink = sink.wrapping_add(s);
        best = best.max(bytes / secs / 1e9);
    }
    std::hint::black_box(sink);
    best
}

/// A buffer of `bytes` (rounded to whole u64s), every page written so the probe reads memory,
/// not the shared zero page.
pub fn probe_buffer(bytes: usize) -> Vec<u64> {
    (0..bytes / 8).map(|i| i as u64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::Level;

    #[test]
    fn every_isa_sums_like_the_scalar_twin() {
        // Lengths around the vector widths and unrolls, odd tails included.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for n in [0usize, 1, 7, 8, 31, 32, 33, 64, 127, 1000, 4099] {
            let data: Vec<u64> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                })
                .collect();
            let want = sum_u64_scalar(&data);
            for cap in [Level::Scalar, Level::Avx2, Level::Avx512, Level::Avx512Vnni] {
                assert_eq!(sum_u64(&data, Isa::detected().at_most(cap)), want, "n {n}, {cap:?}");
            }
        }
    }

    #[test]
    fn the_probe_reads_the_whole_buffer() {
        let buf = probe_buffer(1 << 20);
        assert_eq!(buf.len(), 1 << 17);
        assert!(read_gbps(&buf, 2, Isa::detected()) > 0.0);
    }
}
