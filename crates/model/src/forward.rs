//! The qwen2 forward pass over a step of many sequences (prefill chunks and decode tokens alike).
//!
//! Per layer, as in HF `Qwen2DecoderLayer`:
//!   h = x + o_proj(attn(rope(q_proj(norm(x))), rope(k_proj(..)), v_proj(..)))
//!   x = h + down_proj(silu(gate_proj(norm(h))) * up_proj(norm(h)))
//!
//! All tokens of all sequences in a step go through each weight matrix together (one pass over the
//! weights); attention is per sequence, over its own KV cache. The kernels compute each token's
//! outputs independently of the others (see `tandem_kernels::matmul`), so a sequence's numbers do
//! not depend on what shares its step. Two arithmetics exist: prompt tokens take the matrix unit
//! where the CPU has one (`matmul_prompt`, bf16 products), generated tokens the int8 kernels
//! (`matmul_decode`: activations rounded to int8 blocks, integer dot products);
//! `SeqStep::path` (`TokenPath`) says which, so the choice never depends on the batch.

use tandem_kernels::ops::{add_assign, geglu_tanh, rms_norm, rope_neox, swiglu};
use tandem_kernels::{matmul, matmul_decode, matmul_prompt, KernelChoice, PromptKernel, QMatrix};

use crate::{Activation, BlockTable, KvCache, KvPool, Model, ModelError, Result, Rope, RunState, TokenPath};

/// Which logit rows a sequence wants from a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// None (a prompt chunk that is not the last).
    None,
    /// After its last token (generation).
    Last,
    /// After every token (scoring a continuation; verifying draft tokens).
    Every,
}

impl Logits {
    /// The rows a sequence of `tokens` tokens asks for.
    pub fn rows(self, tokens: usize) -> usize {
        match self {
            Logits::None => 0,
            Logits::Last => 1,
            Logits::Every => tokens,
        }
    }

    /// `Last` when `yes`, else `None`.
    pub fn last_if(yes: bool) -> Self {
        if yes {
            Logits::Last
        } else {
            Logits::None
        }
    }
}

/// One sequence's share of a forward step.
pub struct SeqStep<'a> {
    /// The sequence's blocks in the step's pool; they must hold positions up to
    /// `kv.len + tokens.len()`, and positions from `kv.len` on are written.
    pub kv: &'a mut BlockTable,
    /// Tokens at positions `kv.len..kv.len + tokens.len()`.
    pub tokens: &'a [u32],
    /// The logit rows to compute for this sequence.
    pub logits: Logits,
    /// The arithmetic of its tokens. The kind of token, never the batch's size, picks it, so a
    /// token's numbers do not depend on what shares its step or how its prompt was chunked.
    pub path: TokenPath,
}

/// What a step leaves behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The logit rows the sequences ask for.
    Logits,
    /// The normed final hidden rows in `st.xb` and the middle layer's in `st.mid` (embeddings).
    Hidden,
}

