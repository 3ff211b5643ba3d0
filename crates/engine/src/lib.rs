//! Turning a model into text generation.
//!
//! Layout
//! - `sampler`: `SamplingParams` and `Sampler` — logit bias, penalties, greedy/temperature/top-k/top-p/min-p.
//! - `loaded`: `LoadedModel` — model, tokenizer and chat template from one GGUF file.
//! - `single`: one sequence run directly on the model, for logits.
//! - `scorer`: log-likelihood of a continuation given a context (multiple-choice evaluation).
//! - `request`: the scheduler's contract — `GenRequest`, `EngineConfig`, `Event`, `EngineStats`.
//! - `scheduler`: continuous batching over many sequences on a thread of its own (the server's).
//! - `kv_blocks`: who holds which KV block, and the prefix cache over full blocks.
//! - `draft`: speculative decoding's drafters (n-gram prompt lookup, a smaller model) and the
//!   adaptive draft length.
//! - `prediction`: Predicted Outputs — the caller's expected answer as the speculative draft.
//! - `stop`: stop strings matched across token boundaries.
//! - `logprobs`: log-probabilities for the API's `logprobs`.
//! - `grammar`: constrained decoding (llguidance): JSON schemas and Lark grammars as token masks.

mod draft;
mod grammar;
mod kv_blocks;
mod loaded;
mod logprobs;
mod prediction;
mod request;
mod sampler;
mod scheduler;
mod scorer;
mod single;
mod stop;

pub use draft::{ngram_draft, ModelDrafter, SpecConfig, SpecMode, SpecState, VERIFY_ROW_COST};
pub use grammar::{Grammar, Grammars};
pub use loaded::LoadedModel;
pub use logprobs::{Logprobs, TokenLogprob};
pub use prediction::{Prediction, PredictionUsage, PREDICTION_MAX_DRAFT};
pub use request::{EndCheck, EngineConfig, EngineStats, Event, FinishReason, GenRequest, Priority};
pub use sampler::{argmax, Sampler, SamplingParams};
pub use scheduler::{EngineHandle, EMBED_MAX_TOKENS};
pub use scorer::{log_softmax_at, ContinuationScore, Scorer, SCORE_ROWS};
pub use single::{SingleSequence, PREFILL_BATCH};
pub use stop::{StopMatcher, StopOutcome};
pub use tandem_kernels::rng::Rng;
pub use tandem_model::KV_BLOCK;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] tandem_model::ModelError),
    #[error(transparent)]
    Text(#[from] tandem_text::TextError),
    #[error(transparent)]
    Gguf(#[from] tandem_gguf::GgufError),
    #[error("prompt of {prompt} tokens does not fit the context of {ctx} tokens")]
    PromptTooLong { prompt: usize, ctx: usize },
    #[error("the engine has stopped")]
    Stopped,
    #[error("the server is at capacity ({waiting} requests waiting)")]
    Overloaded { waiting: usize },
    #[error("invalid parameter {param}: {problem}")]
    BadParam { param: &'static str, problem: String },
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// What the layers above the engine (server, safety) need of a model: its tokenizer and template,
/// generation, and text embeddings. `EngineHandle` is the real one; the trait keeps those layers
/// off the scheduler's internals.
pub trait Backend: Send + Sync {
    /// The model being served (tokenizer, chat template, config).
    fn model(&self) -> &LoadedModel;
    /// Queues a generation; events arrive on the receiver, and dropping it cancels the request.
    fn submit(&self, req: GenRequest) -> Result<tokio::sync::mpsc::UnboundedReceiver<Event>>;
    /// The embedding of `tokens` (see `EngineHandle::embed`).
    fn embed(&self, tokens: Vec<u32>) -> Result<tokio::sync::oneshot::Receiver<Result<Vec<f32>>>>;
}

impl Backend for EngineHandle {
    fn model(&self) -> &LoadedModel {
        &self.model
    }
    fn submit(&self, req: GenRequest) -> Result<tokio::sync::mpsc::UnboundedReceiver<Event>> {
        EngineHandle::submit(self, req)
    }
    fn embed(&self, tokens: Vec<u32>) -> Result<tokio::sync::oneshot::Receiver<Result<Vec<f32>>>> {
        EngineHandle::embed(self, tokens)
    }
}
