//! The PostgreSQL schema, as its migrations (never edited once shipped: a change is a new
//! migration, beside the SQLite one that makes the same change). A PostgreSQL store starts at
//! the SQLite schema's latest shape — there are no older PostgreSQL stores to carry forward — so
//! its first migration is that shape in PostgreSQL's types: BIGINT for integers and unix seconds,
//! DOUBLE PRECISION for dollars, BOOLEAN for flags, BYTEA for digests, identity columns for the
//! orderings SQLite gets from `rowid`/`MAX(seq) + 1` (the latter is not safe with many writers).
//! `tests/schema_facts.rs` checks that both dialects have the same tables, columns and
//! nullability.

/// Applied in order; `schema_version` holds the number applied.
pub(crate) const PG_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    archived_at BIGINT,
    rpm BIGINT,
    tpm BIGINT,
    budget DOUBLE PRECISION,
    spent DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE TABLE files (
    id TEXT PRIMARY KEY,
    bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    expires_at BIGINT,
    project_id TEXT REFERENCES projects (id)
);
CREATE INDEX files_by_time ON files (created_at, id);
CREATE INDEX files_by_project ON files (project_id, created_at, id);
CREATE TABLE batches (
    id TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    input_file_id TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    in_progress_at BIGINT, finalizing_at BIGINT, completed_at BIGINT, failed_at BIGINT,
    expired_at BIGINT, cancelling_at BIGINT, cancelled_at BIGINT,
    output_file_id TEXT, error_file_id TEXT,
    errors TEXT, metadata TEXT, model TEXT, key_id TEXT,
    seq BIGINT GENERATED ALWAYS AS IDENTITY NOT NULL,
    project_id TEXT REFERENCES projects (id)
);
CREATE INDEX batches_by_seq ON batches (seq);
CREATE INDEX batches_by_project ON batches (project_id, seq);
CREATE TABLE batch_lines (
    batch_id TEXT NOT NULL,
    line BIGINT NOT NULL,
    custom_id TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    result TEXT,
    PRIMARY KEY (batch_id, line)
);
CREATE TABLE usage (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    batch_id TEXT,
    line BIGINT,
    model TEXT NOT NULL,
    tier TEXT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cost DOUBLE PRECISION NOT NULL,
    key_id TEXT,
    latency_ms BIGINT NOT NULL DEFAULT 0,
    status BIGINT NOT NULL DEFAULT 200,
    project_id TEXT,
    UNIQUE (batch_id, line)
);
CREATE INDEX usage_by_time ON usage (created_at);
CREATE INDEX usage_by_key ON usage (key_id, created_at);
CREATE INDEX usage_by_project ON usage (project_id, created_at);
CREATE TABLE keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    digest BYTEA NOT NULL,
    hint TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    admin BOOLEAN NOT NULL DEFAULT FALSE,
    rpm BIGINT,
    tpm BIGINT,
    budget DOUBLE PRECISION,
    spent DOUBLE PRECISION NOT NULL DEFAULT 0,
    moderation TEXT,
    project_id TEXT REFERENCES projects (id)
);
CREATE TABLE moderation_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    key_id TEXT,
    model TEXT NOT NULL,
    direction TEXT NOT NULL,
    action TEXT NOT NULL,
    categories TEXT NOT NULL,
    text TEXT,
    project_id TEXT
);
CREATE INDEX moderation_by_time ON moderation_events (created_at);
CREATE TABLE responses (
    id TEXT PRIMARY KEY,
    project_id TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    previous_response_id TEXT,
    object TEXT NOT NULL,
    messages TEXT NOT NULL,
    input_items TEXT NOT NULL,
    pending BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX responses_by_expiry ON responses (expires_at);
CREATE INDEX responses_pending ON responses (pending) WHERE pending;
CREATE TABLE server_secret (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    secret BYTEA NOT NULL
);
"#,
    // Batch lines claimed by a worker for a while (SQLite's migration 6).
    r#"
ALTER TABLE batch_lines ADD COLUMN claimed_by TEXT;
ALTER TABLE batch_lines ADD COLUMN lease_until BIGINT;
"#,
    // Rate-limit charges shared by replicas (PostgreSQL only: SQLite's one server keeps them in
    // memory). `at` is the database's clock, in unix seconds.
    r#"
CREATE TABLE rate_charges (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    tokens BIGINT NOT NULL
);
CREATE INDEX rate_charges_by_subject ON rate_charges (subject, at);
"#,
    // Running requests' possible costs (SQLite's migration 7).
    r#"
CREATE TABLE spend_holds (
    id TEXT PRIMARY KEY,
    key_id TEXT,
    project_id TEXT,
    amount DOUBLE PRECISION NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX spend_holds_by_key ON spend_holds (key_id);
CREATE INDEX spend_holds_by_project ON spend_holds (project_id);
"#,
];