impl Model {
    /// Processes prompt tokens of one sequence (in chunks of `st.max_batch`); returns the logits after
    /// the last one: [vocab].
    pub fn forward<'s>(&self, st: &'s mut RunState, kv: &mut KvCache, tokens: &[u32]) -> Result<&'s [f32]> {
        if tokens.is_empty() {
            return Err(ModelError::BadConfig("forward called with no tokens".into()));
        }
        let chunks: Vec<&[u32]> = tokens.chunks(st.max_batch).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            self.step_one(
                st,
                kv,
                chunk,
                Logits::last_if(i + 1 == chunks.len()),
                TokenPath::Prompt,
                Output::Logits,
            )?;
        }
        Ok(st.logits_of(0).expect("logits requested"))
    }

    /// Runs one generated token of one sequence; returns the next logits: [vocab].
    pub fn decode<'s>(&self, st: &'s mut RunState, kv: &mut KvCache, token: u32) -> Result<&'s [f32]> {
        self.step_one(st, kv, &[token], Logits::Last, TokenPath::Generated, Output::Logits)?;
        Ok(st.logits_of(0).expect("logits requested"))
    }

    /// Runs `tokens` of one sequence in one step and returns the logits after each of them (row j
    /// predicts the token after `tokens[j]`): [tokens.len(), vocab]. Scoring a continuation's
    /// log-likelihood needs every row; generation needs only the last (`forward`).
    pub fn forward_every<'s>(&self, st: &'s mut RunState, kv: &mut KvCache, tokens: &[u32]) -> Result<&'s [f32]> {
        self.step_one(st, kv, tokens, Logits::Every, TokenPath::Prompt, Output::Logits)?;
        Ok(&st.logits[..tokens.len() * self.config.vocab])
    }

    /// A text's embedding, two means over its tokens side by side: [2 · dim] = the residual stream
    /// after the middle layer (`embed_layer`, RMS-normalised without a gain), then the final hidden
    /// state after the output norm (what the output matrix reads). Probes often read meaning best
    /// from the middle of the stack; the moderation head chooses. Starts from an empty cache;
    /// `tokens` may be longer than one step (chunks of `st.max_batch`).
    pub fn embed(&self, st: &mut RunState, kv: &mut KvCache, tokens: &[u32]) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(ModelError::BadConfig("embed called with no tokens".into()));
        }
        let dim = self.config.dim;
        let mut sum = vec![0f64; 2 * dim];
        st.mid.resize(st.max_batch * dim, 0.0);
        kv.truncate(0);
        for chunk in tokens.chunks(st.max_batch) {
            self.step_one(st, kv, chunk, Logits::Every, TokenPath::Prompt, Output::Hidden)?;
            for row in st.mid[..chunk.len() * dim].chunks_exact(dim) {
                sum[..dim].iter_mut().zip(row).for_each(|(a, &x)| *a += x as f64);
            }
            for row in st.xb[..chunk.len() * dim].chunks_exact(dim) {
                sum[dim..].iter_mut().zip(row).for_each(|(a, &x)| *a += x as f64);
            }
        }
        Ok(sum.iter().map(|&a| (a / tokens.len() as f64) as f32).collect())
    }

    /// The layer after which `embed` reads its first half: the middle of the stack.
    pub fn embed_layer(&self) -> usize {
        self.config.n_layer / 2 - 1
    }

    /// One step of the single sequence in `kv`, within its context size.
    fn step_one(
        &self,
        st: &mut RunState,
        kv: &mut KvCache,
        tokens: &[u32],
        logits: Logits,
        path: TokenPath,
        out: Output,
    ) -> Result<()> {
        if kv.len() + tokens.len() > kv.ctx() {
            return Err(ModelError::ContextFull {
                pos: kv.len(),
                n: tokens.len(),
                ctx: kv.ctx(),
            });
        }
        let KvCache { pool, table, .. } = kv;
        let mut s = [SeqStep {
            kv: table,
            tokens,
            logits,
            path,
        }];
        tandem_kernels::pool::install(|| self.step_in_pool(st, pool, &mut s, out))
    }

    /// One forward step over many sequences whose caches are in `pool`. Afterwards
    /// `st.logits_of(i)` holds the logits of sequence `i` if it asked for them
    /// (`st.logit_row_mut(i, j)` its row j with `Logits::Every`).
    pub fn step(&self, st: &mut RunState, pool: &mut KvPool, seqs: &mut [SeqStep]) -> Result<()> {
        tandem_kernels::pool::install(|| self.step_in_pool(st, pool, seqs, Output::Logits))
    }

    /// A step leaving `out` behind.
    fn step_in_pool(&self, st: &mut RunState, pool: &mut KvPool, seqs: &mut [SeqStep], out: Output) -> Result<()> {
        crate::layout::check(&self.config, st, pool, seqs, out)?;
        st.layout.plan(seqs);
        let w = &self.weights;
        let dim = self.config.dim;
        // x: [n, dim] ← embedding rows
        let embd = w.mat(&w.token_embd);
        for (s, &first) in seqs.iter().zip(&st.layout.seq_first) {
            for (j, &tok) in s.tokens.iter().enumerate() {
                let t = first + j;
                let row = &mut st.x[t * dim..(t + 1) * dim];
                embd.dequantize_row(tok as usize, row);
                if self.config.embed_scale != 1.0 {
                    row.iter_mut().for_each(|v| *v *= self.config.embed_scale);
                }
            }
        }
        for l in 0..w.layers.len() {
            self.layer(l, st, pool, seqs);
            if out == Output::Hidden && l == self.embed_layer() {
                self.keep_middle(st);
            }
        }
        self.head(st, out);
        for s in seqs.iter_mut() {
            s.kv.len += s.tokens.len();
        }
        Ok(())
    }

    /// Layer `l` on the step's residual stream `st.x`: [n, dim].
    fn layer(&self, l: usize, st: &mut RunState, pool: &mut KvPool, seqs: &[SeqStep]) {
        let (c, lw) = (&self.config, &self.weights.layers[l]);
        let mat = |t| self.weights.mat(t);
        let k = self.kernels;
        let n = st.layout.tokens();
        let ng = st.layout.n_generated;
        let (dim, qd, kvd, hd, f) = (c.dim, c.n_head * c.head_dim, c.kv_dim(), c.head_dim, c.ffn_dim);
        let hd2 = hd / 2;
        // xb = rms_norm(x) * attn_norm; q: [n, qd], k, v: [n, kvd]
        norm_rows(&mut st.xb[..n * dim], &st.x[..n * dim], &lw.attn_norm, c.rms_eps);
        layer_matmul(&mat(&lw.wq), &st.xb[..n * dim], &mut st.q[..n * qd], ng, k);
        layer_matmul(&mat(&lw.wk), &st.xb[..n * dim], &mut st.k[..n * kvd], ng, k);
        layer_matmul(&mat(&lw.wv), &st.xb[..n * dim], &mut st.v[..n * kvd], ng, k);
        for t in 0..n {
            let p = st.layout.tok_pos[t];
            // Sliding-window layers rotate with their own base; a sequence with YaRN with its
            // table (checked to exist).
            let (rope_cos, rope_sin) = match (c.window(l), &st.rope_local, seqs[st.layout.tok_seq[t]].kv.rope) {
                (Some(_), Some((cos, sin)), _) => (cos, sin),
                (_, _, Rope::Yarn) => st.rope_yarn.as_ref().map(|(c, s)| (c, s)).expect("checked"),
                _ => (&st.rope_cos, &st.rope_sin),
            };
            let (cos, sin) = (&rope_cos[p * hd2..(p + 1) * hd2], &rope_sin[p * hd2..(p + 1) * hd2]);
            let (q, kk, v) = (
                &mut st.q[t * qd..(t + 1) * qd],
                &mut st.k[t * kvd..(t + 1) * kvd],
                &mut st.v[t * kvd..(t + 1) * kvd],
            );
            if let Some([bq, bk, bv]) = &lw.bias {
                add_assign(q, bq);
                add_assign(kk, bk);
                add_assign(v, bv);
            }
            if let Some([nq, nk]) = &lw.qk_norm {
                q.chunks_exact_mut(hd).for_each(|h| rms_norm_in_place(h, nq, c.rms_eps));
                kk.chunks_exact_mut(hd)
                    .for_each(|h| rms_norm_in_place(h, nk, c.rms_eps));
            }
            q.chunks_exact_mut(hd).for_each(|h| rope_neox(h, cos, sin));
            kk.chunks_exact_mut(hd).for_each(|h| rope_neox(h, cos, sin));
            pool.write(seqs[st.layout.tok_seq[t]].kv, l, p, (kk, v), k.isa());
        }
        self.attention(st, pool, seqs, l, n, ng);
        // x += o_proj(att) (normed first where the model has post-norms)
        layer_matmul(&mat(&lw.wo), &st.att[..n * qd], &mut st.proj[..n * dim], ng, k);
        self.add_residual(st, lw.post_norm.as_ref().map(|p| &p[0][..]), n);
        // x += down(silu(gate(xb)) * up(xb)), xb = rms_norm(x) * ffn_norm
        norm_rows(&mut st.xb[..n * dim], &st.x[..n * dim], &lw.ffn_norm, c.rms_eps);
        layer_matmul(&mat(&lw.w_gate), &st.xb[..n * dim], &mut st.gate[..n * f], ng, k);
        layer_matmul(&mat(&lw.w_up), &st.xb[..n * dim], &mut st.up[..n * f], ng, k);
        match c.activation {
            Activation::SwiGlu => swiglu(&mut st.gate[..n * f], &st.up[..n * f], k.isa()),
            Activation::GeGlu => geglu_tanh(&mut st.gate[..n * f], &st.up[..n * f]),
        }
        layer_matmul(&mat(&lw.w_down), &st.gate[..n * f], &mut st.proj[..n * dim], ng, k);
        self.add_residual(st, lw.post_norm.as_ref().map(|p| &p[1][..]), n);
    }

    /// x += proj, or x += rms_norm(proj) · `post_norm` (through xb): x, proj: [n, dim].
    fn add_residual(&self, st: &mut RunState, post_norm: Option<&[f32]>, n: usize) {
        let dim = self.config.dim;
        match post_norm {
            None => add_assign(&mut st.x[..n * dim], &st.proj[..n * dim]),
            Some(w) => {
                norm_rows(&mut st.xb[..n * dim], &st.proj[..n * dim], w, self.config.rms_eps);
                add_assign(&mut st.x[..n * dim], &st.xb[..n * dim]);
            }
        }
    }

    /// mid: [n, dim] ← x / rms(x), the embedding's first half.
    fn keep_middle(&self, st: &mut RunState) {
        let (dim, eps) = (self.config.dim, self.config.rms_eps);
        let n = st.layout.tokens();
        for (m, x) in st.mid[..n * dim]
            .chunks_exact_mut(dim)
            .zip(st.x[..n * dim].chunks_exact(dim))
        {
            let ms = x.iter().map(|v| v * v).sum::<f32>() / dim as f32;
            let r = 1.0 / (ms + eps).sqrt();
            m.iter_mut().zip(x).for_each(|(m, &v)| *m = v * r);
        }
    }

    /// logits = output · rms_norm(x) * output_norm for the tokens of the layout's logit rows; the
    /// normed rows are left in xb: [rows, dim]. The output matmul takes the decode kernels (int8)
    /// for every row, except prompt rows under the exact prompt kernel (`--prompt-kernel exact`:
    /// a prompt's logits, its first token's and scoring's, then stay exact).
    fn head(&self, st: &mut RunState, out: Output) {
        let (c, w) = (&self.config, &self.weights);
        let (dim, rows) = (c.dim, st.layout.rows());
        for (r, &t) in st.layout.row_token.iter().enumerate() {
            rms_norm(
                &mut st.xb[r * dim..(r + 1) * dim],
                &st.x[t * dim..(t + 1) * dim],
                &w.output_norm,
                c.rms_eps,
            );
        }
        if rows == 0 || out == Output::Hidden {
            return;
        }
        let v = c.vocab;
        let output = w.mat(&w.output);
        let (x, y) = (&st.xb[..rows * dim], &mut st.logits[..rows * v]);
        // Prompt rows exact only when prompts are (the logits of a whole prompt row cost as much
        // as a generated token's: the int8 kernels are the fast way for either).
        if self.kernels.prompt() != PromptKernel::Exact {
            return matmul_decode(&output, x, y, self.kernels);
        }
        let rg = st.layout.rows_generated;
        let ((xg, xp), (yg, yp)) = (x.split_at(rg * dim), y.split_at_mut(rg * v));
        if !xg.is_empty() {
            matmul_decode(&output, xg, yg, self.kernels);
        }
        if !xp.is_empty() {
            matmul(&output, xp, yp, self.kernels.isa());
        }
    }
}

