//! The Files API's object.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileObject {
    pub id: String,
    pub object: String,
    pub bytes: u64,
    pub created_at: u64,
    pub filename: String,
    pub purpose: String,
    /// Always `processed`: a listed file has all of its bytes.
    pub status: String,
    pub expires_at: Option<u64>,
    pub status_details: Option<String>,
}
