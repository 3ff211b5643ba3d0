//! The scheduler's contract: what a caller sends (`GenRequest`, under an `EngineConfig`) and what it
//! gets back (`Event`s), and the counters the scheduler keeps (`EngineStats`).

use std::sync::atomic::{AtomicU64, AtomicUsize};

use crate::logprobs::Logprobs;
use crate::SamplingParams;

/// Load-time settings of one scheduler.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Sequences that can be active at once.
    pub slots: usize,
    /// Context size of each sequence, in tokens.
    pub ctx: usize,
    /// Blocks of `tandem_model::KV_BLOCK` positions in the KV pool that all sequences share
    /// (0: a whole context per slot). Never fewer than one context's worth.
    pub kv_blocks: usize,
    /// Most tokens in one forward step (decode tokens plus prompt chunks).
    pub step_tokens: usize,
    /// Element type of the KV cache.
    pub kv_type: tandem_model::KvType,
    /// Requests allowed to wait for a slot; more are refused (`EngineError::Overloaded`).
    pub max_queue: usize,
    /// An interactive request still waiting for a slot after this long is dropped with
    /// `Event::TimedOut` (batch work waits as long as it must).
    pub queue_timeout: std::time::Duration,
    /// Slots batch work leaves free, so an interactive request arriving while a batch runs finds
    /// a slot at once instead of waiting for a batch line to finish.
    pub batch_reserve: usize,
    /// Most prompt tokens of batch work in one step: a step in flight delays an arriving
    /// interactive request, so batch prefill runs in small chunks, and not at all in a step that
    /// prefills an interactive prompt.
    pub batch_prefill_chunk: usize,
    /// Speculative decoding (off by default).
    pub spec: crate::SpecConfig,
    /// Sequences whose prompt and `max_tokens` reach past this many positions rotate with the
    /// model's YaRN scaling for their whole life (`None`: none do, `Some(0)`: all do); the
    /// others keep the trained RoPE, bit for bit. The model must have `Config::yarn` for `Some`.
    pub yarn_past: Option<usize>,
}

impl EngineConfig {
    /// One slot per sequence, defaults for the rest.
    pub fn new(slots: usize, ctx: usize) -> Self {
        Self {
            slots,
            ctx,
            kv_blocks: 0,
            step_tokens: 256,
            kv_type: tandem_model::KvType::F16,
            max_queue: 256,
            queue_timeout: std::time::Duration::from_secs(300),
            batch_reserve: (slots / 4).max(1).min(slots.saturating_sub(1)),
            batch_prefill_chunk: 16,
            spec: crate::SpecConfig::default(),
            yarn_past: None,
        }
    }

    /// The RoPE of a sequence that may reach `positions` positions.
    pub fn rope_for(&self, positions: usize) -> tandem_model::Rope {
        tandem_model::Rope::reaching(positions, self.yarn_past)
    }

    /// Blocks in the KV pool.
    pub fn pool_blocks(&self) -> usize {
        let context = tandem_model::blocks_for(self.ctx);
        match self.kv_blocks {
            0 => self.slots * context,
            n => n.max(context),
        }
    }

    /// The blocks one choice of a request can grow into (its prompt and `max_tokens` within the
    /// context), and what each further choice reserves: the same less the prompt's full blocks,
    /// which it shares with the first.
    pub fn growth(&self, prompt: usize, max_tokens: usize) -> (usize, usize) {
        let grown = tandem_model::blocks_for((prompt + max_tokens).min(self.ctx));
        (grown, grown - prompt / tandem_model::KV_BLOCK)
    }

    /// Blocks a request of `n` choices reserves at most (before any prefix is found cached).
    pub fn blocks_needed(&self, prompt: usize, max_tokens: usize, n: usize) -> usize {
        let (grown, fork) = self.growth(prompt, max_tokens);
        grown + n.saturating_sub(1) * fork
    }
}

/// Why a choice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token (or the caller stopped it).
    Stop,
    /// `max_tokens` or the context ran out.
    Length,
    /// Cut by output moderation (set by the layer above the engine, never by the scheduler).
    ContentFilter,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ContentFilter => "content_filter",
        }
    }
}

/// Queue order: interactive requests always go before batch work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Interactive,
    Batch,
}

