//! Convolutions over channels-last (NHWC, one image) feature maps, as image classifiers use them:
//! TensorFlow's "SAME" padding, im2col for a full convolution (then a matmul), a depthwise
//! convolution that runs along the channels (contiguous, so the compiler vectorises the inner
//! loop), and ReLU6. Pointwise (1×1) convolutions are matmuls over [h·w, c] and need nothing here.

use rayon::prelude::*;

/// TensorFlow's "SAME": output `ceil(n / s)`, padding `max((out − 1)·s + k − n, 0)` split with
/// the smaller half before. Returns (output size, padding before).
pub fn same_padding(n: usize, k: usize, s: usize) -> (usize, usize) {
    let out = n.div_ceil(s);
    let total = ((out - 1) * s + k).saturating_sub(n);
    (out, total / 2)
}

/// A feature map's geometry: height, width, channels (data is [h][w][c]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Shape {
    pub fn len(&self) -> usize {
        self.h * self.w * self.c
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The output geometry of a k×k, stride-s SAME convolution with `c_out` channels.
pub fn conv_shape(x: Shape, k: usize, s: usize, c_out: usize) -> Shape {
    Shape {
        h: same_padding(x.h, k, s).0,
        w: same_padding(x.w, k, s).0,
        c: c_out,
    }
}

/// The taps of a k×k, stride-s window at output (oy, ox) that fall inside the image (padding
/// (top, left) before it): (ky·k + kx, iy·w + ix).
fn window(
    xs: Shape,
    k: usize,
    s: usize,
    (pt, pl): (usize, usize),
    (oy, ox): (usize, usize),
) -> impl Iterator<Item = (usize, usize)> {
    (0..k)
        .flat_map(move |ky| (0..k).map(move |kx| (ky, kx)))
        .filter_map(move |(ky, kx)| {
            let iy = (oy * s + ky).checked_sub(pt).filter(|&y| y < xs.h)?;
            let ix = (ox * s + kx).checked_sub(pl).filter(|&x| x < xs.w)?;
            Some((ky * k + kx, iy * xs.w + ix))
        })
}

/// im2col for a k×k, stride-s SAME convolution: out[oy·ow + ox][(ky·k + kx)·c + ci] (zeros where
/// the window leaves the image), so a [c_out, k·k·c] weight matrix in (ky, kx, ci) order makes the
/// convolution one matmul.
pub fn im2col(x: &[f32], xs: Shape, k: usize, s: usize, out: &mut Vec<f32>) {
    let (oh, pt) = same_padding(xs.h, k, s);
    let (ow, pl) = same_padding(xs.w, k, s);
    let cols = k * k * xs.c;
    out.clear();
    out.resize(oh * ow * cols, 0.0);
    out.par_chunks_mut(ow * cols).enumerate().for_each(|(oy, row)| {
        for ox in 0..ow {
            let dst = &mut row[ox * cols..(ox + 1) * cols];
            for (tap, px) in window(xs, k, s, (pt, pl), (oy, ox)) {
                dst[tap * xs.c..][..xs.c].copy_from_slice(&x[px * xs.c..][..xs.c]);
            }
        }
    });
}

/// A depthwise k×k, stride-s SAME convolution with a bias: w is [k·k][c] (tap-major, channels
/// contiguous), b is [c].
pub struct Depthwise {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub k: usize,
    pub stride: usize,
}

impl Depthwise {
    /// x: [h, w, c] → [h', w', c]; `relu6` clamps the result to [0, 6]. Rows run in parallel.
    pub fn apply(&self, x: &[f32], xs: Shape, relu6: bool, out: &mut Vec<f32>) {
        let (c, k, s) = (xs.c, self.k, self.stride);
        assert_eq!(
            (x.len(), self.w.len(), self.b.len()),
            (xs.len(), k * k * c, c),
            "depthwise sizes"
        );
        let (oh, pt) = same_padding(xs.h, k, s);
        let (ow, pl) = same_padding(xs.w, k, s);
        out.clear();
        out.resize(oh * ow * c, 0.0);
        out.par_chunks_mut(ow * c).enumerate().for_each(|(oy, row)| {
            for ox in 0..ow {
                let acc = &mut row[ox * c..(ox + 1) * c];
                acc.copy_from_slice(&self.b);
                for (tap, px) in window(xs, k, s, (pt, pl), (oy, ox)) {
                    let (src, w) = (&x[px * c..][..c], &self.w[tap * c..][..c]);
                    for ((a, v), t) in acc.iter_mut().zip(src).zip(w) {
                        *a += v * t;
                    }
                }
                if relu6 {
                    acc.iter_mut().for_each(|a| *a = a.clamp(0.0, 6.0));
                }
            }
        });
    }
}

/// Clamps to [0, 6] (NaN stays NaN: a corrupt input is not hidden).
pub fn relu6(x: &mut [f32]) {
    x.iter_mut().for_each(|a| *a = a.clamp(0.0, 6.0));
}

/// The mean over positions: [h·w, c] → [c].
pub fn global_average(x: &[f32], c: usize) -> Vec<f32> {
    let n = x.len() / c;
    let mut sum = vec![0f64; c];
    for px in x.chunks_exact(c) {
        sum.iter_mut().zip(px).for_each(|(s, v)| *s += *v as f64);
    }
    sum.into_iter().map(|s| (s / n as f64) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tensorflow() {
        assert_eq!(same_padding(224, 3, 2), (112, 0)); // (0, 1): the extra row after
        assert_eq!(same_padding(56, 5, 2), (28, 1)); // (1, 2)
        assert_eq!(same_padding(14, 5, 1), (14, 2));
        assert_eq!(same_padding(7, 3, 1), (7, 1));
        assert_eq!(same_padding(1, 3, 2), (1, 1));
    }

    /// The depthwise kernel against a direct loop over an explicitly padded input.
    #[test]
    fn depthwise_equals_the_definition() {
        let xs = Shape { h: 7, w: 6, c: 5 };
        let x: Vec<f32> = (0..xs.len()).map(|i| ((i * 37 % 19) as f32 - 9.0) / 7.0).collect();
        for (k, s) in [(3, 1), (3, 2), (5, 1), (5, 2)] {
            let w: Vec<f32> = (0..k * k * xs.c).map(|i| ((i * 13 % 11) as f32 - 5.0) / 9.0).collect();
            let b: Vec<f32> = (0..xs.c).map(|i| i as f32 * 0.1).collect();
            let mut got = Vec::new();
            let f = Depthwise {
                w: w.clone(),
                b: b.clone(),
                k,
                stride: s,
            };
            f.apply(&x, xs, false, &mut got);
            let (oh, pt) = same_padding(xs.h, k, s);
            let (ow, pl) = same_padding(xs.w, k, s);
            for oy in 0..oh {
                for ox in 0..ow {
                    for ch in 0..xs.c {
                        let mut want = b[ch] as f64;
                        for ky in 0..k {
                            for kx in 0..k {
                                let (iy, ix) = (
                                    (oy * s + ky) as isize - pt as isize,
                                    (ox * s + kx) as isize - pl as isize,
                                );
                                if iy >= 0 && ix >= 0 && (iy as usize) < xs.h && (ix as usize) < xs.w {
                                    let v = x[((iy as usize) * xs.w + ix as usize) * xs.c + ch] as f64;
                                    want += v * w[(ky * k + kx) * xs.c + ch] as f64;
                                }
                            }
                        }
                        let g = got[(oy * ow + ox) * xs.c + ch] as f64;
                        assert!((g - want).abs() < 1e-5, "k{k} s{s} ({oy},{ox},{ch}): {g} vs {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn im2col_windows_hold_the_pixels() {
        let xs = Shape { h: 5, w: 4, c: 2 };
        let x: Vec<f32> = (0..xs.len()).map(|i| i as f32 + 1.0).collect();
        let mut cols = Vec::new();
        im2col(&x, xs, 3, 2, &mut cols);
        let (oh, pt) = same_padding(5, 3, 2);
        let (ow, pl) = same_padding(4, 3, 2);
        assert_eq!(cols.len(), oh * ow * 18);
        // Output (1, 1) reads rows 2..5 - pt, columns 2..5 - pl.
        let win = &cols[(ow + 1) * 18..(ow + 2) * 18];
        for ky in 0..3 {
            for kx in 0..3 {
                let (iy, ix) = (2 + ky - pt, 2 + kx - pl);
                let want = if iy < 5 && ix < 4 { x[(iy * 4 + ix) * 2] } else { 0.0 };
                assert_eq!(win[(ky * 3 + kx) * 2], want);
            }
        }
    }
}
