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
//! `SeqStep::prompt` says which, so the choice never depends on the batch.

use std::cell::RefCell;

use rayon::prelude::*;
use tandem_kernels::attention::{
    keys_ld, prompt_tile, prompt_tile_amx, tile_kernel, to_tiles, TileKernel, TileScratch,
};
use tandem_kernels::ops::{add_assign, rms_norm, rope_neox, softmax, swiglu};
use tandem_kernels::{matmul, matmul_decode, matmul_prompt, QMatrix};

use crate::{BlockTable, KvCache, KvPool, KvView, Model, ModelError, Result, RunState};

thread_local! {
    /// Attention scores of one (token, head): [positions]
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// A prompt attention tile's query rows, outputs, position limits and kernel scratch.
    static TILE: RefCell<TileBuffers> = RefCell::new(Default::default());
}

type TileBuffers = (Vec<f32>, Vec<f32>, Vec<usize>, TileScratch);

/// Prompt tokens per tile of the tiled attention (× the query heads of a KV head: 24–28 rows for
/// the tiers), small enough that a tile's scores stay in L2 at depth 4096.
const PROMPT_TILE: usize = 4;

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
    /// Prompt tokens (true) take the matrix-unit path of the layer matmuls where the CPU has one
    /// (`tandem_kernels::matmul_prompt`, bf16); generated tokens (decode, draft verification)
    /// take the int8 path (`tandem_kernels::matmul_decode`). The kind, never the batch's size, picks the arithmetic, so
    /// a token's numbers do not depend on what shares its step or how its prompt was chunked.
    pub prompt: bool,
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
            self.step_one(st, kv, chunk, Logits::last_if(i + 1 == chunks.len()), true, false)?;
        }
        Ok(st.logits_of(0).expect("logits requested"))
    }

    /// Runs one generated token of one sequence; returns the next logits: [vocab].
    pub fn decode<'s>(&self, st: &'s mut RunState, kv: &mut KvCache, token: u32) -> Result<&'s [f32]> {
        self.step_one(st, kv, &[token], Logits::Last, false, false)?;
        Ok(st.logits_of(0).expect("logits requested"))
    }

    /// Runs `tokens` of one sequence in one step and returns the logits after each of them (row j
    /// predicts the token after `tokens[j]`): [tokens.len(), vocab]. Scoring a continuation's
    /// log-likelihood needs every row; generation needs only the last (`forward`).
    pub fn forward_every<'s>(&self, st: &'s mut RunState, kv: &mut KvCache, tokens: &[u32]) -> Result<&'s [f32]> {
        self.step_one(st, kv, tokens, Logits::Every, true, false)?;
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
            self.step_one(st, kv, chunk, Logits::Every, true, true)?;
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
        prompt: bool,
        hidden_only: bool,
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
            prompt,
        }];
        tandem_kernels::pool::install(|| self.step_in_pool(st, pool, &mut s, hidden_only))
    }

    /// One forward step over many sequences whose caches are in `pool`. Afterwards
    /// `st.logits_of(i)` holds the logits of sequence `i` if it asked for them
    /// (`st.logit_row_mut(i, j)` its row j with `Logits::Every`).
    pub fn step(&self, st: &mut RunState, pool: &mut KvPool, seqs: &mut [SeqStep]) -> Result<()> {
        tandem_kernels::pool::install(|| self.step_in_pool(st, pool, seqs, false))
    }

    /// A step; `hidden_only`: leave the normed final hidden rows in `st.xb` (and the middle
    /// layer's in `st.mid`) instead of computing logits (embeddings).
    fn step_in_pool(
        &self,
        st: &mut RunState,
        pool: &mut KvPool,
        seqs: &mut [SeqStep],
        hidden_only: bool,
    ) -> Result<()> {
        let c = &self.config;
        let n: usize = seqs.iter().map(|s| s.tokens.len()).sum();
        if n == 0 {
            return Err(ModelError::BadConfig("forward called with no tokens".into()));
        }
        if n > st.max_batch || seqs.len() > st.max_seqs {
            return Err(ModelError::BadConfig(format!(
                "step of {n} tokens in {} sequences exceeds the scratch size ({} tokens, {} sequences)",
                seqs.len(),
                st.max_batch,
                st.max_seqs
            )));
        }
        let rows_wanted: usize = seqs
            .iter()
            .map(|s| match s.logits {
                Logits::None => 0,
                Logits::Last => 1,
                Logits::Every => s.tokens.len(),
            })
            .sum();
        if !hidden_only && rows_wanted > st.logit_capacity() {
            return Err(ModelError::BadConfig(format!(
                "{rows_wanted} logit rows requested, the scratch holds {}",
                st.logit_capacity()
            )));
        }
        if pool.n_layer != c.n_layer || pool.kv_dim != c.kv_dim() {
            return Err(ModelError::BadConfig("KV cache does not belong to this model".into()));
        }
        for s in seqs.iter() {
            // The step's positions need blocks, and rotary tables (sized for st.ctx).
            let room = s.kv.capacity().min(st.ctx);
            if s.kv.len + s.tokens.len() > room {
                return Err(ModelError::ContextFull {
                    pos: s.kv.len,
                    n: s.tokens.len(),
                    ctx: room,
                });
            }
            if let Some(&bad) = s.tokens.iter().find(|&&t| t as usize >= c.vocab) {
                return Err(ModelError::BadToken(bad));
            }
            if !pool.holds(s.kv) {
                return Err(ModelError::BadConfig(
                    "a block table names blocks outside the KV pool".into(),
                ));
            }
        }

        // Token layout: the generated tokens' sequences first, then the prompts', each sequence's
        // tokens together (so each matmul is one call per path). seq_first: [seqs] — a sequence's
        // first token; tok_seq/tok_pos: [n] — owning sequence and position of each token.
        st.tok_seq.clear();
        st.tok_pos.clear();
        st.seq_first.clear();
        st.seq_first.resize(seqs.len(), 0);
        // Tokens 0..n_generated take the generated tokens' matmul (int8), the rest the prompt path.
        let mut n_generated = 0;
        for prompt in [false, true] {
            for (i, s) in seqs.iter().enumerate().filter(|(_, s)| s.prompt == prompt) {
                st.seq_first[i] = st.tok_seq.len();
                for j in 0..s.tokens.len() {
                    st.tok_seq.push(i);
                    st.tok_pos.push(s.kv.len + j);
                }
            }
            if !prompt {
                n_generated = st.tok_seq.len();
            }
        }

        let w = &self.weights;
        let (dim, qd, kvd, hd, f) = (c.dim, c.n_head * c.head_dim, c.kv_dim(), c.head_dim, c.ffn_dim);
        let hd2 = hd / 2;

        // x: [n, dim] ← embedding rows
        let embd = w.mat(&w.token_embd);
        for (s, &first) in seqs.iter().zip(&st.seq_first) {
            for (j, &tok) in s.tokens.iter().enumerate() {
                let t = first + j;
                embd.dequantize_row(tok as usize, &mut st.x[t * dim..(t + 1) * dim]);
            }
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
            // q: [n, qd], k, v: [n, kvd]
            layer_matmul(&w.mat(&lw.wq), &st.xb[..n * dim], &mut st.q[..n * qd], n_generated);
            layer_matmul(&w.mat(&lw.wk), &st.xb[..n * dim], &mut st.k[..n * kvd], n_generated);
            layer_matmul(&w.mat(&lw.wv), &st.xb[..n * dim], &mut st.v[..n * kvd], n_generated);
            for t in 0..n {
                let p = st.tok_pos[t];
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
                pool.write(seqs[st.tok_seq[t]].kv, l, p, k, &st.v[t * kvd..(t + 1) * kvd]);
            }
            self.attention(st, pool, seqs, l, n, n_generated);
            // x += o_proj(att)
            layer_matmul(&w.mat(&lw.wo), &st.att[..n * qd], &mut st.proj[..n * dim], n_generated);
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
            layer_matmul(
                &w.mat(&lw.w_gate),
                &st.xb[..n * dim],
                &mut st.gate[..n * f],
                n_generated,
            );
            layer_matmul(&w.mat(&lw.w_up), &st.xb[..n * dim], &mut st.up[..n * f], n_generated);
            swiglu(&mut st.gate[..n * f], &st.up[..n * f]);
            layer_matmul(
                &w.mat(&lw.w_down),
                &st.gate[..n * f],
                &mut st.proj[..n * dim],
                n_generated,
            );
            add_assign(&mut st.x[..n * dim], &st.proj[..n * dim]);
            if hidden_only && l == self.embed_layer() {
                // mid: [n, dim] ← x / rms(x), the embedding's first half.
                for (m, x) in st.mid[..n * dim]
                    .chunks_exact_mut(dim)
                    .zip(st.x[..n * dim].chunks_exact(dim))
                {
                    let ms = x.iter().map(|v| v * v).sum::<f32>() / dim as f32;
                    let r = 1.0 / (ms + c.rms_eps).sqrt();
                    m.iter_mut().zip(x).for_each(|(m, &v)| *m = v * r);
                }
            }
        }

        // logits = output · rms_norm(x_last) * output_norm, for the sequences that want them
        // (every token's row for `Logits::Every`; `logit_row[i]` is then sequence i's first row
        // and `logit_n[i]` its count). The normed rows are left in xb: [rows, dim]. The output
        // matmul takes the int8 kernels for generated tokens like the layers, and the exact f32
        // kernels for prompts (a prompt's logits, its first token's and scoring's, stay exact).
        st.logit_row.clear();
        st.logit_row.resize(seqs.len(), usize::MAX);
        st.logit_n.clear();
        st.logit_n.resize(seqs.len(), 0);
        // Generated tokens' rows first (0..rows_generated), as in the layers.
        let (mut rows, mut rows_generated) = (0, 0);
        for prompt in [false, true] {
            for (i, s) in seqs.iter().enumerate().filter(|(_, s)| s.prompt == prompt) {
                let start = st.seq_first[i];
                let end = start + s.tokens.len();
                let first = match s.logits {
                    Logits::None => continue,
                    Logits::Last => end - 1,
                    Logits::Every => start,
                };
                st.logit_row[i] = rows;
                st.logit_n[i] = end - first;
                for t in first..end {
                    rms_norm(
                        &mut st.xb[rows * dim..(rows + 1) * dim],
                        &st.x[t * dim..(t + 1) * dim],
                        &w.output_norm,
                        c.rms_eps,
                    );
                    rows += 1;
                }
            }
            if !prompt {
                rows_generated = rows;
            }
        }
        if rows > 0 && !hidden_only {
            let v = c.vocab;
            let out = w.mat(&w.output);
            let (xg, xp) = st.xb[..rows * dim].split_at(rows_generated * dim);
            let (yg, yp) = st.logits[..rows * v].split_at_mut(rows_generated * v);
            if !xg.is_empty() {
                matmul_decode(&out, xg, yg);
            }
            if !xp.is_empty() {
                matmul(&out, xp, yp);
            }
        }
        for s in seqs.iter_mut() {
            s.kv.len += s.tokens.len();
        }
        Ok(())
    }

    /// Causal grouped-query attention of the step's tokens over their own sequences' caches.
    /// st.q: [n, n_head, hd] → st.att: [n, n_head, hd]. The `group` query heads that share KV head g
    /// (heads g·group .. (g+1)·group) are done together, so each cached K and V row is read once
    /// for all of them.
    ///
    /// Prompt tokens take the tiled kernel where the CPU runs it (`prompt_attention`), generated
    /// tokens always this per-token path; the kind of token, never the batch, decides.
    fn attention(
        &self,
        st: &mut RunState,
        pool: &KvPool,
        seqs: &[SeqStep],
        layer: usize,
        n: usize,
        n_generated: usize,
    ) {
        let c = &self.config;
        let hd = c.head_dim;
        let tiled = tandem_kernels::attention::available(hd);
        let n = if tiled { n_generated } else { n };
        let group = c.n_head / c.n_kv_head;
        let scale = 1.0 / (hd as f32).sqrt();
        let (q, tok_seq, tok_pos) = (&st.q, &st.tok_seq, &st.tok_pos);
        st.att[..n * c.n_head * hd]
            .par_chunks_mut(group * hd)
            .enumerate()
            .for_each(|(i, out)| {
                let (t, g) = (i / c.n_kv_head, i % c.n_kv_head);
                let kv = pool.view(seqs[tok_seq[t]].kv);
                // q heads of this group: [group, hd]
                let qg = &q[(t * c.n_head + g * group) * hd..(t * c.n_head + (g + 1) * group) * hd];
                let off = g * hd;
                let n_ctx = tok_pos[t] + 1;
                SCORES.with(|s| {
                    let mut s = s.borrow_mut();
                    // scores: [group, n_ctx]
                    s.resize(group * n_ctx, 0.0);
                    kv.scores(layer, off, qg, group, n_ctx, scale, &mut s);
                    for j in 0..group {
                        softmax(&mut s[j * n_ctx..(j + 1) * n_ctx]);
                    }
                    out.fill(0.0);
                    kv.attend(layer, off, &s, group, n_ctx, out);
                });
            });
        if tiled {
            for (i, s) in seqs.iter().enumerate().filter(|(_, s)| s.prompt) {
                self.prompt_attention(st, pool.view(s.kv), s, st.seq_first[i], layer);
            }
        }
    }

    /// Causal attention of one sequence's prompt tokens (step layout `first..first + len`, positions
    /// `kv.len..kv.len + len`) on the tiled kernel: each KV head's keys and values up to the last
    /// position converted to f32 once, then tiles of `PROMPT_TILE` tokens × the heads sharing a KV
    /// head, in parallel. st.q → st.att, both [n, n_head, hd].
    fn prompt_attention(&self, st: &mut RunState, kv: KvView, s: &SeqStep, first: usize, layer: usize) {
        let c = &self.config;
        let kernel = tile_kernel(c.head_dim).expect("checked by attention()");
        let amx = kernel == TileKernel::Amx;
        let (hd, nkv) = (c.head_dim, c.n_kv_head);
        let group = c.n_head / nkv;
        let (len, pos0) = (s.tokens.len(), s.kv.len);
        let n = pos0 + len;
        let ld = keys_ld(n);
        if st.head_keys.len() < nkv * hd * ld {
            st.head_keys.resize(nkv * hd * ld, 0.0);
        }
        if st.head_values.len() < nkv * n * hd {
            st.head_values.resize(nkv * n * hd, 0.0);
        }
        // Tiles of bf16 pairs for the matrix unit: half the f32 elements.
        let nt = if amx { nkv * hd * ld / 2 } else { 0 };
        if st.head_key_tiles.len() < nt {
            st.head_key_tiles.resize(nt, 0);
            st.head_value_tiles.resize(nt, 0);
        }
        // Per KV head, in parallel: f32 keys and values, and (AMX) their bf16 tiles from them
        // while they are in cache.
        let per = hd * ld / 2;
        let f32_heads = st.head_keys[..nkv * hd * ld]
            .par_chunks_mut(hd * ld)
            .zip(st.head_values[..nkv * n * hd].par_chunks_mut(n * hd))
            .enumerate();
        if amx {
            let tiles = st.head_key_tiles[..nt]
                .par_chunks_mut(per)
                .zip(st.head_value_tiles[..nt].par_chunks_mut(per));
            f32_heads.zip(tiles).for_each(|((g, (keys, values)), (kt, vt))| {
                kv.head_f32(layer, g * hd, hd, n, keys, values);
                to_tiles(keys, values, hd, n, kt, vt);
            });
        } else {
            f32_heads.for_each(|(g, (keys, values))| kv.head_f32(layer, g * hd, hd, n, keys, values));
        }
        let scale = 1.0 / (hd as f32).sqrt();
        let row = c.n_head * hd;
        let (q, keys, values) = (&st.q, &st.head_keys, &st.head_values);
        let (key_tiles, value_tiles) = (&st.head_key_tiles, &st.head_value_tiles);
        st.att[first * row..(first + len) * row]
            .par_chunks_mut(PROMPT_TILE * row)
            .enumerate()
            .for_each(|(tile, att)| {
                let t0 = tile * PROMPT_TILE;
                let nt = att.len() / row;
                TILE.with(|b| {
                    let (qs, out, limits, scratch) = &mut *b.borrow_mut();
                    for g in 0..nkv {
                        // The tile's query rows for KV head g: (token t, head j) → row t·group + j.
                        qs.clear();
                        limits.clear();
                        for t in 0..nt {
                            let at = (first + t0 + t) * row + g * group * hd;
                            qs.extend_from_slice(&q[at..at + group * hd]);
                            limits.extend(std::iter::repeat_n(pos0 + t0 + t + 1, group));
                        }
                        out.resize(qs.len(), 0.0);
                        if amx {
                            let (k, v) = (&key_tiles[g * per..(g + 1) * per], &value_tiles[g * per..(g + 1) * per]);
                            prompt_tile_amx(qs, hd, limits, k, v, n, scale, scratch, out);
                        } else {
                            let (k, v) = (
                                &keys[g * hd * ld..(g + 1) * hd * ld],
                                &values[g * n * hd..(g + 1) * n * hd],
                            );
                            prompt_tile(qs, hd, limits, k, ld, v, scale, scratch, out);
                        }
                        for t in 0..nt {
                            let at = t * row + g * group * hd;
                            att[at..at + group * hd].copy_from_slice(&out[t * group * hd..(t + 1) * group * hd]);
                        }
                    }
                });
            });
    }
}

/// `y = x · Wᵀ` for a layer's weight: tokens `0..n_generated` (generated) on the int8 path, the rest
/// (prompt) on the prompt path. x: [n, w.cols], y: [n, w.rows].
fn layer_matmul(w: &QMatrix, x: &[f32], y: &mut [f32], n_generated: usize) {
    let (xg, xp) = x.split_at(n_generated * w.cols);
    let (yg, yp) = y.split_at_mut(n_generated * w.rows);
    if !xg.is_empty() {
        matmul_decode(w, xg, yg);
    }
    if !xp.is_empty() {
        matmul_prompt(w, xp, yp);
    }
}
