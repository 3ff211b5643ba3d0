//! `/v1/embeddings`: the list of vectors and its usage.

use serde::{Deserialize, Serialize};

use crate::usage::Cost;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingList {
    pub object: String,
    pub data: Vec<Embedding>,
    pub model: String,
    pub usage: EmbeddingUsage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    pub object: String,
    pub index: usize,
    pub embedding: Vector,
}

/// `encoding_format: "float"` gives numbers; `"base64"` the little-endian f32 bytes, base64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Vector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
    /// tandem's addition: what the request cost, in dollars.
    pub cost: Cost,
}

impl EmbeddingList {
    pub fn new(model: String, data: Vec<Embedding>, tokens: u64, cost: Cost) -> Self {
        Self {
            object: "list".into(),
            data,
            model,
            usage: EmbeddingUsage {
                prompt_tokens: tokens,
                total_tokens: tokens,
                cost,
            },
        }
    }
}
