//! `/v1/audio/transcriptions` and `/v1/audio/translations`: the `json` and `verbose_json` bodies
//! and their usage (seconds for whisper names, tokens for the gpt-4o transcribe names).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcription {
    pub text: String,
    /// With `include[]=logprobs`: each text token's log-probability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<TokenLogprob>>,
    pub usage: AudioUsage,
}

/// One token of a transcript with its log-probability and bytes (OpenAI's `logprobs` entries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f64,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerboseTranscription {
    pub task: String,
    pub language: String,
    pub duration: f64,
    pub text: String,
    /// `timestamp_granularities[]=word`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<TranscriptionWord>>,
    /// With no granularity named, or `segment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<Vec<TranscriptionSegment>>,
    pub usage: AudioUsage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptionWord {
    pub word: String,
    pub start: f64,
    pub end: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptionSegment {
    pub id: usize,
    pub seek: usize,
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub tokens: Vec<u32>,
    pub temperature: f64,
    pub avg_logprob: f64,
    pub compression_ratio: f64,
    pub no_speech_prob: f64,
}

/// OpenAI's two usage shapes, told apart by `type`; `cost` is tandem's addition (dollars).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AudioUsage {
    Duration {
        seconds: f64,
        cost: f64,
    },
    Tokens {
        input_tokens: u64,
        output_tokens: u64,
        total_tokens: u64,
        input_token_details: InputTokenDetails,
        cost: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputTokenDetails {
    pub audio_tokens: u64,
    pub text_tokens: u64,
}

/// A streamed transcription's server-sent events: the text as each 30-s window is decoded, then
/// the whole text with its usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum TranscriptEvent {
    #[serde(rename = "transcript.text.delta")]
    Delta {
        delta: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        logprobs: Option<Vec<TokenLogprob>>,
    },
    #[serde(rename = "transcript.text.done")]
    Done {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        logprobs: Option<Vec<TokenLogprob>>,
        usage: AudioUsage,
    },
}
