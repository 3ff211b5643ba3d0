//! Single-sequence generation: prefill the prompt as one batch, then decode token by token.

use std::time::Instant;

use tandem_model::{KvCache, RunState};
use tandem_text::Detokenizer;

use crate::{EngineError, LoadedModel, Result, Sampler, SamplingParams};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token (or the caller stopped it).
    Stop,
    /// `max_tokens` or the context ran out.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    /// Prompt processing (prefill) time.
    pub prefill_s: f64,
    /// Time from the first generated token to the last.
    pub decode_s: f64,
    /// Time to first token: prefill plus the first sample.
    pub ttft_s: f64,
}

impl Timings {
    pub fn prefill_tps(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill_s.max(1e-9)
    }
    /// Decode speed over the tokens after the first (the first comes from prefill).
    pub fn decode_tps(&self) -> f64 {
        self.generated_tokens.saturating_sub(1) as f64 / self.decode_s.max(1e-9)
    }
}

pub struct Generation {
    pub tokens: Vec<u32>,
    pub text: String,
    pub finish: FinishReason,
    pub timings: Timings,
}

/// Owns the KV cache and scratch buffers of one sequence.
pub struct Generator<'m> {
    lm: &'m LoadedModel,
    kv: KvCache,
    st: RunState,
}

/// Tokens per prefill batch: the scratch buffers hold this many.
pub const PREFILL_BATCH: usize = 256;

impl<'m> Generator<'m> {
    /// A generator with an f16 KV cache.
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

    pub fn ctx(&self) -> usize {
        self.kv.ctx
    }

    /// Logits after `tokens` from an empty cache: [vocab].
    pub fn logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.kv.truncate(0);
        Ok(self.lm.model.forward(&mut self.st, &mut self.kv, tokens)?.to_vec())
    }

    /// Generates up to `max_tokens` after `prompt`. `on_text` receives each completed piece of
    /// text as it is produced and returns false to stop early.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        params: SamplingParams,
        max_tokens: usize,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<Generation> {
        let lm = self.lm;
        params.validate(lm.model.config.vocab)?;
        if prompt.is_empty() {
            return Err(EngineError::BadParam {
                param: "prompt",
                problem: "is empty".into(),
            });
        }
        if prompt.len() >= self.kv.ctx {
            return Err(EngineError::PromptTooLong {
                prompt: prompt.len(),
                ctx: self.kv.ctx,
            });
        }
        self.kv.truncate(0);
        let mut sampler = Sampler::new(params, prompt);
        let mut detok = Detokenizer::new();
        let mut timings = Timings {
            prompt_tokens: prompt.len(),
            ..Default::default()
        };
        let mut out = Generation {
            tokens: Vec::new(),
            text: String::new(),
            finish: FinishReason::Length,
            timings: Timings::default(),
        };

        let t0 = Instant::now();
        lm.model.forward(&mut self.st, &mut self.kv, prompt)?;
        timings.prefill_s = t0.elapsed().as_secs_f64();
        let mut t_first = None;
        while out.tokens.len() < max_tokens {
            let tok = sampler.sample(self.st.logits_of_mut(0).expect("logits of the last step"));
            if t_first.is_none() {
                t_first = Some(Instant::now());
                timings.ttft_s = t0.elapsed().as_secs_f64();
            }
            if lm.tokenizer.is_eog(tok) {
                out.finish = FinishReason::Stop;
                break;
            }
            sampler.accept(tok);
            out.tokens.push(tok);
            let piece = detok.push(&lm.tokenizer, tok);
            out.text.push_str(&piece);
            if !piece.is_empty() && !on_text(&piece) {
                out.finish = FinishReason::Stop;
                break;
            }
            if out.tokens.len() >= max_tokens || self.kv.len >= self.kv.ctx {
                break;
            }
            lm.model.decode(&mut self.st, &mut self.kv, tok)?;
        }
        let rest = detok.finish();
        if !rest.is_empty() {
            on_text(&rest);
            out.text.push_str(&rest);
        }
        if let Some(t) = t_first {
            timings.decode_s = t.elapsed().as_secs_f64();
        }
        timings.generated_tokens = out.tokens.len();
        out.timings = timings;
        Ok(out)
    }
}
