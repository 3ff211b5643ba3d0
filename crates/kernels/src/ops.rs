//! Small f32 vector operations of the forward pass, with SIMD paths where they pay (each takes
//! the `Isa` to run at; the `_scalar` twins are the references).

use crate::dispatch::Isa;

/// out = x / sqrt(mean(x²) + eps) * w          (x, w, out: [n])
pub fn rms_norm(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let ss = x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / x.len() as f64;
    let scale = (1.0 / (ss + eps as f64).sqrt()) as f32;
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * g;
    }
}

/// In-place softmax over `x` (vector exp where the CPU has AVX2).
pub fn softmax(x: &mut [f32], isa: Isa) {
    #[cfg(target_arch = "x86_64")]
    if isa.simd() {
        // SAFETY: AVX2, FMA and F16C were detected.
        return unsafe { crate::x86::softmax(x) };
    }
    softmax_scalar(x)
}

/// The scalar twin of `softmax`.
pub fn softmax_scalar(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// gate = silu(gate) * up = gate * sigmoid(gate) * up       (gate, up: [n]), vector exp where
/// the CPU has AVX2.
pub fn swiglu(gate: &mut [f32], up: &[f32], isa: Isa) {
    #[cfg(target_arch = "x86_64")]
    if isa.simd() {
        // SAFETY: AVX2, FMA and F16C were detected; the kernel asserts the lengths.
        return unsafe { crate::x86::swiglu(gate, up) };
    }
    swiglu_scalar(gate, up)
}

/// gate ← gelu_tanh(gate) · up (Gemma's GeGLU, the tanh approximation of GELU:
/// x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))). Scalar only: Gemma's FFN is small.
pub fn geglu_tanh(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len());
    const C: f32 = 0.797_884_6; // √(2/π)
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        *g = 0.5 * x * (1.0 + (C * (x + 0.044715 * x * x * x)).tanh()) * u;
    }
}

