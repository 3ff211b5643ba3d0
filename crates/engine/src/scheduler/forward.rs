//! What the scheduler needs of a model, as two small traits: `Forward` runs a step (K/V written at
//! each sequence's positions, logit rows out) and owns the KV pool's numbers; `TextSide` is the
//! vocabulary (detokenising, end of generation, grammars). `ModelForward` is the real model; the
//! scheduler's unit tests drive it with a fake whose logits are scripted.

use std::sync::Arc;

use tandem_model::{KvCache, KvPool, RunState, SeqStep};
use tandem_text::Tokenizer;

use crate::{EngineConfig, EngineError, Grammars, LoadedModel, Result, SpecMode};

pub(crate) trait Forward: Send {
    /// Most tokens one step takes.
    fn max_batch(&self) -> usize;
    /// Most logit rows one step gives.
    fn logit_capacity(&self) -> usize;
    /// Cached positions whose attention costs about one token's matmuls (`Config::depth_unit`):
    /// what a prompt chunk deep in a long context costs, for the step budget.
    fn depth_unit(&self) -> usize;
    /// Runs one step: every sequence's tokens at positions `kv.len..` of its block table, the
    /// K/V written into the pool, the logit rows each asks for computed.
    fn step(&mut self, seqs: &mut [SeqStep]) -> Result<()>;
    /// Row `j` of the `k`-th sequence of the last step, mutable (sampling masks and biases in
    /// place): [vocab]. `None` when it asked for fewer rows.
    fn logit_row_mut(&mut self, k: usize, j: usize) -> Option<&mut [f32]>;
    /// Copies the first `rows` positions of block `src` into block `dst`.
    fn copy_block(&mut self, src: u32, dst: u32, rows: usize);
    /// A text's embedding (`Model::embed`), outside the pool.
    fn embed(&mut self, tokens: &[u32]) -> Result<Vec<f32>>;
}

/// The vocabulary side of a model.
pub(crate) trait TextSide: Send + Sync {
    fn tokenizer(&self) -> &Tokenizer;
    fn grammars(&self) -> std::result::Result<&Grammars, String>;
}

impl TextSide for LoadedModel {
    fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
    fn grammars(&self) -> std::result::Result<&Grammars, String> {
        LoadedModel::grammars(self)
    }
}

/// The real model: its step buffers, its KV pool, and the cache `embed` runs in.
pub(crate) struct ModelForward {
    lm: Arc<LoadedModel>,
    st: RunState,
    pool: KvPool,
    /// Made on first use: [min(EMBED_MAX_TOKENS, ctx)] positions.
    embed_kv: Option<KvCache>,
    ctx: usize,
}

impl ModelForward {
    pub fn new(lm: Arc<LoadedModel>, cfg: &EngineConfig) -> Self {
        let mc = &lm.model.config;
        let pool = KvPool::new(mc, cfg.pool_blocks(), cfg.kv_type);
        // Logit rows: one per sequence, plus the verification rows of speculation (a request's
        // prediction drafts even when the configured speculation is off).
        let spec_rows = match cfg.spec.mode {
            SpecMode::Off => crate::PREDICTION_MAX_DRAFT,
            _ => cfg.spec.max_rows.max(crate::PREDICTION_MAX_DRAFT),
        };
        let st = RunState::new(mc, cfg.step_tokens.max(cfg.slots), cfg.slots, cfg.ctx)
            .with_logit_rows(cfg.slots + spec_rows);
        Self {
            lm,
            st,
            pool,
            embed_kv: None,
            ctx: cfg.ctx,
        }
    }
}

impl Forward for ModelForward {
    fn max_batch(&self) -> usize {
        self.st.max_batch
    }
    fn logit_capacity(&self) -> usize {
        self.st.logit_capacity()
    }
    fn depth_unit(&self) -> usize {
        self.lm.model.depth_unit()
    }
    fn step(&mut self, seqs: &mut [SeqStep]) -> Result<()> {
        self.lm
            .model
            .step(&mut self.st, &mut self.pool, seqs)
            .map_err(EngineError::from)
    }
    fn logit_row_mut(&mut self, k: usize, j: usize) -> Option<&mut [f32]> {
        self.st.logit_row_mut(k, j)
    }
    fn copy_block(&mut self, src: u32, dst: u32, rows: usize) {
        self.pool.copy_block(src, dst, rows);
    }
    fn embed(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let mc = &self.lm.model.config;
        let ctx = super::EMBED_MAX_TOKENS.min(self.ctx);
        let kv = self.embed_kv.get_or_insert_with(|| KvCache::new(mc, ctx));
        self.lm.model.embed(&mut self.st, kv, tokens).map_err(EngineError::from)
    }
}
