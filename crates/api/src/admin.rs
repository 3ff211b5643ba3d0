//! Admin objects: API keys, projects, usage rows.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub object: String,
    pub name: String,
    pub redacted_value: String,
    pub created_at: u64,
    pub revoked_at: Option<u64>,
    pub admin: bool,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub budget: Option<f64>,
    pub spent: f64,
    pub moderation: Option<String>,
    pub project_id: Option<String>,
    /// The key itself: only in the answer that created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub object: String,
    pub name: String,
    pub created_at: u64,
    pub archived_at: Option<u64>,
    /// `active` or `archived`.
    pub status: String,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub budget: Option<f64>,
    pub spent: f64,
    /// What archiving did (only in the archive answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_revoked: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batches_cancelled: Option<usize>,
}

/// One group of `GET /v1/usage`: the group's values (the dimensions asked for) and its totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    /// UTC hour `YYYY-MM-DDTHH` (`by=hour`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hour: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    pub requests: u64,
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub output_tokens: u64,
    pub cost: f64,
}
