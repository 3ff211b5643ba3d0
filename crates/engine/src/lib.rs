//! Turning a model into text generation.
//!
//! Layout
//! - `rng`: a small seeded RNG (xoshiro256**) so the same seed gives the same output on every build.
//! - `sampler`: `SamplingParams` and `Sampler` — logit bias, penalties, greedy/temperature/top-k/top-p/min-p.
//! - `loaded`: `LoadedModel` — model, tokenizer and chat template from one GGUF file.
//! - `generate`: a single-sequence generation loop with streaming callbacks and timings.

mod generate;
mod loaded;
mod rng;
mod sampler;

pub use generate::{FinishReason, Generation, Generator, Timings, PREFILL_BATCH};
pub use loaded::LoadedModel;
pub use rng::Rng;
pub use sampler::{argmax, Sampler, SamplingParams};

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
    #[error("invalid parameter {param}: {problem}")]
    BadParam {
        param: &'static str,
        problem: String,
    },
}

pub type Result<T> = std::result::Result<T, EngineError>;
