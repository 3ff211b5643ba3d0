//! Projects: the tenants of a server. Every key belongs to one; files, batches, their output files
//! and usage records belong to the project of the key that made them, and no other project's key
//! can see them. Limits and budgets on a project apply on top of its keys' own.

/// A project as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectRecord {
    /// `proj_` + 24 hex digits (96 random bits).
    pub id: String,
    pub name: String,
    pub created_at: u64,
    /// Archived: its keys are revoked, it takes no new work, its objects are reachable by no key.
    pub archived_at: Option<u64>,
    /// Requests per minute over all of the project's keys; `None`: no project-wide limit.
    pub rpm: Option<u64>,
    /// Tokens (prompt + completion) per minute over all of its keys.
    pub tpm: Option<u64>,
    /// Dollars; the project's requests stop when `spent` reaches it.
    pub budget: Option<f64>,
    /// Dollars recorded against the project's keys so far.
    pub spent: f64,
}

impl ProjectRecord {
    /// A new, active project with no limits.
    pub fn new(name: impl Into<String>, created_at: u64) -> crate::Result<Self> {
        Ok(Self {
            id: crate::ids::random_id("proj_", 12)?,
            name: name.into(),
            created_at,
            archived_at: None,
            rpm: None,
            tpm: None,
            budget: None,
            spent: 0.0,
        })
    }
}

/// A change to a project's limits: `Some(None)` clears one.
#[derive(Debug, Clone, Default)]
pub struct ProjectUpdate {
    pub name: Option<String>,
    pub rpm: Option<Option<u64>>,
    pub tpm: Option<Option<u64>>,
    pub budget: Option<Option<f64>>,
}

/// What archiving a project did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Archived {
    pub keys_revoked: usize,
    /// Unfinished batches moved to `cancelling` (the batch worker ends them).
    pub batches_cancelled: usize,
}
