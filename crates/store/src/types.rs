//! The stored records. Field names follow OpenAI's objects where one exists.

use std::fmt;

/// An uploaded (or batch-produced) file; its bytes live in the `BlobDir` under `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub id: String,
    pub bytes: u64,
    pub created_at: u64,
    pub filename: String,
    /// `batch`, `user_data`, `batch_output`, …
    pub purpose: String,
    pub expires_at: Option<u64>,
    /// The project that owns the file; `None`: created while the server ran open, or not
    /// attributable when projects came in (reachable by no key until an operator assigns it).
    pub project_id: Option<String>,
}

/// OpenAI's batch lifecycle: validating → in_progress → finalizing → completed, or failed (validation),
/// expired (window passed), cancelling → cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchStatus {
    Validating,
    InProgress,
    Finalizing,
    Completed,
    Failed,
    Expired,
    Cancelling,
    Cancelled,
}

/// `status IN (...)` for a list of statuses, in both dialects (their names are fixed identifiers,
/// not client input).
pub(crate) fn status_in(from: &[BatchStatus]) -> String {
    let names: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
    format!("status IN ({})", names.join(", "))
}

impl BatchStatus {
    pub const ALL: [BatchStatus; 8] = [
        Self::Validating,
        Self::InProgress,
        Self::Finalizing,
        Self::Completed,
        Self::Failed,
        Self::Expired,
        Self::Cancelling,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validating => "validating",
            Self::InProgress => "in_progress",
            Self::Finalizing => "finalizing",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Cancelling => "cancelling",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// No more work happens to a batch in a final state.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Expired | Self::Cancelled)
    }

    /// The column that records when the batch entered this status.
    pub(crate) fn at_column(self) -> &'static str {
        match self {
            Self::Validating => "created_at",
            Self::InProgress => "in_progress_at",
            Self::Finalizing => "finalizing_at",
            Self::Completed => "completed_at",
            Self::Failed => "failed_at",
            Self::Expired => "expired_at",
            Self::Cancelling => "cancelling_at",
            Self::Cancelled => "cancelled_at",
        }
    }
}

impl fmt::Display for BatchStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    pub id: String,
    pub endpoint: String,
    pub input_file_id: String,
    pub completion_window: String,
    pub status: BatchStatus,
    pub created_at: u64,
    pub expires_at: u64,
    pub in_progress_at: Option<u64>,
    pub finalizing_at: Option<u64>,
    pub completed_at: Option<u64>,
    pub failed_at: Option<u64>,
    pub expired_at: Option<u64>,
    pub cancelling_at: Option<u64>,
    pub cancelled_at: Option<u64>,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    /// OpenAI's `errors` object (JSON text) for a batch that failed validation.
    pub errors: Option<String>,
    /// The client's metadata (JSON text of a string map).
    pub metadata: Option<String>,
    /// The model every line names (known once validated).
    pub model: Option<String>,
    /// The API key that created the batch (its lines' usage is that key's).
    pub key_id: Option<String>,
    /// The project of that key: the batch, its lines' usage and its output files belong to it.
    pub project_id: Option<String>,
}

impl BatchRecord {
    /// A fresh batch in `validating`.
    pub fn new(id: String, endpoint: String, input_file_id: String, created_at: u64, expires_at: u64) -> Self {
        Self {
            id,
            endpoint,
            input_file_id,
            completion_window: "24h".into(),
            status: BatchStatus::Validating,
            created_at,
            expires_at,
            in_progress_at: None,
            finalizing_at: None,
            completed_at: None,
            failed_at: None,
            expired_at: None,
            cancelling_at: None,
            cancelled_at: None,
            output_file_id: None,
            error_file_id: None,
            errors: None,
            metadata: None,
            model: None,
            key_id: None,
            project_id: None,
        }
    }
}

/// One request of a batch's input file (line numbers count from 1, as OpenAI's errors do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchLine {
    pub line: u32,
    pub custom_id: String,
    /// The request body (JSON text).
    pub body: String,
}

/// How a line ended: its result goes to the output file (`Completed`) or the error file (`Failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOutcome {
    Completed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineResult {
    pub line: u32,
    pub outcome: LineOutcome,
    /// The output-file line (JSON text): `{"id", "custom_id", "response", "error"}`.
    pub json: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
}

/// One response's tokens and cost, recorded once.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    pub created_at: u64,
    pub request_id: String,
    /// `Some` for a batch line (with `line`); `None` for an interactive request.
    pub batch_id: Option<String>,
    pub line: Option<u32>,
    pub model: String,
    pub tier: String,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    pub completion_tokens: u64,
    /// Dollars.
    pub cost: f64,
    /// The API key that made the request (`None` when the server runs open).
    pub key_id: Option<String>,
    /// That key's project.
    pub project_id: Option<String>,
    /// From arrival to the last byte.
    pub latency_ms: u64,
    /// The HTTP status of the response (or of the batch line); 499 when the client left mid-stream.
    pub status: u16,
}

