//! The encoder's weights, read from a safetensors file (F32) and checked against the config:
//! matrices as the kernels take them (rows of `cols` f32, PyTorch's `[out, in]` layout), vectors
//! as f32.

use safetensors::{Dtype, SafeTensors};
use tandem_kernels::{GgmlType, QMatrix};

use crate::{EmbedError, Result};

/// BERT's shape (from `config.json`).
#[derive(Debug, Clone, Copy)]
pub struct BertConfig {
    pub vocab: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub ffn: usize,
    pub max_positions: usize,
    pub eps: f32,
}

impl BertConfig {
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| EmbedError::Format(format!("config.json: {e}")))?;
        let n = |k: &str| {
            v[k].as_u64()
                .filter(|&x| x > 0 && x < 1 << 20)
                .map(|x| x as usize)
                .ok_or_else(|| EmbedError::Format(format!("config.json: no usable {k}")))
        };
        if v["hidden_act"] != "gelu" || v["position_embedding_type"] != "absolute" {
            return Err(EmbedError::Format(
                "config.json: not a BERT with gelu and absolute positions".into(),
            ));
        }
        let c = Self {
            vocab: n("vocab_size")?,
            hidden: n("hidden_size")?,
            layers: n("num_hidden_layers")?,
            heads: n("num_attention_heads")?,
            ffn: n("intermediate_size")?,
            max_positions: n("max_position_embeddings")?,
            eps: v["layer_norm_eps"].as_f64().unwrap_or(1e-12) as f32,
        };
        if !c.hidden.is_multiple_of(c.heads) {
            return Err(EmbedError::Format(
                "config.json: hidden_size is not a multiple of the heads".into(),
            ));
        }
        Ok(c)
    }
}

/// A weight matrix: `rows × cols` f32, row-major, as little-endian bytes (what `QMatrix` views).
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    bytes: Vec<u8>,
}

impl Matrix {
    pub fn view(&self) -> QMatrix<'_> {
        QMatrix::new(GgmlType::F32, self.rows, self.cols, &self.bytes).expect("sizes checked at load")
    }
}

/// A linear layer: y = x·Wᵀ + b.
pub struct Linear {
    pub w: Matrix,
    pub b: Vec<f32>,
}

pub struct Norm {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
}

pub struct Layer {
    /// Query, key and value stacked: [3·hidden, hidden].
    pub qkv: Linear,
    pub attn_out: Linear,
    pub attn_norm: Norm,
    pub up: Linear,
    pub down: Linear,
    pub out_norm: Norm,
}

pub struct Weights {
    /// [vocab, hidden], [max_positions, hidden], [hidden] (token type 0).
    pub words: Vec<f32>,
    pub positions: Vec<f32>,
    pub token_type: Vec<f32>,
    pub emb_norm: Norm,
    pub layers: Vec<Layer>,
}

struct File<'a>(SafeTensors<'a>);

impl File<'_> {
    /// The tensor's f32 values, checked to have `shape`.
    fn f32s(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self
            .0
            .tensor(name)
            .map_err(|_| EmbedError::Format(format!("no tensor {name}")))?;
        if t.dtype() != Dtype::F32 || t.shape() != shape {
            return Err(EmbedError::Format(format!(
                "{name} is {:?} {:?}, expected F32 {shape:?}",
                t.dtype(),
                t.shape()
            )));
        }
        Ok(t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn linear(&self, name: &str, rows: usize, cols: usize) -> Result<Linear> {
        let w = self.f32s(&format!("{name}.weight"), &[rows, cols])?;
        Ok(Linear {
            w: matrix(rows, cols, &w),
            b: self.f32s(&format!("{name}.bias"), &[rows])?,
        })
    }

    fn norm(&self, name: &str, n: usize) -> Result<Norm> {
        Ok(Norm {
            w: self.f32s(&format!("{name}.weight"), &[n])?,
            b: self.f32s(&format!("{name}.bias"), &[n])?,
        })
    }
}

fn matrix(rows: usize, cols: usize, w: &[f32]) -> Matrix {
    Matrix {
        rows,
        cols,
        bytes: w.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

impl Weights {
    /// Reads a BERT's weights (names as `BertModel` saves them) from safetensors bytes.
    pub fn read(bytes: &[u8], c: &BertConfig) -> Result<Self> {
        let f = File(SafeTensors::deserialize(bytes).map_err(|e| EmbedError::Format(format!("safetensors: {e}")))?);
        let h = c.hidden;
        let layers = (0..c.layers)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                let (q, k, v) = (
                    f.linear(&format!("{p}.attention.self.query"), h, h)?,
                    f.linear(&format!("{p}.attention.self.key"), h, h)?,
                    f.linear(&format!("{p}.attention.self.value"), h, h)?,
                );
                let stacked: Vec<u8> = [&q.w.bytes[..], &k.w.bytes[..], &v.w.bytes[..]].concat();
                Ok(Layer {
                    qkv: Linear {
                        w: Matrix {
                            rows: 3 * h,
                            cols: h,
                            bytes: stacked,
                        },
                        b: [q.b, k.b, v.b].concat(),
                    },
                    attn_out: f.linear(&format!("{p}.attention.output.dense"), h, h)?,
                    attn_norm: f.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                    up: f.linear(&format!("{p}.intermediate.dense"), c.ffn, h)?,
                    down: f.linear(&format!("{p}.output.dense"), h, c.ffn)?,
                    out_norm: f.norm(&format!("{p}.output.LayerNorm"), h)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let token_types = f.f32s("embeddings.token_type_embeddings.weight", &[2, h])?;
        Ok(Self {
            words: f.f32s("embeddings.word_embeddings.weight", &[c.vocab, h])?,
            positions: f.f32s("embeddings.position_embeddings.weight", &[c.max_positions, h])?,
            token_type: token_types[..h].to_vec(),
            emb_norm: f.norm("embeddings.LayerNorm", h)?,
            layers,
        })
    }
}
