//! `POST /v1/completions`: the response and its stream chunks share one shape
//! (`object: "text_completion"`).

use serde::{Deserialize, Serialize};

use crate::{ChunkUsage, Usage};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextCompletion {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub system_fingerprint: String,
    pub choices: Vec<TextChoice>,
    /// Always there on a response; on a chunk, see `ChunkUsage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: ChunkUsage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextChoice {
    pub text: String,
    pub index: usize,
    pub logprobs: Option<CompletionLogprobs>,
    pub finish_reason: Option<String>,
}

/// The legacy format: parallel arrays, `text_offset` counted in characters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionLogprobs {
    pub tokens: Vec<String>,
    pub token_logprobs: Vec<f64>,
    /// Per token: alternative token text → log-probability, most likely first.
    pub top_logprobs: Vec<crate::OrderedMap<f64>>,
    pub text_offset: Vec<usize>,
}

impl TextCompletion {
    pub const OBJECT: &'static str = "text_completion";

    /// The usage of a full response (a chunk's may be absent).
    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref().and_then(Option::as_ref)
    }
}