/// The scalar twin of `swiglu`.
pub fn swiglu_scalar(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// y += a · x
pub fn axpy(a: f32, x: &[f32], y: &mut [f32], isa: Isa) {
    assert_eq!(x.len(), y.len());
    #[cfg(target_arch = "x86_64")]
    if isa.simd() && x.len().is_multiple_of(8) {
        // SAFETY: features detected; equal lengths, multiple of 8.
        return unsafe { crate::x86::axpy(a, x, y) };
    }
    for (o, &v) in y.iter_mut().zip(x) {
        *o += a * v;
    }
}

/// x += y
pub fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Rotary embedding, NEOX layout (HF `rotate_half`): dims i and i + d/2 form a pair rotated by
/// `pos · θ_i`, θ_i = base^(−2i/d). `head: [d]`; `cos`/`sin`: [d/2] for this position.
pub fn rope_neox(head: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = head.len() / 2;
    for i in 0..half {
        let (a, b) = (head[i], head[i + half]);
        head[i] = a * cos[i] - b * sin[i];
        head[i + half] = a * sin[i] + b * cos[i];
    }
}

/// f32 → f16 bits, round to nearest even (F16C's and `half`'s rounding agree).
pub fn to_f16(src: &[f32], dst: &mut [u16], isa: Isa) {
    assert_eq!(src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    if isa.simd() && src.len().is_multiple_of(8) {
        // SAFETY: features detected; equal lengths, multiple of 8.
        return unsafe { crate::x86::to_f16(src, dst) };
    }
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = half::f16::from_f32(x).to_bits();
    }
}

/// `Σ q[i] · k[i]` with `k` in f16.
pub fn dot_f16(q: &[f32], k: &[u16], isa: Isa) -> f32 {
    assert_eq!(q.len(), k.len());
    #[cfg(target_arch = "x86_64")]
    if isa.simd() && q.len().is_multiple_of(8) {
        // SAFETY: features detected; equal lengths, multiple of 8.
        return unsafe { crate::x86::dot_f16(q, k) };
    }
    q.iter()
        .zip(k)
        .map(|(&a, &b)| a * half::f16::from_bits(b).to_f32())
        .sum()
}

/// `y += a · x` with `x` in f16.
pub fn axpy_f16(a: f32, x: &[u16], y: &mut [f32], isa: Isa) {
    assert_eq!(x.len(), y.len());
    #[cfg(target_arch = "x86_64")]
    if isa.simd() && x.len().is_multiple_of(8) {
        // SAFETY: features detected; equal lengths, multiple of 8.
        return unsafe { crate::x86::axpy_f16(a, x, y) };
    }
    for (o, &v) in y.iter_mut().zip(x) {
        *o += a * half::f16::from_bits(v).to_f32();
    }
}

/// `out[j] += Σ_p probs[j·ld + p] · v[p]` in position order for a group of `g` heads (bit-identical
/// to `axpy_f16` per head and position). probs: head j's row at `j · ld` (ld ≥ n); out: [g, hd];
/// row p of v at `p · stride`. Calls over consecutive runs of positions add up to one call over
/// all of them bit for bit (each element's FMAs stay in position order). `next`: the rows the
/// caller reads next (the following block), fetched into cache meanwhile (a hint).
#[allow(clippy::too_many_arguments)]
pub fn attend_f16(
    probs: &[f32],
    g: usize,
    n: usize,
    ld: usize,
    v: &[u16],
    next: &[u16],
    stride: usize,
    hd: usize,
    out: &mut [f32],
    isa: Isa,
) {
    assert_eq!(out.len(), g * hd);
    #[cfg(target_arch = "x86_64")]
    if isa.avx512() && hd.is_multiple_of(32) {
        use crate::x86::attend::attend_f16_512 as a;
        // SAFETY: AVX-512F and the AVX2 set detected; the kernel asserts the shapes.
        unsafe { by_group!(g, a(probs, n, ld, v, next.as_ptr(), stride, hd, out)) }
    }
    #[cfg(target_arch = "x86_64")]
    if isa.simd() && hd.is_multiple_of(16) {
        use crate::x86::attend::attend_f16 as a;
        // SAFETY: features detected; the kernel asserts the shapes.
        unsafe { by_group!(g, a(probs, n, ld, v, next.as_ptr(), stride, hd, out)) }
    }
    for p in 0..n {
        for j in 0..g {
            axpy_f16(
                probs[j * ld + p],
                &v[p * stride..p * stride + hd],
                &mut out[j * hd..(j + 1) * hd],
                isa,
            );
        }
    }
}

/// `gelu` over a slice, 8 lanes at a time where AVX2 runs (the vector exp: within a few ulp of
/// the scalar twin `gelu`).
pub fn gelu_slice(x: &mut [f32], isa: Isa) {
    #[cfg(target_arch = "x86_64")]
    if isa.simd() {
        // SAFETY: AVX2, FMA and F16C were detected.
        return unsafe { crate::x86::gelu(x) };
    }
    x.iter_mut().for_each(|v| *v = gelu(*v));
}

/// GELU with erf, as BERT and Whisper define it: x/2 · (1 + erf(x/√2)).
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf by Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7, below f32's resolution of GELU's
/// outputs); Rust's std has no erf.
pub fn erf(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t * (0.254_829_6 + t * (-0.284_496_72 + t * (1.421_413_8 + t * (-1.453_152_1 + t * 1.061_405_4))));
    (1.0 - poly * (-x * x).exp()).copysign(x)
}

#[cfg(test)]
mod tests {
    #[test]
    fn gelu_slice_tracks_the_scalar_twin() {
        let mut x: Vec<f32> = (0..2003).map(|i| (i as f32 - 1000.0) / 97.0).collect();
        x.extend([0.0, -0.0, 1e-8, -1e-8, 30.0, -30.0, 100.0, -100.0]);
        let want: Vec<f32> = x.iter().map(|&v| super::gelu(v)).collect();
        super::gelu_slice(&mut x, crate::Isa::detected());
        for (g, w) in x.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{g} vs {w}");
        }
    }

    #[test]
    fn erf_matches_known_values() {
        for (x, want) in [
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (-2.0, -0.995_322_3),
        ] {
            assert!((super::erf(x) - want).abs() < 3e-7, "erf({x}) = {}", super::erf(x));
        }
    }
}
