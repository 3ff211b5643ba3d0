//! The qwen2 forward pass over a batch of tokens (prefill and decode are the same code).
//!
//! Per layer, as in HF `Qwen2DecoderLayer`:
//!   h = x + o_proj(attn(rope(q_proj(norm(x))), rope(k_proj(..)), v_proj(..)))
//!   x = h + down_proj(silu(gate_proj(norm(h))) * up_proj(norm(h)))

use std::cell::RefCell;

use rayon::prelude::*;
use tandem_kernels::dispatch::dot_f32;
use tandem_kernels::matmul;
use tandem_kernels::ops::{add_assign, rms_norm, rope_neox, softmax, swiglu};

use crate::{KvCache, Model, ModelError, Result, RunState};

thread_local! {
    /// Attention scores of one (token, head): [positions]
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl Model {
    /// Runs `tokens` at positions `kv.len..kv.len + tokens.len()`, appends their K/V to the cache and
    /// returns the logits of the last token: [vocab].
    pub fn forward<'s>(
        &self,
        st: &'s mut RunState,
        kv: &mut KvCache,
        tokens: &[u32],
    ) -> Result<&'s [f32]> {
        if tokens.is_empty() {
            return Err(ModelError::BadConfig(
                "forward called with no tokens".into(),
            ));
        }
        if kv.len + tokens.len() > kv.ctx {
            return Err(ModelError::ContextFull {
                pos: kv.len,
                n: tokens.len(),
                ctx: kv.ctx,
            });
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.config.vocab) {
            return Err(ModelError::BadToken(bad));
        }
        for chunk in tokens.chunks(st.max_batch) {
            self.forward_batch(st, kv, chunk);
        }
        Ok(&st.logits)
    }

    fn forward_batch(&self, st: &mut RunState, kv: &mut KvCache, tokens: &[u32]) {
        let c = &self.config;
        let w = &self.weights;
        let n = tokens.len();
        let pos = kv.len;
        let (dim, qd, kvd, hd) = (c.dim, c.n_head * c.head_dim, c.kv_dim(), c.head_dim);

        // x: [n, dim] ← embedding rows
        let embd = w.mat(&w.token_embd);
        for (t, &tok) in tokens.iter().enumerate() {
            embd.dequantize_row(tok as usize, &mut st.x[t * dim..(t + 1) * dim]);
        }

        for (l, lw) in w.layers.iter().enumerate() {
            // xb = rms_norm(x) * attn_norm
            for t in 0..n {
                rms_norm(
                    &mut st.xb[t * dim..(t + 1) * dim],
                    &st.x[t * dim..(t + 1) * dim],
                    &lw.attn_norm,
                    c.rms_eps,
                );
            }
            let xb = &st.xb[..n * dim];
            // q: [n, qd], k, v: [n, kvd]
            matmul(&w.mat(&lw.wq), xb, &mut st.q[..n * qd]);
            matmul(&w.mat(&lw.wk), xb, &mut st.k[..n * kvd]);
            matmul(&w.mat(&lw.wv), xb, &mut st.v[..n * kvd]);
            let hd2 = hd / 2;
            for t in 0..n {
                let p = pos + t;
                let (cos, sin) = (
                    &st.rope_cos[p * hd2..(p + 1) * hd2],
                    &st.rope_sin[p * hd2..(p + 1) * hd2],
                );
                let q = &mut st.q[t * qd..(t + 1) * qd];
                add_assign(q, &lw.bq);
                q.chunks_exact_mut(hd).for_each(|h| rope_neox(h, cos, sin));
                let k = &mut st.k[t * kvd..(t + 1) * kvd];
                add_assign(k, &lw.bk);
                k.chunks_exact_mut(hd).for_each(|h| rope_neox(h, cos, sin));
                add_assign(&mut st.v[t * kvd..(t + 1) * kvd], &lw.bv);
                let at = kv.at(l, p);
                kv.k[at..at + kvd].copy_from_slice(k);
                kv.v[at..at + kvd].copy_from_slice(&st.v[t * kvd..(t + 1) * kvd]);
            }
            self.attention(st, kv, l, n, pos);
            // x += o_proj(att)
            matmul(&w.mat(&lw.wo), &st.att[..n * qd], &mut st.proj[..n * dim]);
            add_assign(&mut st.x[..n * dim], &st.proj[..n * dim]);

            // x += down(silu(gate(xb)) * up(xb)), xb = rms_norm(x) * ffn_norm
            for t in 0..n {
                rms_norm(
                    &mut st.xb[t * dim..(t + 1) * dim],
                    &st.x[t * dim..(t + 1) * dim],
                    &lw.ffn_norm,
                    c.rms_eps,
                );
            }
            let f = c.ffn_dim;
            matmul(&w.mat(&lw.w_gate), &st.xb[..n * dim], &mut st.gate[..n * f]);
            matmul(&w.mat(&lw.w_up), &st.xb[..n * dim], &mut st.up[..n * f]);
            swiglu(&mut st.gate[..n * f], &st.up[..n * f]);
            matmul(
                &w.mat(&lw.w_down),
                &st.gate[..n * f],
                &mut st.proj[..n * dim],
            );
            add_assign(&mut st.x[..n * dim], &st.proj[..n * dim]);
        }
        kv.len = pos + n;

        // logits = output · rms_norm(x_last) * output_norm
        let last = &st.x[(n - 1) * dim..n * dim];
        rms_norm(&mut st.xb[..dim], last, &w.output_norm, c.rms_eps);
        matmul(&w.mat(&w.output), &st.xb[..dim], &mut st.logits);
    }

    /// Causal grouped-query attention of the `n` new tokens over all cached positions.
    /// st.q: [n, n_head, hd] → st.att: [n, n_head, hd]; query head h reads KV head h / (n_head / n_kv_head).
    fn attention(&self, st: &mut RunState, kv: &KvCache, layer: usize, n: usize, pos: usize) {
        let c = &self.config;
        let hd = c.head_dim;
        let group = c.n_head / c.n_kv_head;
        let scale = 1.0 / (hd as f32).sqrt();
        let q = &st.q;
        st.att[..n * c.n_head * hd]
            .par_chunks_mut(hd)
            .enumerate()
            .for_each(|(i, out)| {
                let (t, h) = (i / c.n_head, i % c.n_head);
                let qh = &q[i * hd..(i + 1) * hd];
                let off = (h / group) * hd;
                let n_ctx = pos + t + 1;
                SCORES.with(|s| {
                    let mut s = s.borrow_mut();
                    s.resize(n_ctx, 0.0);
                    for (p, sc) in s.iter_mut().enumerate() {
                        let at = kv.at(layer, p) + off;
                        *sc = dot_f32(qh, &kv.k[at..at + hd]) * scale;
                    }
                    softmax(&mut s);
                    out.fill(0.0);
                    for (p, &a) in s.iter().enumerate() {
                        let at = kv.at(layer, p) + off;
                        for (o, &v) in out.iter_mut().zip(&kv.v[at..at + hd]) {
                            *o += a * v;
                        }
                    }
                });
            });
    }
}
