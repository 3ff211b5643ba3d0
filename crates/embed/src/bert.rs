//! BERT's encoder over a batch of sequences, then sentence-transformers' pooling: the mean of each
//! sequence's final hidden states, L2-normalised. Sequences are not padded: their tokens are laid
//! end to end ([n, hidden], n = Σ lengths), the linear layers run over all of them at once (each
//! weight read once per batch) and attention runs per sequence and head.

use rayon::prelude::*;
use tandem_kernels::matmul_prompt;
use tandem_kernels::ops::gelu_slice;
use tandem_kernels::Isa;

use crate::weights::{BertConfig, Linear, Norm, Weights};

/// Sentence embeddings of `seqs` (token ids, `[CLS] … [SEP]`, each within `max_positions`):
/// one L2-normalised vector of `hidden` per sequence.
pub fn embed(w: &Weights, c: &BertConfig, seqs: &[Vec<u32>]) -> Vec<Vec<f32>> {
    let h = c.hidden;
    let starts: Vec<usize> = seqs
        .iter()
        .scan(0, |at, s| {
            let start = *at;
            *at += s.len();
            Some(start)
        })
        .collect();
    let n: usize = seqs.iter().map(Vec::len).sum();
    let mut x = vec![0f32; n * h];
    for (s, seq) in seqs.iter().enumerate() {
        for (p, &tok) in seq.iter().enumerate() {
            let row = &mut x[(starts[s] + p) * h..][..h];
            let word = &w.words[tok as usize * h..][..h];
            let pos = &w.positions[p * h..][..h];
            for i in 0..h {
                row[i] = word[i] + pos[i] + w.token_type[i];
            }
        }
    }
    layer_norm(&mut x, &w.emb_norm, c.eps);
    let spans: Vec<(usize, usize)> = starts.iter().zip(seqs).map(|(&a, s)| (a, s.len())).collect();
    for layer in &w.layers {
        let qkv = linear(&layer.qkv, &x);
        let ctx = attention(&qkv, &spans, c);
        add_assign(&mut x, &linear(&layer.attn_out, &ctx));
        layer_norm(&mut x, &layer.attn_norm, c.eps);
        let mut up = linear(&layer.up, &x);
        up.par_chunks_mut(c.ffn).for_each(|x| gelu_slice(x, Isa::detected()));
        add_assign(&mut x, &linear(&layer.down, &up));
        layer_norm(&mut x, &layer.out_norm, c.eps);
    }
    spans
        .iter()
        .map(|&(a, len)| mean_normalised(&x[a * h..(a + len) * h], h))
        .collect()
}

/// y = x·Wᵀ + b over every row of x ([n, cols] → [n, rows]).
fn linear(l: &Linear, x: &[f32]) -> Vec<f32> {
    let m = l.w.view();
    let n = x.len() / m.cols;
    let mut y = vec![0f32; n * m.rows];
    matmul_prompt(&m, x, &mut y, tandem_kernels::process_choice());
    for row in y.chunks_exact_mut(m.rows) {
        add_assign(row, &l.b);
    }
    y
}

/// Scaled dot-product attention of each sequence over itself (no mask: nothing is padded).
/// qkv: [n, 3·hidden] (queries, keys, values); returns the context: [n, hidden].
fn attention(qkv: &[f32], spans: &[(usize, usize)], c: &BertConfig) -> Vec<f32> {
    let (h, heads) = (c.hidden, c.heads);
    let hd = h / heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let tasks: Vec<(usize, usize)> = (0..spans.len())
        .flat_map(|s| (0..heads).map(move |hh| (s, hh)))
        .collect();
    // Each task: one sequence's context for one head, [len, hd].
    let parts: Vec<Vec<f32>> = tasks
        .par_iter()
        .map(|&(s, hh)| {
            let (a, len) = spans[s];
            let row = |t: usize, which: usize| &qkv[(a + t) * 3 * h + which * h + hh * hd..][..hd];
            let mut out = vec![0f32; len * hd];
            let mut scores = vec![0f32; len];
            for i in 0..len {
                let q = row(i, 0);
                for (j, sc) in scores.iter_mut().enumerate() {
                    *sc = tandem_kernels::dispatch::dot_f32(q, row(j, 1), Isa::detected()) * scale;
                }
                tandem_kernels::ops::softmax(&mut scores, Isa::detected());
                let o = &mut out[i * hd..(i + 1) * hd];
                for (j, &p) in scores.iter().enumerate() {
                    tandem_kernels::ops::axpy(p, row(j, 2), o, Isa::detected());
                }
            }
            out
        })
        .collect();
    let n = spans.iter().map(|s| s.1).sum::<usize>();
    let mut ctx = vec![0f32; n * h];
    for (&(s, hh), part) in tasks.iter().zip(&parts) {
        let (a, len) = spans[s];
        for t in 0..len {
            ctx[(a + t) * h + hh * hd..][..hd].copy_from_slice(&part[t * hd..(t + 1) * hd]);
        }
    }
    ctx
}

fn add_assign(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// Per row of `norm.w.len()`: (x − mean) / √(var + eps) · w + b.
fn layer_norm(x: &mut [f32], norm: &Norm, eps: f32) {
    let h = norm.w.len();
    x.par_chunks_exact_mut(h).for_each(|row| {
        let mean = row.iter().sum::<f32>() / h as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, w), b) in row.iter_mut().zip(&norm.w).zip(&norm.b) {
            *v = (*v - mean) * inv * w + b;
        }
    });
}

/// The mean of `rows` ([len, h]), scaled to unit length.
fn mean_normalised(rows: &[f32], h: usize) -> Vec<f32> {
    let len = (rows.len() / h).max(1);
    let mut m = vec![0f32; h];
    for row in rows.chunks_exact(h) {
        add_assign(&mut m, row);
    }
    m.iter_mut().for_each(|v| *v /= len as f32);
    let norm = m.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    m.iter_mut().for_each(|v| *v /= norm);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_vectors_have_unit_length() {
        let v = mean_normalised(&[1.0, 2.0, 3.0, 4.0], 2);
        assert!((v[0] - 2.0 / (4.0f32 + 9.0).sqrt()).abs() < 1e-6);
        assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-6);
    }
}
