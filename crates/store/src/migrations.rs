//! The SQLite schema, as the migrations that build it (never edited once shipped: a change is a
//! new migration), and the report of what a migration did to an existing store.

use rusqlite::Connection;

/// Schema migrations, applied in order; `PRAGMA user_version` is the number applied.
pub(crate) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE files (
    id TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    expires_at INTEGER
);
CREATE INDEX files_by_time ON files (created_at, id);
CREATE TABLE batches (
    id TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    input_file_id TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    in_progress_at INTEGER, finalizing_at INTEGER, completed_at INTEGER, failed_at INTEGER,
    expired_at INTEGER, cancelling_at INTEGER, cancelled_at INTEGER,
    output_file_id TEXT, error_file_id TEXT,
    errors TEXT, metadata TEXT, model TEXT, key_id TEXT,
    seq INTEGER NOT NULL
);
CREATE INDEX batches_by_seq ON batches (seq);
CREATE TABLE batch_lines (
    batch_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    custom_id TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    result TEXT,
    PRIMARY KEY (batch_id, line)
) WITHOUT ROWID;
CREATE TABLE usage (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    batch_id TEXT,
    line INTEGER,
    model TEXT NOT NULL,
    tier TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    key_id TEXT,
    latency_ms INTEGER NOT NULL DEFAULT 0,
    status INTEGER NOT NULL DEFAULT 200,
    UNIQUE (batch_id, line)
);
CREATE INDEX usage_by_time ON usage (created_at);
CREATE INDEX usage_by_key ON usage (key_id, created_at);
CREATE TABLE keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    digest BLOB NOT NULL,
    hint TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    admin INTEGER NOT NULL DEFAULT 0,
    rpm INTEGER,
    tpm INTEGER,
    budget REAL,
    spent REAL NOT NULL DEFAULT 0
);
"#,
    r#"
CREATE TABLE moderation_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    key_id TEXT,
    model TEXT NOT NULL,
    direction TEXT NOT NULL,
    action TEXT NOT NULL,
    categories TEXT NOT NULL,
    text TEXT
);
CREATE INDEX moderation_by_time ON moderation_events (created_at);
"#,
    r#"
ALTER TABLE keys ADD COLUMN moderation TEXT;
"#,
    // Projects. Every existing key gets a project of its own, named after it; a batch goes to its
    // key's project, and so do its input, output and error files when batches of exactly one
    // project name them. Everything else (files no batch names, objects made while the server ran
    // open, a file named by batches of several keys) belongs to no project: no key reaches it
    // until an operator assigns it (`tandem files assign`).
    r#"
PRAGMA defer_foreign_keys = ON;
CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    archived_at INTEGER,
    rpm INTEGER,
    tpm INTEGER,
    budget REAL,
    spent REAL NOT NULL DEFAULT 0
);
ALTER TABLE keys ADD COLUMN project_id TEXT REFERENCES projects (id);
ALTER TABLE files ADD COLUMN project_id TEXT REFERENCES projects (id);
ALTER TABLE batches ADD COLUMN project_id TEXT REFERENCES projects (id);
ALTER TABLE usage ADD COLUMN project_id TEXT;
ALTER TABLE moderation_events ADD COLUMN project_id TEXT;
UPDATE keys SET project_id = 'proj_' || lower(hex(randomblob(12)));
INSERT INTO projects (id, name, created_at, spent)
    SELECT project_id, CASE WHEN name = '' THEN id ELSE name END, created_at, spent FROM keys;
UPDATE batches SET project_id = (SELECT k.project_id FROM keys k WHERE k.id = batches.key_id);
CREATE TEMP TABLE file_owners AS
    SELECT f.id AS file_id, MIN(b.project_id) AS project_id,
           COUNT(DISTINCT IFNULL(b.project_id, '')) AS owners
    FROM files f JOIN batches b ON f.id IN (b.input_file_id, b.output_file_id, b.error_file_id)
    GROUP BY f.id;
UPDATE files SET project_id = (SELECT o.project_id FROM file_owners o WHERE o.file_id = files.id AND o.owners = 1);
DROP TABLE file_owners;
UPDATE usage SET project_id = (SELECT k.project_id FROM keys k WHERE k.id = usage.key_id);
UPDATE moderation_events SET project_id = (SELECT k.project_id FROM keys k WHERE k.id = moderation_events.key_id);
CREATE INDEX files_by_project ON files (project_id, created_at, id);
CREATE INDEX batches_by_project ON batches (project_id, seq);
CREATE INDEX usage_by_project ON usage (project_id, created_at);
"#,
    r#"
CREATE TABLE responses (
    id TEXT PRIMARY KEY,
    project_id TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    previous_response_id TEXT,
    object TEXT NOT NULL,
    messages TEXT NOT NULL,
    input_items TEXT NOT NULL,
    pending INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX responses_by_expiry ON responses (expires_at);
CREATE INDEX responses_pending ON responses (pending) WHERE pending = 1;
"#,
    // Batch lines claimed by a worker for a while (many replicas on one store).
    r#"
ALTER TABLE batch_lines ADD COLUMN claimed_by TEXT;
ALTER TABLE batch_lines ADD COLUMN lease_until INTEGER;
"#,
    // Running requests' possible costs, held against budgets until their usage is recorded.
    r#"
CREATE TABLE spend_holds (
    id TEXT PRIMARY KEY,
    key_id TEXT,
    project_id TEXT,
    amount REAL NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX spend_holds_by_key ON spend_holds (key_id);
CREATE INDEX spend_holds_by_project ON spend_holds (project_id);
"#,
];

/// The migration that brought in projects (1-based, as `user_version` counts).
pub(crate) const PROJECTS_MIGRATION: usize = 4;

/// One line on what the projects migration did with an existing store's objects.
pub(crate) fn projects_report(c: &Connection) -> rusqlite::Result<String> {
    let n = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
    Ok(format!(
        "store migrated to projects: {} keys each in a project of their own; {} batches and {} files \
         attributed to their key's project; {} batches and {} files belong to no project and are \
         reachable by no key (list them with `tandem files list --unassigned`, give them to a \
         project with `tandem files assign`)",
        n("SELECT COUNT(*) FROM keys")?,
        n("SELECT COUNT(*) FROM batches WHERE project_id IS NOT NULL")?,
        n("SELECT COUNT(*) FROM files WHERE project_id IS NOT NULL")?,
        n("SELECT COUNT(*) FROM batches WHERE project_id IS NULL")?,
        n("SELECT COUNT(*) FROM files WHERE project_id IS NULL")?,
    ))
}
