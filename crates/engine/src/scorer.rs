//! Log-likelihood of a continuation given a context, as multiple-choice evaluations score answers
//! (lm-evaluation-harness `loglikelihood`): log p(cont | context) = Σ_j log softmax(logits_j)[cont_j],
//! where logits_j are the model's logits after context + cont[..j].
//!
//! The KV cache keeps the last scored tokens, so the choices of one question share the prefill of
//! their context: scoring k choices costs one context prefill plus k short steps.

use tandem_model::{KvCache, RunState};

use crate::{EngineError, LoadedModel, Result};

/// Logit rows one step may produce: continuations longer than this are scored in several steps.
pub const SCORE_ROWS: usize = 64;

/// The score of one continuation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContinuationScore {
    /// Σ log p(token | everything before it), natural log.
    pub logprob: f64,
    /// Whether every continuation token was the model's most likely token (lm-eval's `is_greedy`).
    pub greedy: bool,
    pub tokens: usize,
}

/// Owns the KV cache and scratch buffers of one scoring sequence.
pub struct Scorer<'m> {
    lm: &'m LoadedModel,
    kv: KvCache,
    st: RunState,
    /// The tokens whose keys and values `kv` holds: kv.len == cached.len().
    cached: Vec<u32>,
}

impl<'m> Scorer<'m> {
    pub fn new(lm: &'m LoadedModel, ctx: usize) -> Self {
        let cfg = &lm.model.config;
        Self {
            lm,
            kv: KvCache::new(cfg, ctx),
            st: RunState::new(cfg, crate::PREFILL_BATCH, SCORE_ROWS, ctx),
            cached: Vec::new(),
        }
    }

    /// log p(`cont` | `context`). Both must be non-empty and fit the context window together.
    pub fn score(&mut self, context: &[u32], cont: &[u32]) -> Result<ContinuationScore> {
        if context.is_empty() || cont.is_empty() {
            return Err(EngineError::BadParam {
                param: if context.is_empty() { "context" } else { "continuation" },
                problem: "must not be empty".into(),
            });
        }
        let total = context.len() + cont.len();
        if total > self.kv.ctx() {
            return Err(EngineError::PromptTooLong {
                prompt: total,
                ctx: self.kv.ctx(),
            });
        }
        // The rows that predict cont come after context[last] and cont[..n-1]: start the scored
        // steps at the context's last token, reusing whatever prefix the cache already holds.
        let start = context.len() - 1;
        let keep = self
            .cached
            .iter()
            .zip(context)
            .take_while(|(a, b)| a == b)
            .count()
            .min(start);
        self.kv.truncate(keep);
        self.cached.truncate(keep);
        let model = &self.lm.model;
        if keep < start {
            model.forward(&mut self.st, &mut self.kv, &context[keep..start])?;
            self.cached.extend_from_slice(&context[keep..start]);
        }

        let mut fed: Vec<u32> = Vec::with_capacity(cont.len());
        fed.push(context[start]);
        fed.extend_from_slice(&cont[..cont.len() - 1]);
        let vocab = model.config.vocab;
        let mut score = ContinuationScore {
            logprob: 0.0,
            greedy: true,
            tokens: cont.len(),
        };
        for (chunk, targets) in fed.chunks(SCORE_ROWS).zip(cont.chunks(SCORE_ROWS)) {
            let rows = model.forward_every(&mut self.st, &mut self.kv, chunk)?;
            self.cached.extend_from_slice(chunk);
            for (row, &target) in rows.chunks_exact(vocab).zip(targets) {
                let (lp, is_max) = log_softmax_at(row, target as usize);
                score.logprob += lp;
                score.greedy &= is_max;
            }
        }
        Ok(score)
    }
}

/// log softmax(row)[i] in f64, and whether row[i] is the row's maximum.
pub fn log_softmax_at(row: &[f32], i: usize) -> (f64, bool) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&x| ((x - max) as f64).exp()).sum();
    ((row[i] - max) as f64 - sum.ln(), row[i] >= max)
}

#[cfg(test)]
mod tests {
    use super::log_softmax_at;

    #[test]
    fn log_softmax_matches_the_definition() {
        let row = [1.0f32, 2.0, 3.0, -1.0];
        let z: f64 = row.iter().map(|&x| (x as f64).exp()).sum();
        for i in 0..row.len() {
            let (lp, is_max) = log_softmax_at(&row, i);
            assert!((lp - ((row[i] as f64).exp() / z).ln()).abs() < 1e-9);
            assert_eq!(is_max, i == 2);
        }
    }
}