/// A moderation decision on a request: which categories, what was done. The text is kept only when
/// the operator asks for it (`--moderation-log-text`).
#[derive(Debug, Clone, PartialEq)]
pub struct ModerationEvent {
    pub created_at: u64,
    pub request_id: String,
    pub key_id: Option<String>,
    pub project_id: Option<String>,
    pub model: String,
    /// `input` or `output`.
    pub direction: String,
    /// `blocked` or `flagged`.
    pub action: String,
    pub categories: Vec<String>,
    pub text: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UsageTotals {
    pub records: u64,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    pub completion_tokens: u64,
    pub cost: f64,
}

/// A grouping of `usage_summary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageDim {
    /// UTC date, `YYYY-MM-DD`.
    Day,
    /// UTC hour, `YYYY-MM-DDTHH`.
    Hour,
    /// Key id (`-` for requests made without a key).
    Key,
    Model,
    /// Project id (`-` for requests made without a key).
    Project,
}

impl UsageDim {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "day" => Some(Self::Day),
            "hour" => Some(Self::Hour),
            "key" => Some(Self::Key),
            "model" => Some(Self::Model),
            "project" => Some(Self::Project),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Hour => "hour",
            Self::Key => "key",
            Self::Model => "model",
            Self::Project => "project",
        }
    }

    pub(crate) fn sql(self) -> &'static str {
        match self {
            Self::Day => "date(created_at, 'unixepoch')",
            Self::Hour => "strftime('%Y-%m-%dT%H', created_at, 'unixepoch')",
            Self::Key => "IFNULL(key_id, '-')",
            Self::Model => "model",
            Self::Project => "IFNULL(project_id, '-')",
        }
    }
}

/// One group of a usage summary: its values (one per dimension) and totals.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    pub group: Vec<String>,
    pub totals: UsageTotals,
}

/// Unix seconds of the start (00:00 UTC) of a `YYYY-MM-DD` day.
pub fn day_start(s: &str) -> Option<u64> {
    let mut it = s.splitn(3, '-');
    let (y, m, d): (i64, i64, i64) = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from 1970-01-01 (the civil-from-days inverse, proleptic Gregorian).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as u64 * 86_400)
}

/// The UTC date (`YYYY-MM-DD`) of a Unix time in seconds: `day_start`'s inverse (days-to-civil).
pub fn utc_date(secs: u64) -> String {
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_date_inverts_day_start() {
        assert_eq!(super::utc_date(0), "1970-01-01");
        assert_eq!(super::utc_date(1_793_491_200 + 86_399), "2026-11-01");
        for day in ["2024-02-29", "2024-03-01", "2000-12-31", "2026-11-27", "2100-03-01"] {
            assert_eq!(super::utc_date(super::day_start(day).unwrap() + 3600), day);
        }
    }

    #[test]
    fn day_start_counts_from_the_epoch() {
        assert_eq!(super::day_start("1970-01-01"), Some(0));
        assert_eq!(super::day_start("2026-11-01"), Some(1_793_491_200));
        assert_eq!(super::day_start("2024-03-01"), Some(1_709_251_200));
        assert_eq!(super::day_start("2026-13-01"), None);
        assert_eq!(super::day_start("yesterday"), None);
    }
}

/// A stored Responses API response: what `GET /v1/responses/{id}` shows, and what a later request's
/// `previous_response_id` continues from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseRecord {
    pub id: String,
    pub project_id: Option<String>,
    pub created_at: u64,
    /// Past it the response is gone (as if deleted).
    pub expires_at: u64,
    pub previous_response_id: Option<String>,
    /// The response object as the API shows it (JSON text).
    pub object: String,
    /// The whole conversation up to and including this response's output, as chat messages
    /// (JSON text of an array): the context a continuation starts from.
    pub messages: String,
    /// This request's input items with their ids (JSON text of an array).
    pub input_items: String,
    /// A background response not finished yet.
    pub pending: bool,
}

/// A running request's possible cost, held against its key's and project's budgets.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendHold {
    /// The request's id: its usage record carries the same.
    pub id: String,
    pub key_id: Option<String>,
    pub project_id: Option<String>,
    /// Dollars: the request's cost if it uses all of `max_tokens`.
    pub amount: f64,
    pub created_at: u64,
}

/// The budget a hold would pass: whose (`key` or `project`), the budget and what is spent and held.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetReached {
    pub scope: &'static str,
    pub budget: f64,
    pub committed: f64,
}

impl BudgetReached {
    /// The admission rule both backends apply: a hold passes while what is spent plus what is
    /// held stays under the budget; otherwise the budget `scope` is reached.
    pub fn check(scope: &'static str, budget: f64, spent: f64, held: f64) -> Option<Self> {
        (spent + held >= budget).then_some(Self {
            scope,
            budget,
            committed: spent + held,
        })
    }
}

/// Holds older than this no longer count (their replica died mid-request).
pub const HOLD_TTL: u64 = 3600;
