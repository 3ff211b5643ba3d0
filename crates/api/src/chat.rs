//! `POST /v1/chat/completions`: the response, and the chunks of a stream.

use serde::{Deserialize, Serialize};

use crate::{ChunkUsage, Usage};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: Usage,
    pub system_fingerprint: String,
    /// `default`, or `batch` for a batch line.
    pub service_tier: String,
}

impl ChatCompletion {
    pub const OBJECT: &'static str = "chat.completion";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    pub index: usize,
    pub message: AssistantMessage,
    pub logprobs: Option<ChatLogprobs>,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    pub role: String,
    pub content: Option<String>,
    /// The refusal text when the request was refused (then `content` is null).
    pub refusal: Option<String>,
    pub annotations: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// With `modalities: ["text", "audio"]`: the answer spoken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<MessageAudio>,
}

/// A streamed spoken answer's piece: base64 pcm16 (24 kHz) and its words; the choice's last
/// piece carries `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioDelta {
    pub id: String,
    pub data: String,
    pub transcript: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// A spoken answer: its id (a later turn may name it instead of repeating the text), the audio
/// (base64, in the requested format), when the id stops working, and the words spoken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageAudio {
    pub id: String,
    pub data: String,
    pub expires_at: u64,
    pub transcript: String,
}

impl AssistantMessage {
    pub fn text(content: String) -> Self {
        Self {
            role: "assistant".into(),
            content: Some(content),
            refusal: None,
            annotations: Vec::new(),
            tool_calls: None,
            audio: None,
        }
    }

    pub fn refusal(text: &str) -> Self {
        Self {
            content: None,
            refusal: Some(text.into()),
            ..Self::text(String::new())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// JSON text.
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatLogprobs {
    pub content: Vec<TokenLogprob>,
    pub refusal: Option<Vec<TokenLogprob>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    pub token: String,
    /// The engine's f32, widened exactly (a client reads the model's number, not a rounding).
    pub logprob: f64,
    pub bytes: Vec<u8>,
    pub top_logprobs: Vec<TopLogprob>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f64,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub system_fingerprint: String,
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: ChunkUsage,
}

impl ChatCompletionChunk {
    pub const OBJECT: &'static str = "chat.completion.chunk";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    pub index: usize,
    pub delta: Delta,
    pub logprobs: Option<ChatLogprobs>,
    pub finish_reason: Option<String>,
}

/// What a chunk adds to a choice; absent fields are left out (`{}` on the last chunk).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// `Some(None)`: an explicit `null` (a refusal's first chunk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioDelta>,
}

impl Delta {
    /// The first chunk of a choice: the role, empty content.
    pub fn start() -> Self {
        Self {
            role: Some("assistant".into()),
            content: Some(Some(String::new())),
            refusal: Some(None),
            tool_calls: None,
            audio: None,
        }
    }

    pub fn content(text: String) -> Self {
        Self {
            content: Some(Some(text)),
            ..Self::default()
        }
    }

    pub fn refusal(text: &str) -> Self {
        Self {
            role: Some("assistant".into()),
            content: Some(None),
            refusal: Some(Some(text.into())),
            tool_calls: None,
            audio: None,
        }
    }
}

/// A piece of a tool call in a stream: id, type and name first, then the arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    pub index: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub function: FunctionDelta,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub arguments: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_leave_out_what_they_do_not_carry() {
        let j = |d: &Delta| serde_json::to_string(d).unwrap();
        assert_eq!(j(&Delta::default()), "{}");
        assert_eq!(j(&Delta::content("hi".into())), r#"{"content":"hi"}"#);
        assert_eq!(
            j(&Delta::start()),
            r#"{"role":"assistant","content":"","refusal":null}"#
        );
        assert_eq!(
            j(&Delta::refusal("no")),
            r#"{"role":"assistant","content":null,"refusal":"no"}"#
        );
    }

    #[test]
    fn a_chunk_carries_usage_only_when_asked() {
        let mut c = ChatCompletionChunk {
            id: "x".into(),
            object: ChatCompletionChunk::OBJECT.into(),
            created: 1,
            model: "m".into(),
            system_fingerprint: "f".into(),
            choices: vec![],
            usage: None,
        };
        assert!(!serde_json::to_string(&c).unwrap().contains("usage"));
        c.usage = Some(None);
        assert!(serde_json::to_string(&c).unwrap().contains(r#""usage":null"#));
        c.usage = Some(Some(Usage::new(3, 1, 2, Default::default())));
        let v: serde_json::Value = serde_json::to_value(&c).unwrap();
        assert_eq!(v["usage"]["total_tokens"], 5);
        assert_eq!(v["usage"]["completion_tokens_details"]["reasoning_tokens"], 0);
    }
}
