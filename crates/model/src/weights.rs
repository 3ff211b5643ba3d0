//! Every tensor of the model, located in the mapped file and shape-checked at load.

use std::collections::HashMap;
use std::sync::Arc;

use tandem_gguf::{GgmlType, GgufError, GgufFile};
use tandem_kernels::packed::PackedMatrix;
use tandem_kernels::{scalar, QMatrix};

use crate::{Arch, Config, Result};

/// A weight matrix in the mapped file: `rows` rows of `cols` elements (GGUF dims `[cols, rows]`).
#[derive(Debug, Clone, Copy)]
pub struct MatRef {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    offset: usize,
    len: usize,
}

pub struct Layer {
    pub attn_norm: Vec<f32>, // [dim]
    pub wq: MatRef,          // [n_head*head_dim, dim]
    pub wk: MatRef,          // [kv_dim, dim]
    pub wv: MatRef,          // [kv_dim, dim]
    pub wo: MatRef,          // [dim, n_head*head_dim]
    pub ffn_norm: Vec<f32>,  // [dim]
    pub w_gate: MatRef,      // [ffn_dim, dim]
    pub w_up: MatRef,        // [ffn_dim, dim]
    pub w_down: MatRef,      // [dim, ffn_dim]
    /// Qwen2's q, k, v biases: [n_head*head_dim], [kv_dim], [kv_dim].
    pub bias: Option<[Vec<f32>; 3]>,
    /// Gemma's per-head q and k norms: [head_dim] each.
    pub qk_norm: Option<[Vec<f32>; 2]>,
    /// Gemma's norms of the attention and FFN outputs before the residual add: [dim] each.
    pub post_norm: Option<[Vec<f32>; 2]>,
}

pub struct Weights {
    file: Arc<GgufFile>,
    /// Packed copies for generated tokens' kernels, by tensor offset (`Weights::pack`).
    packed: HashMap<usize, PackedMatrix>,
    pub token_embd: MatRef, // [vocab, dim]
    pub layers: Vec<Layer>,
    pub output_norm: Vec<f32>, // [dim]
    /// [vocab, dim]; the embedding table when the file ties them (no `output.weight`).
    pub output: MatRef,
}

impl Weights {
    /// Bytes of weights one decoded token reads: every matrix except the embedding table (one row
    /// of it). Decode is memory-bound, so this sets a model's decode cost against another's.
    pub fn decode_bytes(&self) -> usize {
        self.token_mats().map(|m| m.len).sum()
    }

    /// Every matrix a token multiplies: the layers' and the output's (tied to the embedding
    /// table or not).
    fn token_mats(&self) -> impl Iterator<Item = MatRef> + '_ {
        let layer = |l: &Layer| [l.wq, l.wk, l.wv, l.wo, l.w_gate, l.w_up, l.w_down];
        self.layers.iter().flat_map(layer).chain([self.output])
    }

    pub fn load(file: &Arc<GgufFile>, c: &Config) -> Result<Self> {
        let f = file.as_ref();
        let (dim, vocab) = (c.dim as u64, c.vocab as u64);
        let layers = (0..c.n_layer)
            .map(|i| load_layer(f, c, i))
            .collect::<Result<Vec<_>>>()?;
        let token_embd = mat(f, "token_embd.weight", dim, vocab)?;
        let output = match f.tensor("output.weight") {
            Some(_) => mat(f, "output.weight", dim, vocab)?,
            None => token_embd,
        };
        let output_norm = vector(f, "output_norm.weight", dim)?;
        // Every matrix must have whole blocks per row (the reader checked the tensor as a whole).
        for m in [token_embd, output] {
            if m.ty.bytes_for(m.cols as u64).is_none() {
                return Err(GgufError::BadTensor {
                    name: "token_embd.weight".into(),
                    problem: "rows are not whole blocks".into(),
                }
                .into());
            }
        }
        Ok(Self {
            file: file.clone(),
            packed: HashMap::new(),
            token_embd,
            layers,
            output_norm,
            output,
        })
    }

    pub fn mat(&self, m: &MatRef) -> QMatrix<'_> {
        let data = self
            .file
            .slice(m.offset, m.len)
            .expect("tensor bounds checked at parse");
        let q = QMatrix::new(m.ty, m.rows, m.cols, data).expect("shape checked at load");
        match self.packed.get(&m.offset) {
            Some(p) => q.with_packed(p),
            None => q,
        }
    }

    /// Packs every matrix a generated token multiplies (the layers' and the output's) whose type
    /// and shape have a packed layout; returns the bytes the copies hold.
    pub fn pack(&mut self) -> usize {
        let mut mats: Vec<MatRef> = self.token_mats().collect();
        // Largest first: while a matrix is packed both copies are resident, so the peak is the
        // packed total plus the largest matrix packed after most of the rest, not the output's
        // 2 × 138 MiB (mini) on top of everything else.
        mats.sort_by_key(|m| std::cmp::Reverse(m.len));
        for m in mats {
            if self.packed.contains_key(&m.offset) {
                continue;
            }
            if let Some(p) = PackedMatrix::pack(&self.mat(&m)) {
                self.packed.insert(m.offset, p);
                // The copy replaces the mapped rows (every matmul path reads the panels), except
                // a tied embedding table, whose rows the token lookup still reads.
                if m.offset != self.token_embd.offset {
                    self.file.release(m.offset, m.len);
                }
            }
        }
        self.packed.values().map(PackedMatrix::bytes).sum()
    }
}

