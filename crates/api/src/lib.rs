//! OpenAI's wire formats as serde types: what tandem answers, rendered in one place. No logic
//! beyond constructors; the server fills these and serialises them.
//!
//! Layout
//! - `usage`: token counts and the cost tandem adds (`Usage`).
//! - `chat`: chat completions and their stream chunks.
//! - `completion`: legacy text completions (responses and chunks share one shape).
//! - `error`: the error body.

pub mod chat;
pub mod completion;
pub mod error;
pub mod usage;

pub use chat::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatLogprobs, ChunkChoice, Delta, FunctionCall,
    FunctionDelta, TokenLogprob, ToolCall, ToolCallDelta, TopLogprob,
};
pub use completion::{CompletionLogprobs, TextChoice, TextCompletion};
pub use error::{ErrorBody, ErrorDetail};
pub use usage::{CompletionTokensDetails, Cost, PromptTokensDetails, Usage};

/// A chunk's `usage`: absent unless the client asked for it (`stream_options.include_usage`),
/// then `null` on every chunk but the last.
pub type ChunkUsage = Option<Option<Usage>>;
