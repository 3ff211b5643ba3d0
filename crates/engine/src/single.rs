//! One sequence run directly on the model, for next-token logits (`tandem logits`, the reference
//! tests). Generation goes through the scheduler (`scheduler.rs`), the CLI's `run` included.

use tandem_model::{KvCache, RunState};

use crate::{LoadedModel, Result};

/// Owns the KV cache and scratch buffers of one sequence.
pub struct SingleSequence<'m> {
    lm: &'m LoadedModel,
    kv: KvCache,
    st: RunState,
}

/// Tokens per prefill batch: the scratch buffers hold this many.
pub const PREFILL_BATCH: usize = 256;

impl<'m> SingleSequence<'m> {
    /// With an f16 KV cache.
    pub fn new(lm: &'m LoadedModel, ctx: usize) -> Self {
        Self::with_kv_type(lm, ctx, tandem_model::KvType::F16)
    }

    pub fn with_kv_type(lm: &'m LoadedModel, ctx: usize, kv_type: tandem_model::KvType) -> Self {
        let cfg = &lm.model.config;
        Self {
            lm,
            kv: KvCache::with_type(cfg, ctx, kv_type),
            st: RunState::new(cfg, PREFILL_BATCH, 1, ctx),
        }
    }

    /// The same with its positions rotated by `rope` (the model must have YaRN for `Rope::Yarn`).
    pub fn with_rope(mut self, rope: tandem_model::Rope) -> Self {
        self.kv.reset(rope);
        self
    }

    pub fn ctx(&self) -> usize {
        self.kv.ctx()
    }

    /// Logits after `tokens` from an empty cache: [vocab].
    pub fn logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.kv.truncate(0);
        Ok(self.lm.model.forward(&mut self.st, &mut self.kv, tokens)?.to_vec())
    }

    /// Logits after `tokens` from an empty cache, the last `generated` of them run one at a time
    /// as generated tokens (the decode arithmetic), the others as a prompt: [vocab].
    pub fn logits_decoding(&mut self, tokens: &[u32], generated: usize) -> Result<Vec<f32>> {
        let split = tokens.len().saturating_sub(generated).max(1);
        let (prompt, rest) = tokens.split_at(split.min(tokens.len()));
        self.kv.truncate(0);
        let mut logits = self.lm.model.forward(&mut self.st, &mut self.kv, prompt)?.to_vec();
        for &t in rest {
            logits = self.lm.model.decode(&mut self.st, &mut self.kv, t)?.to_vec();
        }
        Ok(logits)
    }
}