/// The matrix `name` with GGUF dims [cols, rows], located and shape-checked.
fn mat(f: &GgufFile, name: &str, cols: u64, rows: u64) -> Result<MatRef> {
    let t = f.tensor_with_dims(name, &[cols, rows])?;
    Ok(MatRef {
        ty: t.ty,
        rows: rows as usize,
        cols: cols as usize,
        offset: t.offset as usize,
        len: t.n_bytes as usize,
    })
}

/// The vector `name` of `n` elements, dequantised.
fn vector(f: &GgufFile, name: &str, n: u64) -> Result<Vec<f32>> {
    let t = f.tensor_with_dims(name, &[n])?;
    let mut out = vec![0f32; n as usize];
    scalar::dequantize_row(t.ty, f.data(t), &mut out);
    Ok(out)
}

/// Layer `i`'s tensors (`blk.{i}.…`), with the architecture's extras.
fn load_layer(f: &GgufFile, c: &Config, i: usize) -> Result<Layer> {
    let (dim, qd, kvd, ffn, hd) = (
        c.dim as u64,
        (c.n_head * c.head_dim) as u64,
        c.kv_dim() as u64,
        c.ffn_dim as u64,
        c.head_dim as u64,
    );
    let n = |s: &str| format!("blk.{i}.{s}");
    let (mat, vec) = (
        |s: &str, cols, rows| mat(f, &n(s), cols, rows),
        |s: &str, len| vector(f, &n(s), len),
    );
    let gemma = c.arch == Arch::Gemma3;
    Ok(Layer {
        attn_norm: vec("attn_norm.weight", dim)?,
        wq: mat("attn_q.weight", dim, qd)?,
        wk: mat("attn_k.weight", dim, kvd)?,
        wv: mat("attn_v.weight", dim, kvd)?,
        wo: mat("attn_output.weight", qd, dim)?,
        ffn_norm: vec("ffn_norm.weight", dim)?,
        w_gate: mat("ffn_gate.weight", dim, ffn)?,
        w_up: mat("ffn_up.weight", dim, ffn)?,
        w_down: mat("ffn_down.weight", ffn, dim)?,
        bias: match gemma {
            true => None,
            false => Some([
                vec("attn_q.bias", qd)?,
                vec("attn_k.bias", kvd)?,
                vec("attn_v.bias", kvd)?,
            ]),
        },
        qk_norm: match gemma {
            true => Some([vec("attn_q_norm.weight", hd)?, vec("attn_k_norm.weight", hd)?]),
            false => None,
        },
        post_norm: match gemma {
            true => Some([
                vec("post_attention_norm.weight", dim)?,
                vec("post_ffw_norm.weight", dim)?,
            ]),
            false => None,
        },
    })
}