/// One generation request, already tokenised and validated.
#[derive(Debug, Clone)]
pub struct GenRequest {
    pub prompt: Vec<u32>,
    pub params: SamplingParams,
    pub max_tokens: usize,
    pub stop: Vec<String>,
    /// Independent samples of the same prompt (they share its prefill).
    pub n: usize,
    /// `Some(k)`: report the chosen token's logprob and the k most likely alternatives.
    pub top_logprobs: Option<usize>,
    pub priority: Priority,
    /// Who asked (an API key's hash; 0 for anonymous). Within a priority, the queue admits the
    /// tenant that has been served least, so one tenant's burst cannot starve the others.
    pub tenant: u64,
    /// Output constrained to this grammar (structured outputs, tool calls).
    pub grammar: Option<crate::Grammar>,
    /// With a trigger, the grammar applies only from the token after the trigger token (a tool
    /// call the model chose to start); before it, output is free.
    pub grammar_trigger: Option<u32>,
    /// Predicted Outputs: tokens the answer is expected to repeat, verified as speculative drafts
    /// (empty: none).
    pub prediction: Vec<u32>,
    /// Ends a choice early when its text so far is complete (see `EndCheck`).
    pub end_check: Option<EndCheck>,
}

/// A judge of a choice's text so far.
pub type TextJudge = std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Ends a choice at a `token` when `judge`, reading the choice's text so far, says the answer is
/// complete: the server's rule that a further tool call adding nothing ends a list of parallel
/// calls (the grammar cannot know it). And the other way: where the model ends, `go_on` may say
/// the answer goes on with its token instead (another tool call after the model's own call form).
#[derive(Clone)]
pub struct EndCheck {
    pub token: u32,
    pub judge: TextJudge,
    pub go_on: Option<(u32, TextJudge)>,
}

impl std::fmt::Debug for EndCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EndCheck(at token {})", self.token)
    }
}

impl GenRequest {
    /// One interactive choice of `prompt`, no stop strings, logprobs or grammar; callers set the
    /// rest with struct-update syntax.
    pub fn new(prompt: Vec<u32>, params: SamplingParams, max_tokens: usize) -> Self {
        Self {
            prompt,
            params,
            max_tokens,
            stop: Vec::new(),
            n: 1,
            top_logprobs: None,
            priority: Priority::Interactive,
            tenant: 0,
            grammar: None,
            grammar_trigger: None,
            prediction: Vec::new(),
            end_check: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The request was admitted to a slot (sent once, before any token), with how much of the
    /// prompt was already in the slot's cache.
    Prefilled { prompt_tokens: usize, cached_tokens: usize },
    /// New text of one choice (may be empty when text is held back for a possible stop string).
    Token {
        choice: usize,
        text: String,
        logprobs: Option<Logprobs>,
    },
    Finished {
        choice: usize,
        reason: FinishReason,
        completion_tokens: usize,
        /// What the choice made of the request's prediction, when it had one.
        prediction: Option<crate::PredictionUsage>,
    },
    /// The request waited longer than the queue timeout for a slot and was dropped.
    TimedOut,
    /// The request could not be served (never for bad input: that is refused at `submit`).
    Failed(String),
}

/// Counters for metrics, updated by the scheduler thread.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Requests submitted and not yet admitted (kept by `submit` and the scheduler together).
    pub waiting: AtomicUsize,
    pub active: AtomicUsize,
    pub steps: AtomicU64,
    /// Sum over steps of the sequences in the step (÷ steps = mean sequences per forward pass).
    pub step_seqs: AtomicU64,
    pub max_step_seqs: AtomicUsize,
    pub prompt_tokens: AtomicU64,
    pub cached_tokens: AtomicU64,
    pub generated_tokens: AtomicU64,
    /// KV positions in use across busy slots.
    pub kv_used: AtomicUsize,
    /// KV blocks: in the pool, held by running sequences, and cached (held by none, kept for
    /// prefix reuse until their room is needed).
    pub kv_blocks_total: AtomicUsize,
    pub kv_blocks_in_use: AtomicUsize,
    pub kv_blocks_cached: AtomicUsize,
    /// Speculative decoding: verification steps of a sequence, draft tokens proposed, and those
    /// the target kept.
    pub spec_verifications: AtomicU64,
    pub spec_proposed: AtomicU64,
    pub spec_accepted: AtomicU64,
}
