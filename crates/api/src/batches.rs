//! The Batch API: the batch object and the lines of its output and error files.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub id: String,
    pub object: String,
    pub endpoint: String,
    /// `{"object": "list", "data": [BatchError…]}` when validation failed.
    pub errors: Option<Value>,
    pub input_file_id: String,
    pub completion_window: String,
    pub status: String,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    pub created_at: u64,
    pub in_progress_at: Option<u64>,
    pub expires_at: u64,
    pub finalizing_at: Option<u64>,
    pub completed_at: Option<u64>,
    pub failed_at: Option<u64>,
    pub expired_at: Option<u64>,
    pub cancelling_at: Option<u64>,
    pub cancelled_at: Option<u64>,
    pub request_counts: RequestCounts,
    pub metadata: Option<Value>,
    pub model: Option<String>,
    pub usage: BatchUsage,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestCounts {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
}

/// A batch's tokens in the Responses-style names OpenAI's batch object uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchUsage {
    pub input_tokens: u64,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: u64,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u64,
    /// tandem's addition: dollars, at the batch price.
    pub cost: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InputTokensDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputTokensDetails {
    pub reasoning_tokens: u64,
}

/// A validation problem of an input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchError {
    pub code: String,
    pub message: String,
    pub param: Option<String>,
    pub line: Option<usize>,
}

/// One line of an output or error file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchLineResult {
    pub id: String,
    pub custom_id: String,
    pub response: Option<BatchLineResponse>,
    pub error: Option<BatchLineError>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchLineResponse {
    pub status_code: u16,
    pub request_id: String,
    /// The response body, as the endpoint would have answered.
    pub body: Value,
}

/// Why a line never ran (cancelled, expired).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchLineError {
    pub code: String,
    pub message: String,
}
