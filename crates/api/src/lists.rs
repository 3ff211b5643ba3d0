//! List envelopes: `{"object": "list", "data": [...]}`, with cursors where the list pages.

use serde::{Deserialize, Serialize};

/// A list with OpenAI's cursor fields (`after` = `last_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub object: String,
    pub data: Vec<T>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub has_more: bool,
}

impl<T> Page<T> {
    /// `data` with `id` read from each element.
    pub fn new(data: Vec<T>, has_more: bool, id: impl Fn(&T) -> &str) -> Self {
        Self {
            object: "list".into(),
            first_id: data.first().map(|x| id(x).to_string()),
            last_id: data.last().map(|x| id(x).to_string()),
            data,
            has_more,
        }
    }
}

/// A whole list, never paged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct List<T> {
    pub object: String,
    pub data: Vec<T>,
}

impl<T> List<T> {
    pub fn new(data: Vec<T>) -> Self {
        Self {
            object: "list".into(),
            data,
        }
    }
}

/// What a delete answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deleted {
    pub id: String,
    pub object: String,
    pub deleted: bool,
    /// A revoked key's revocation time (keys are revoked, never erased).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}
