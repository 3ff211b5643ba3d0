//! OpenAI's wire formats as serde types: what tandem answers, rendered in one place. No logic
//! beyond constructors; the server fills these and serialises them.
//!
//! Layout
//! - `audio`: transcriptions and translations (`json`, `verbose_json`, usage).
//! - `usage`: token counts and the cost tandem adds (`Usage`).
//! - `chat`: chat completions and their stream chunks.
//! - `completion`: legacy text completions (responses and chunks share one shape).
//! - `embeddings`: `/v1/embeddings`' list of vectors.
//! - `error`: the error body.
//! - `lists`: list envelopes and delete answers.
//! - `files`, `batches`: the Files and Batch APIs' objects and batch result lines.
//! - `admin`: API keys, projects, usage rows.
//! - `models`: models, moderation results, tokenize/detokenize, health.
//! - `responses`: the Responses API's response object and output items.

pub mod admin;
pub mod audio;
pub mod batches;
pub mod chat;
pub mod completion;
pub mod embeddings;
pub mod error;
pub mod files;
pub mod lists;
pub mod models;
pub mod responses;
pub mod usage;

pub use admin::{ApiKey, Project, UsageRow};
pub use batches::{
    Batch, BatchError, BatchLineError, BatchLineResponse, BatchLineResult, BatchUsage, InputTokensDetails,
    OutputTokensDetails, RequestCounts,
};
pub use files::FileObject;
pub use lists::{Deleted, List, Page};
pub use models::{
    Detokenized, Health, Model, ModelPricing, Moderation, ModerationResult, OrderedMap, Perceived, Share, TextLine,
    Tokenized,
};

pub use chat::{
    AssistantMessage, AudioDelta, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatLogprobs, ChunkChoice, Delta,
    FunctionCall, FunctionDelta, MessageAudio, TokenLogprob, ToolCall, ToolCallDelta, TopLogprob,
};
pub use completion::{CompletionLogprobs, TextChoice, TextCompletion};
pub use embeddings::{EmbeddingList, EmbeddingUsage, Vector};
pub use error::{ErrorBody, ErrorDetail};
pub use responses::{IncompleteDetails, OutputContent, OutputItem, Response, ResponseInputDetails, ResponseUsage};
pub use usage::{CompletionTokensDetails, Cost, PromptTokensDetails, Usage};

/// A chunk's `usage`: absent unless the client asked for it (`stream_options.include_usage`),
/// then `null` on every chunk but the last.
pub type ChunkUsage = Option<Option<Usage>>;