/// x ← rms_norm(x) · gain, in place (Gemma's per-head q/k norms): x, gain: [head_dim].
fn rms_norm_in_place(x: &mut [f32], gain: &[f32], eps: f32) {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let r = 1.0 / (ms + eps).sqrt();
    x.iter_mut().zip(gain).for_each(|(v, &g)| *v = *v * r * g);
}

/// out = rms_norm(x) * gain, row by row: x, out: [n, gain.len()].
fn norm_rows(out: &mut [f32], x: &[f32], gain: &[f32], eps: f32) {
    let dim = gain.len();
    for (o, x) in out.chunks_exact_mut(dim).zip(x.chunks_exact(dim)) {
        rms_norm(o, x, gain, eps);
    }
}

/// `y = x · Wᵀ` for a layer's weight: tokens `0..n_generated` (generated) on the int8 path, the rest
/// (prompt) on the prompt path. x: [n, w.cols], y: [n, w.rows].
fn layer_matmul(w: &QMatrix, x: &[f32], y: &mut [f32], n_generated: usize, k: KernelChoice) {
    let (xg, xp) = x.split_at(n_generated * w.cols);
    let (yg, yp) = y.split_at_mut(n_generated * w.rows);
    if !xg.is_empty() {
        matmul_decode(w, xg, yg, k);
    }
    if !xp.is_empty() {
        matmul_prompt(w, xp, yp, k);
    }
}
