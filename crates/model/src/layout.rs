//! Where a step's tokens and logit rows go. A step's sequences are laid out generated tokens
//! first, then prompt tokens, each sequence's tokens together, so every weight matmul is one call
//! per arithmetic (`TokenPath`); logit rows follow the same order. The forward pass reads this
//! layout and never works it out itself.

use crate::{Config, KvPool, Logits, ModelError, Output, Result, RunState, SeqStep};

/// Which arithmetic a sequence's tokens take in the layer matmuls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenPath {
    /// Generated tokens (decode, draft verification): the int8 kernels
    /// (`tandem_kernels::matmul_decode`).
    Generated,
    /// Prompt tokens: the matrix unit where the CPU has one (`tandem_kernels::matmul_prompt`,
    /// bf16), and the tiled prompt attention.
    Prompt,
}

/// The layout of one step, rebuilt by `plan` (its buffers are kept between steps).
#[derive(Default)]
pub struct StepLayout {
    /// [tokens]: each token's sequence and position.
    pub tok_seq: Vec<usize>,
    pub tok_pos: Vec<usize>,
    /// [seqs]: each sequence's first token.
    pub seq_first: Vec<usize>,
    /// Tokens `0..n_generated` take `TokenPath::Generated`, the rest `TokenPath::Prompt`.
    pub n_generated: usize,
    /// [rows]: the token whose hidden state each logit row reads.
    pub row_token: Vec<usize>,
    /// Rows `0..rows_generated` belong to generated tokens (the int8 output matmul).
    pub rows_generated: usize,
    /// [seqs]: each sequence's first logit row (`usize::MAX`: none) and its row count.
    pub logit_row: Vec<usize>,
    pub logit_n: Vec<usize>,
}

impl StepLayout {
    /// Lays out `seqs`.
    pub fn plan(&mut self, seqs: &[SeqStep]) {
        self.tok_seq.clear();
        self.tok_pos.clear();
        self.row_token.clear();
        self.seq_first.clear();
        self.seq_first.resize(seqs.len(), 0);
        self.logit_row.clear();
        self.logit_row.resize(seqs.len(), usize::MAX);
        self.logit_n.clear();
        self.logit_n.resize(seqs.len(), 0);
        for path in [TokenPath::Generated, TokenPath::Prompt] {
            for (i, s) in seqs.iter().enumerate().filter(|(_, s)| s.path == path) {
                let first = self.tok_seq.len();
                self.seq_first[i] = first;
                for j in 0..s.tokens.len() {
                    self.tok_seq.push(i);
                    self.tok_pos.push(s.kv.len + j);
                }
                let (end, rows) = (first + s.tokens.len(), s.logits.rows(s.tokens.len()));
                if rows == 0 {
                    continue;
                }
                self.logit_row[i] = self.row_token.len();
                self.logit_n[i] = rows;
                self.row_token.extend(end - rows..end);
            }
            if path == TokenPath::Generated {
                self.n_generated = self.tok_seq.len();
                self.rows_generated = self.row_token.len();
            }
        }
    }

    /// Tokens in the step.
    pub fn tokens(&self) -> usize {
        self.tok_seq.len()
    }

    /// Logit rows the step computes.
    pub fn rows(&self) -> usize {
        self.row_token.len()
    }

    /// The logit row `j` of sequence `i`, if it asked for one.
    pub fn row(&self, i: usize, j: usize) -> Option<usize> {
        let r = *self.logit_row.get(i)?;
        (r != usize::MAX && j < self.logit_n[i]).then_some(r + j)
    }
}

/// Refuses a step the scratch, the pool or the model cannot take: too many tokens, sequences or
/// logit rows, positions without blocks or rotary tables, tokens outside the vocabulary, foreign
/// blocks. Nothing is changed before it passes.
pub(crate) fn check(c: &Config, st: &RunState, pool: &KvPool, seqs: &[SeqStep], out: Output) -> Result<()> {
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
    let rows: usize = seqs.iter().map(|s| s.logits.rows(s.tokens.len())).sum();
    if out == Output::Logits && rows > st.logit_capacity() {
        return Err(ModelError::BadConfig(format!(
            "{rows} logit rows requested, the scratch holds {}",
            st.logit_capacity()
        )));
    }
    if pool.n_layer != c.n_layer || pool.kv_dim != c.kv_dim() {
        return Err(ModelError::BadConfig("KV cache does not belong to this model".into()));
    }
    for s in seqs {
        if s.tokens.is_empty() && s.logits != Logits::None {
            return Err(ModelError::BadConfig(
                "logits asked of a sequence with no tokens".into(),
            ));
        }
        if s.kv.rope == crate::Rope::Yarn && st.rope_yarn.is_none() {
            return Err(ModelError::BadConfig(
                "a sequence rotates with YaRN, which this model's state was built without".into(),
            ));
        }
        // The step's positions need blocks, and rotary tables (their RoPE's).
        let room = s.kv.capacity().min(st.ctx).min(st.rope_len(s.kv.rope));
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
    Ok(())
}
