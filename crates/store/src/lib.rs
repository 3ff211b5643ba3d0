//! Durable state of a tandem server: uploaded files, batches with their per-line state and results,
//! and usage records. Everything a client was told exists is written here before the answer goes out.
//!
//! Layout
//! - `types`: the records (`FileRecord`, `BatchRecord`, `BatchStatus`, `LineResult`, `UsageRecord`).
//! - `sqlite`: `SqliteStore`, the embedded implementation (one WAL database file, migrated on open);
//!   `migrations`: its schema, migration by migration; `rows`: its column lists and row mappers.
//! - `pg_store`: `PgStore`, the same contract on PostgreSQL for many replicas; `pg_migrations`:
//!   its schema (the SQLite schema's latest shape in PostgreSQL's types); `pg_rows`: its row mappers.
//! - `copy`: an embedded store moved into PostgreSQL (`tandem migrate-store`).
//! - `blobs`: `BlobDir`, file bytes on disk beside the database (written atomically).
//! - `keys`: API key generation and the HMAC digests the store keeps instead of keys.
//! - `projects`: the tenants that own keys, files, batches and usage.
//! - `ids`: object ids from the OS's CSPRNG.
//!
//! The `Store` trait is synchronous: SQLite answers in microseconds and async callers wrap calls in
//! `spawn_blocking`; `PgStore` keeps it so (the synchronous `postgres` client on those same
//! blocking threads), so the server has one code path for both backends.

mod blobs;
mod copy;
mod ids;
mod keys;
mod migrations;
mod pg_migrations;
mod pg_rows;
mod pg_store;
mod projects;
mod rows;
mod sqlite;
mod types;

pub use blobs::{BlobDir, BlobWriter};
pub use copy::{copy_into_postgres, Copied};
pub use ids::random_id;
pub use keys::{create_key, generate_key, hint, key_id, KeyRecord, KeyRing, KeyUpdate, NewKey};
pub use pg_store::PgStore;
pub use projects::{Archived, ProjectRecord, ProjectUpdate};
pub use sqlite::SqliteStore;
pub use types::{
    day_start, utc_date, BatchLine, BatchRecord, BatchStatus, BudgetReached, FileRecord, LineOutcome, LineResult,
    ModerationEvent, RequestCounts, ResponseRecord, SpendHold, UsageDim, UsageRecord, UsageRow, UsageTotals, HOLD_TTL,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Pg(#[from] ::postgres::Error),
    #[error("file store: {0}")]
    Io(#[from] std::io::Error),
    #[error("the database at {path} was written by a newer tandem (schema {found}, this build knows {known})")]
    NewerSchema { path: String, found: i64, known: i64 },
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A request the store refuses (an unknown or archived project); the message says which.
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Decides on a shared rate window's charges, `(age in seconds, tokens)` oldest first: admit?
pub type RateDecision<'a> = dyn FnMut(&[(f64, u64)]) -> bool + 'a;

/// Storage of files metadata, batches and usage. Implementations must make each method atomic.
pub trait Store: Send + Sync {
    fn insert_file(&self, f: &FileRecord) -> Result<()>;
    /// Any project's file: callers that answer a client check `project_id` (see `owned_by`).
    fn file(&self, id: &str) -> Result<Option<FileRecord>>;
    /// The files of `project` (`None`: the files of no project) newest first (or oldest first
    /// with `ascending`), after the file `after` in that order (a file of another project as
    /// `after` gives an empty page).
    fn list_files(
        &self,
        project: Option<&str>,
        purpose: Option<&str>,
        after: Option<&str>,
        limit: usize,
        ascending: bool,
    ) -> Result<Vec<FileRecord>>;
    /// Removes the record; `false` when there was none.
    fn delete_file(&self, id: &str) -> Result<bool>;
    /// Gives a file of no project to `project`; `false` when the file is missing or owned.
    fn assign_file(&self, id: &str, project: &str) -> Result<bool>;

    fn insert_batch(&self, b: &BatchRecord) -> Result<()>;
    fn batch(&self, id: &str) -> Result<Option<BatchRecord>>;
    /// The batches of `project` newest first, after the batch `after` (of the same project).
    fn list_batches(&self, project: Option<&str>, after: Option<&str>, limit: usize) -> Result<Vec<BatchRecord>>;
    /// Batches not in a final state, oldest first (what a worker has to carry on with).
    fn unfinished_batches(&self) -> Result<Vec<BatchRecord>>;
    /// Moves a batch to `to` (stamping its `*_at`) only if its status is one of `from`; `false` if not.
    fn transition(&self, id: &str, from: &[BatchStatus], to: BatchStatus, at: u64) -> Result<bool>;
    /// Validation failed: status `failed` with the errors (JSON list object), unless already final.
    fn fail_batch(&self, id: &str, errors_json: &str, at: u64) -> Result<bool>;
    /// Validation passed: stores the lines and moves `validating` → `in_progress` in one transaction.
    fn start_batch(&self, id: &str, model: &str, lines: &[BatchLine], at: u64) -> Result<bool>;
    /// Line numbers of the batch not yet answered, ascending.
    fn pending_lines(&self, id: &str) -> Result<Vec<u32>>;
    /// Claims up to `n` of the batch's unanswered lines for `worker` until `until` (unix
    /// seconds): lines nobody holds, or whose holder's lease ran out at `now` (its process died).
    /// Ascending. Two workers never get the same line while its lease lasts (PostgreSQL: `FOR
    /// UPDATE SKIP LOCKED`); a result is still recorded once however many ran it (`complete_line`).
    fn claim_lines(&self, id: &str, worker: &str, n: usize, now: u64, until: u64) -> Result<Vec<u32>>;
    /// Extends `worker`'s lease on those of `lines` it still holds unanswered.
    fn renew_lines(&self, id: &str, worker: &str, lines: &[u32], until: u64) -> Result<()>;
    /// Drops every claim (an embedded store at startup: whoever held them is gone).
    fn release_claims(&self) -> Result<()>;
    /// Whether other processes share this store (replicas on PostgreSQL): claims held by others
    /// are then live work, not leftovers of a crash, and rate limits are counted here.
    fn is_shared(&self) -> bool {
        false
    }

    /// A shared sliding rate window (replicas): under a lock on `subject`, forgets charges older
    /// than `window` seconds, shows `decide` the rest (`(age in seconds, tokens)`, oldest first)
    /// and, when it says yes, records a charge of `tokens` now; its id, or `None` when refused.
    /// The time is the database's, so replicas' clocks need not agree. Only shared stores count
    /// here (an embedded store's one server keeps its windows in memory).
    fn rate_admit(
        &self,
        _subject: &str,
        _window: f64,
        _tokens: u64,
        _decide: &mut RateDecision<'_>,
    ) -> Result<Option<i64>> {
        Err(StoreError::Invalid("this store keeps no shared rate windows".into()))
    }
    /// Sets a recorded charge's tokens (the request's real count).
    fn rate_settle(&self, _charge: i64, _tokens: u64) -> Result<()> {
        Ok(())
    }
    /// Removes a recorded charge (the request did not run).
    fn rate_release(&self, _charge: i64) -> Result<()> {
        Ok(())
    }
    /// The charges of `subject` within `window` seconds, `(age, tokens)` oldest first.
    fn rate_window(&self, _subject: &str, _window: f64) -> Result<Vec<(f64, u64)>> {
        Ok(Vec::new())
    }
    fn line(&self, id: &str, line: u32) -> Result<Option<BatchLine>>;
    /// Records a line's result and its usage in one transaction, only if the line is still pending:
    /// `false` means it was answered before (the caller's result is dropped, nothing is counted twice).
    fn complete_line(&self, id: &str, line: u32, result: &LineResult, usage: Option<&UsageRecord>) -> Result<bool>;
    /// Every answered line, ascending.
    fn line_results(&self, id: &str) -> Result<Vec<LineResult>>;
    fn request_counts(&self, id: &str) -> Result<RequestCounts>;
    /// Sums of the batch's usage records.
    fn batch_usage(&self, id: &str) -> Result<UsageTotals>;
    /// Ends a batch: inserts its output and error file records and sets the final status, in one
    /// transaction, if its status is one of `from`.
    fn finish_batch(
        &self,
        id: &str,
        from: &[BatchStatus],
        to: BatchStatus,
        output: Option<&FileRecord>,
        errors: Option<&FileRecord>,
        at: u64,
    ) -> Result<bool>;

    /// Records one response's usage and adds its cost to its key's spend, in one transaction; a
    /// spend hold of the same request id ends in it too.
    fn insert_usage(&self, u: &UsageRecord) -> Result<()>;
    /// Holds `amount` dollars of a running request's possible cost against its key's and its
    /// project's budgets — if each one's recorded spend plus the holds of requests still running is
    /// below it — until the request's usage is recorded (same id) or `release_spend`. So however
    /// many requests of one key run at once, a budget is overspent by at most one request's cost.
    /// `Some` names the budget that is reached. Holds older than an hour (a replica that died
    /// mid-request) no longer count.
    fn hold_spend(&self, h: &SpendHold) -> Result<Option<BudgetReached>>;
    /// Ends a hold whose request records no usage (it failed before running).
    fn release_spend(&self, id: &str) -> Result<()>;
    /// Usage records created at or after `since` (unix seconds), oldest first.
    fn usage_since(&self, since: u64) -> Result<Vec<UsageRecord>>;
    /// Records a moderation decision (a flagged or blocked input or output).
    fn insert_moderation(&self, e: &ModerationEvent) -> Result<()>;
    /// Moderation decisions since a Unix time, oldest first.
    fn moderation_since(&self, since: u64) -> Result<Vec<ModerationEvent>>;
    /// Totals of the records in `[since, until)`, grouped by `by` (in that order).
    fn usage_summary(&self, since: u64, until: u64, by: &[UsageDim]) -> Result<Vec<UsageRow>>;

    fn insert_key(&self, k: &KeyRecord, digest: &[u8]) -> Result<()>;
    /// The record and the digest of a key.
    fn key(&self, id: &str) -> Result<Option<(KeyRecord, Vec<u8>)>>;
    /// Every key, oldest first.
    fn list_keys(&self) -> Result<Vec<KeyRecord>>;
    fn update_key(&self, id: &str, u: &KeyUpdate) -> Result<bool>;
    fn revoke_key(&self, id: &str, at: u64) -> Result<bool>;
    /// Whether any key was ever created (then every request must present a valid one; revoking
    /// them all locks the server instead of opening it).
    fn has_keys(&self) -> Result<bool>;

    fn insert_project(&self, p: &ProjectRecord) -> Result<()>;
    fn project(&self, id: &str) -> Result<Option<ProjectRecord>>;
    /// Every project, oldest first.
    fn list_projects(&self) -> Result<Vec<ProjectRecord>>;
    fn update_project(&self, id: &str, u: &ProjectUpdate) -> Result<bool>;
    fn insert_response(&self, r: &ResponseRecord) -> Result<()>;
    /// Any project's response that has not expired at `now` (callers check `project_id`).
    fn response(&self, id: &str, now: u64) -> Result<Option<ResponseRecord>>;
    fn delete_response(&self, id: &str) -> Result<bool>;
    /// Replaces a stored response's object and conversation (a background response as it runs),
    /// and whether it is still pending.
    fn update_response(&self, id: &str, object: &str, messages: &str, pending: bool) -> Result<bool>;
    /// Background responses not finished (queued or running when written).
    fn pending_responses(&self) -> Result<Vec<ResponseRecord>>;
    /// Deletes the responses expired at `now`; how many.
    fn sweep_responses(&self, now: u64) -> Result<usize>;

    /// Archives an active project in one transaction: revokes its keys and moves its unfinished
    /// batches to `cancelling`. `None` when there is no such active project.
    fn archive_project(&self, id: &str, at: u64) -> Result<Option<Archived>>;
}

/// Whether an object of `owner` may be shown to a caller of project `caller` (`None`: a caller on
/// a server running open, who sees only the objects of no project).
pub fn owned_by(owner: Option<&str>, caller: Option<&str>) -> bool {
    owner == caller
}
