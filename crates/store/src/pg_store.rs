//! The store for many replicas: PostgreSQL, through the synchronous `postgres` client.
//!
//! The `Store` trait stays synchronous (the server already calls it on blocking threads through
//! `spawn_blocking`, and SQLite wants exactly that): each call takes a connection from a small
//! pool, runs one statement or one transaction, and gives the connection back. A connection that
//! broke (the database restarted) is dropped and a new one opened on the next call. Statements are
//! the SQLite store's, in PostgreSQL's dialect (`IS NOT DISTINCT FROM` for nullable equality,
//! identity columns instead of `MAX(seq) + 1`); each method is atomic the same way.

use std::sync::Mutex;

use postgres::{Client, GenericClient, NoTls, Row, Transaction};

use crate::keys::{KeyRecord, KeyUpdate};
use crate::pg_migrations::PG_MIGRATIONS;
use crate::pg_rows::*;
use crate::projects::{Archived, ProjectRecord, ProjectUpdate};
use crate::types::*;
use crate::{Result, Store, StoreError};

/// Connections kept open between calls (one per blocking thread that is using the store at once
/// is enough for a replica; more wait in PostgreSQL, not here).
const POOL_SIZE: usize = 8;

pub struct PgStore {
    url: String,
    idle: Mutex<Vec<Client>>,
}

impl PgStore {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/database`), creating and
    /// migrating the schema as needed. Replicas starting together migrate one at a time (an
    /// advisory lock held for the migration's transaction).
    pub fn open(url: &str) -> Result<Self> {
        let mut c = Client::connect(url, NoTls)?;
        migrate(&mut c)?;
        Ok(Self {
            url: url.to_string(),
            idle: Mutex::new(vec![c]),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Client) -> std::result::Result<T, postgres::Error>) -> Result<T> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut c = match pooled.filter(|c| !c.is_closed()) {
            Some(c) => c,
            None => Client::connect(&self.url, NoTls)?,
        };
        let out = f(&mut c);
        if !c.is_closed() {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < POOL_SIZE {
                idle.push(c);
            }
        }
        Ok(out?)
    }

    /// In one transaction (rolled back when `f` fails or returns early without committing).
    fn tx<T>(&self, f: impl FnOnce(&mut Transaction) -> std::result::Result<T, postgres::Error>) -> Result<T> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })
    }

    /// The secret that digests API keys, shared by every replica: the one stored, or `candidate`
    /// stored now when there is none (the first replica's wins a race).
    pub fn server_secret(&self, candidate: &[u8; 32]) -> Result<[u8; 32]> {
        let stored: Vec<u8> = self.with(|c| {
            c.execute(
                "INSERT INTO server_secret (one, secret) VALUES (TRUE, $1) ON CONFLICT (one) DO NOTHING",
                &[&candidate.as_slice()],
            )?;
            c.query_one("SELECT secret FROM server_secret", &[]).map(|r| r.get(0))
        })?;
        stored
            .try_into()
            .map_err(|_| StoreError::Corrupt("the stored server secret is not 32 bytes".into()))
    }
}

fn migrate(c: &mut Client) -> Result<()> {
    let mut tx = c.transaction()?;
    // One replica at a time; the lock ends with the transaction.
    tx.execute("SELECT pg_advisory_xact_lock(7316870923)", &[])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
    let version: i64 = match tx.query_opt("SELECT version FROM schema_version", &[])? {
        Some(r) => r.get(0),
        None => {
            tx.execute("INSERT INTO schema_version (version) VALUES (0)", &[])?;
            0
        }
    };
    let known = PG_MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::NewerSchema {
            path: "PostgreSQL".into(),
            found: version,
            known,
        });
    }
    for m in &PG_MIGRATIONS[version as usize..] {
        tx.batch_execute(m)?;
    }
    tx.execute("UPDATE schema_version SET version = $1", &[&known])?;
    tx.commit()?;
    Ok(())
}

fn i(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

fn oi(v: Option<u64>) -> Option<i64> {
    v.map(i)
}

fn insert_file(c: &mut impl GenericClient, f: &FileRecord) -> std::result::Result<(), postgres::Error> {
    c.execute(
        &format!("INSERT INTO files ({FILE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
        &[
            &f.id,
            &i(f.bytes),
            &i(f.created_at),
            &f.filename,
            &f.purpose,
            &oi(f.expires_at),
            &f.project_id,
        ],
    )?;
    Ok(())
}

fn insert_usage(c: &mut impl GenericClient, u: &UsageRecord) -> std::result::Result<(), postgres::Error> {
    c.execute(
        "INSERT INTO usage (created_at, request_id, batch_id, line, model, tier, prompt_tokens, cached_tokens, \
         completion_tokens, cost, key_id, latency_ms, status, project_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        &[
            &i(u.created_at),
            &u.request_id,
            &u.batch_id,
            &u.line.map(i64::from),
            &u.model,
            &u.tier,
            &i(u.prompt_tokens),
            &i(u.cached_tokens),
            &i(u.completion_tokens),
            &u.cost,
            &u.key_id,
            &i(u.latency_ms),
            &i64::from(u.status),
            &u.project_id,
        ],
    )?;
    // The key's and the project's running spend move with their usage records, in the same
    // transaction, and the request's spend hold ends there.
    c.execute("DELETE FROM spend_holds WHERE id = $1", &[&u.request_id])?;
    if let Some(k) = &u.key_id {
        c.execute("UPDATE keys SET spent = spent + $2 WHERE id = $1", &[k, &u.cost])?;
    }
    if let Some(p) = &u.project_id {
        c.execute("UPDATE projects SET spent = spent + $2 WHERE id = $1", &[p, &u.cost])?;
    }
    Ok(())
}

/// The charges of `subject`, `(age in seconds at now, tokens)`, oldest first.
fn charges(
    c: &mut impl GenericClient,
    subject: &str,
    now: f64,
) -> std::result::Result<Vec<(f64, u64)>, postgres::Error> {
    let rs = c.query(
        "SELECT at, tokens FROM rate_charges WHERE subject = $1 ORDER BY at, id",
        &[&subject],
    )?;
    Ok(rs
        .iter()
        .map(|r| (now - r.get::<_, f64>(0), r.get::<_, i64>(1).max(0) as u64))
        .collect())
}

fn rows<T>(rs: Vec<Row>, f: impl Fn(&Row) -> Result<T>) -> Result<Vec<T>> {
    rs.iter().map(f).collect()
}

impl Store for PgStore {
    fn insert_file(&self, f: &FileRecord) -> Result<()> {
        self.with(|c| insert_file(c, f))
    }

    fn file(&self, id: &str) -> Result<Option<FileRecord>> {
        let r = self.with(|c| c.query_opt(&format!("SELECT {FILE_COLS} FROM files WHERE id = $1"), &[&id]))?;
        r.as_ref().map(file_row).transpose()
    }

    fn list_files(
        &self,
        project: Option<&str>,
        purpose: Option<&str>,
        after: Option<&str>,
        limit: usize,
        ascending: bool,
    ) -> Result<Vec<FileRecord>> {
        let (cmp, dir) = if ascending { (">", "ASC") } else { ("<", "DESC") };
        let sql = format!(
            "SELECT {FILE_COLS} FROM files WHERE project_id IS NOT DISTINCT FROM $4::text \
             AND ($1::text IS NULL OR purpose = $1) AND \
             ($2::text IS NULL OR (created_at, id) {cmp} \
              (SELECT created_at, id FROM files WHERE id = $2 AND project_id IS NOT DISTINCT FROM $4::text)) \
             ORDER BY created_at {dir}, id {dir} LIMIT $3"
        );
        let rs = self.with(|c| c.query(&sql, &[&purpose, &after, &(limit as i64), &project]))?;
        rows(rs, file_row)
    }

    fn delete_file(&self, id: &str) -> Result<bool> {
        self.with(|c| Ok(c.execute("DELETE FROM files WHERE id = $1", &[&id])? == 1))
    }

    fn assign_file(&self, id: &str, project: &str) -> Result<bool> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE files SET project_id = $2 WHERE id = $1 AND project_id IS NULL \
                 AND EXISTS (SELECT 1 FROM projects WHERE id = $2)",
                &[&id, &project],
            )? == 1)
        })
    }

    fn insert_batch(&self, b: &BatchRecord) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO batches (id, endpoint, input_file_id, completion_window, status, created_at, expires_at, \
                 metadata, key_id, project_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &b.id,
                    &b.endpoint,
                    &b.input_file_id,
                    &b.completion_window,
                    &b.status.as_str(),
                    &i(b.created_at),
                    &i(b.expires_at),
                    &b.metadata,
                    &b.key_id,
                    &b.project_id,
                ],
            )?;
            Ok(())
        })
    }

    fn batch(&self, id: &str) -> Result<Option<BatchRecord>> {
        let r = self.with(|c| c.query_opt(&format!("SELECT {BATCH_COLS} FROM batches WHERE id = $1"), &[&id]))?;
        r.as_ref().map(batch_row).transpose()
    }

    fn list_batches(&self, project: Option<&str>, after: Option<&str>, limit: usize) -> Result<Vec<BatchRecord>> {
        let sql = format!(
            "SELECT {BATCH_COLS} FROM batches WHERE project_id IS NOT DISTINCT FROM $3::text AND \
             ($1::text IS NULL OR seq < (SELECT seq FROM batches WHERE id = $1 \
              AND project_id IS NOT DISTINCT FROM $3::text)) \
             ORDER BY seq DESC LIMIT $2"
        );
        let rs = self.with(|c| c.query(&sql, &[&after, &(limit as i64), &project]))?;
        rows(rs, batch_row)
    }

    fn unfinished_batches(&self) -> Result<Vec<BatchRecord>> {
        let open = [
            BatchStatus::Validating,
            BatchStatus::InProgress,
            BatchStatus::Finalizing,
            BatchStatus::Cancelling,
        ];
        let sql = format!(
            "SELECT {BATCH_COLS} FROM batches WHERE {} ORDER BY seq ASC",
            status_in(&open)
        );
        let rs = self.with(|c| c.query(&sql, &[]))?;
        rows(rs, batch_row)
    }

    fn transition(&self, id: &str, from: &[BatchStatus], to: BatchStatus, at: u64) -> Result<bool> {
        let sql = format!(
            "UPDATE batches SET status = $2, {} = $3 WHERE id = $1 AND {}",
            to.at_column(),
            status_in(from)
        );
        self.with(|c| Ok(c.execute(&sql, &[&id, &to.as_str(), &i(at)])? == 1))
    }

    fn fail_batch(&self, id: &str, errors_json: &str, at: u64) -> Result<bool> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE batches SET status = 'failed', failed_at = $2, errors = $3 WHERE id = $1 AND \
                 status NOT IN ('completed', 'failed', 'expired', 'cancelled')",
                &[&id, &i(at), &errors_json],
            )? == 1)
        })
    }

    fn start_batch(&self, id: &str, model: &str, lines: &[BatchLine], at: u64) -> Result<bool> {
        self.tx(|tx| {
            let n = tx.execute(
                "UPDATE batches SET status = 'in_progress', in_progress_at = $2, model = $3 \
                 WHERE id = $1 AND status = 'validating'",
                &[&id, &i(at), &model],
            )?;
            if n != 1 {
                return Ok(false);
            }
            let st = tx.prepare("INSERT INTO batch_lines (batch_id, line, custom_id, body) VALUES ($1, $2, $3, $4)")?;
            for l in lines {
                tx.execute(&st, &[&id, &i64::from(l.line), &l.custom_id, &l.body])?;
            }
            Ok(true)
        })
    }

    fn pending_lines(&self, id: &str) -> Result<Vec<u32>> {
        let rs = self.with(|c| {
            c.query(
                "SELECT line FROM batch_lines WHERE batch_id = $1 AND state = 'pending' ORDER BY line",
                &[&id],
            )
        })?;
        rows(rs, |r| u32_at(r, 0))
    }

    fn claim_lines(&self, id: &str, worker: &str, n: usize, now: u64, until: u64) -> Result<Vec<u32>> {
        let rs = self.with(|c| {
            c.query(
                "UPDATE batch_lines SET claimed_by = $2, lease_until = $4 WHERE batch_id = $1 AND line IN \
                 (SELECT line FROM batch_lines WHERE batch_id = $1 AND state = 'pending' \
                  AND (lease_until IS NULL OR lease_until <= $3) ORDER BY line LIMIT $5 FOR UPDATE SKIP LOCKED) \
                 RETURNING line",
                &[&id, &worker, &i(now), &i(until), &(n as i64)],
            )
        })?;
        let mut lines = rows(rs, |r| u32_at(r, 0))?;
        lines.sort_unstable();
        Ok(lines)
    }

    fn renew_lines(&self, id: &str, worker: &str, lines: &[u32], until: u64) -> Result<()> {
        let lines: Vec<i64> = lines.iter().map(|&l| i64::from(l)).collect();
        self.with(|c| {
            c.execute(
                "UPDATE batch_lines SET lease_until = $4 WHERE batch_id = $1 AND claimed_by = $2 \
                 AND line = ANY($3) AND state = 'pending'",
                &[&id, &worker, &lines, &i(until)],
            )
        })?;
        Ok(())
    }

    fn release_claims(&self) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE batch_lines SET claimed_by = NULL, lease_until = NULL WHERE claimed_by IS NOT NULL",
                &[],
            )
        })?;
        Ok(())
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn rate_admit(
        &self,
        subject: &str,
        window: f64,
        tokens: u64,
        decide: &mut crate::RateDecision<'_>,
    ) -> Result<Option<i64>> {
        self.tx(|tx| {
            // One admission per subject at a time, across replicas; the lock ends with the
            // transaction.
            tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&subject])?;
            let now: f64 = tx
                .query_one("SELECT extract(epoch FROM clock_timestamp())::float8", &[])?
                .get(0);
            tx.execute(
                "DELETE FROM rate_charges WHERE subject = $1 AND at <= $2",
                &[&subject, &(now - window)],
            )?;
            let held = charges(tx, subject, now)?;
            if !decide(&held) {
                return Ok(None);
            }
            let id: i64 = tx
                .query_one(
                    "INSERT INTO rate_charges (subject, at, tokens) VALUES ($1, $2, $3) RETURNING id",
                    &[&subject, &now, &i(tokens)],
                )?
                .get(0);
            Ok(Some(id))
        })
    }

    fn rate_settle(&self, charge: i64, tokens: u64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE rate_charges SET tokens = $2 WHERE id = $1",
                &[&charge, &i(tokens)],
            )
        })?;
        Ok(())
    }

    fn rate_release(&self, charge: i64) -> Result<()> {
        self.with(|c| c.execute("DELETE FROM rate_charges WHERE id = $1", &[&charge]))?;
        Ok(())
    }

    fn rate_window(&self, subject: &str, window: f64) -> Result<Vec<(f64, u64)>> {
        self.with(|c| {
            let now: f64 = c
                .query_one("SELECT extract(epoch FROM clock_timestamp())::float8", &[])?
                .get(0);
            let held = charges(c, subject, now)?;
            Ok(held.into_iter().filter(|(age, _)| *age < window).collect())
        })
    }

    fn line(&self, id: &str, line: u32) -> Result<Option<BatchLine>> {
        let r = self.with(|c| {
            c.query_opt(
                "SELECT line, custom_id, body FROM batch_lines WHERE batch_id = $1 AND line = $2",
                &[&id, &i64::from(line)],
            )
        })?;
        r.map(|r| {
            Ok(BatchLine {
                line: u32_at(&r, 0)?,
                custom_id: r.try_get(1)?,
                body: r.try_get(2)?,
            })
        })
        .transpose()
    }

    fn complete_line(&self, id: &str, line: u32, result: &LineResult, usage: Option<&UsageRecord>) -> Result<bool> {
        let state = match result.outcome {
            LineOutcome::Completed => "completed",
            LineOutcome::Failed => "failed",
        };
        self.tx(|tx| {
            let n = tx.execute(
                "UPDATE batch_lines SET state = $3, result = $4 WHERE batch_id = $1 AND line = $2 AND state = 'pending'",
                &[&id, &i64::from(line), &state, &result.json],
            )?;
            if n != 1 {
                return Ok(false);
            }
            if let Some(u) = usage {
                insert_usage(tx, u)?;
            }
            Ok(true)
        })
    }

    fn line_results(&self, id: &str) -> Result<Vec<LineResult>> {
        let rs = self.with(|c| {
            c.query(
                "SELECT line, state, result FROM batch_lines WHERE batch_id = $1 AND state != 'pending' ORDER BY line",
                &[&id],
            )
        })?;
        rows(rs, |r| {
            let state: String = r.try_get(1)?;
            Ok(LineResult {
                line: u32_at(r, 0)?,
                outcome: if state == "completed" {
                    LineOutcome::Completed
                } else {
                    LineOutcome::Failed
                },
                json: r.try_get(2)?,
            })
        })
    }

    fn request_counts(&self, id: &str) -> Result<RequestCounts> {
        let r = self.with(|c| {
            c.query_one(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE state = 'completed'), COUNT(*) FILTER (WHERE state = 'failed') \
                 FROM batch_lines WHERE batch_id = $1",
                &[&id],
            )
        })?;
        Ok(RequestCounts {
            total: u64_at(&r, 0)?,
            completed: u64_at(&r, 1)?,
            failed: u64_at(&r, 2)?,
        })
    }

    fn batch_usage(&self, id: &str) -> Result<UsageTotals> {
        let r = self.with(|c| c.query_one(&format!("SELECT {TOTALS} FROM usage WHERE batch_id = $1"), &[&id]))?;
        totals_at(&r, 0)
    }

    fn finish_batch(
        &self,
        id: &str,
        from: &[BatchStatus],
        to: BatchStatus,
        output: Option<&FileRecord>,
        errors: Option<&FileRecord>,
        at: u64,
    ) -> Result<bool> {
        let sql = format!(
            "UPDATE batches SET status = $2, {} = $3, output_file_id = $4, error_file_id = $5 WHERE id = $1 AND {}",
            to.at_column(),
            status_in(from)
        );
        self.tx(|tx| {
            let (out_id, err_id) = (output.map(|f| f.id.as_str()), errors.map(|f| f.id.as_str()));
            let n = tx.execute(&sql, &[&id, &to.as_str(), &i(at), &out_id, &err_id])?;
            if n != 1 {
                return Ok(false);
            }
            for f in output.into_iter().chain(errors) {
                // A finalize that crashed after its blob write may run again: same ids, same files.
                tx.execute("DELETE FROM files WHERE id = $1", &[&f.id])?;
                insert_file(tx, f)?;
            }
            Ok(true)
        })
    }

    fn insert_usage(&self, u: &UsageRecord) -> Result<()> {
        self.tx(|tx| insert_usage(tx, u))
    }

    fn usage_since(&self, since: u64) -> Result<Vec<UsageRecord>> {
        let sql = format!("SELECT {USAGE_COLS} FROM usage WHERE created_at >= $1 ORDER BY id");
        let rs = self.with(|c| c.query(&sql, &[&i(since)]))?;
        rows(rs, usage_row)
    }

    fn hold_spend(&self, h: &SpendHold) -> Result<Option<BudgetReached>> {
        self.tx(|tx| {
            tx.execute(
                "DELETE FROM spend_holds WHERE created_at < $1",
                &[&i(h.created_at.saturating_sub(HOLD_TTL))],
            )?;
            // The key's row, then the project's, locked in that order (as usage inserts update
            // them): concurrent holds of one key or project wait for each other here.
            let scopes = [("key", "keys", &h.key_id), ("project", "projects", &h.project_id)];
            for (scope, table, id) in scopes {
                let Some(id) = id else { continue };
                let Some(row) = tx.query_opt(
                    &format!("SELECT budget, spent FROM {table} WHERE id = $1 FOR UPDATE"),
                    &[id],
                )?
                else {
                    continue;
                };
                let (budget, spent): (Option<f64>, f64) = (row.get(0), row.get(1));
                let Some(budget) = budget else { continue };
                let held: f64 = tx
                    .query_one(
                        &format!(
                            "SELECT COALESCE(SUM(amount), 0)::DOUBLE PRECISION FROM spend_holds WHERE {scope}_id = $1"
                        ),
                        &[id],
                    )?
                    .get(0);
                if let Some(reached) = BudgetReached::check(scope, budget, spent, held) {
                    return Ok(Some(reached));
                }
            }
            tx.execute(
                "INSERT INTO spend_holds (id, key_id, project_id, amount, created_at) VALUES ($1, $2, $3, $4, $5)",
                &[&h.id, &h.key_id, &h.project_id, &h.amount, &i(h.created_at)],
            )?;
            Ok(None)
        })
    }

    fn release_spend(&self, id: &str) -> Result<()> {
        self.with(|c| c.execute("DELETE FROM spend_holds WHERE id = $1", &[&id]))?;
        Ok(())
    }

    fn insert_moderation(&self, e: &ModerationEvent) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO moderation_events (created_at, request_id, key_id, model, direction, action, categories, \
                 text, project_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &i(e.created_at),
                    &e.request_id,
                    &e.key_id,
                    &e.model,
                    &e.direction,
                    &e.action,
                    &e.categories.join(","),
                    &e.text,
                    &e.project_id,
                ],
            )?;
            Ok(())
        })
    }

    fn moderation_since(&self, since: u64) -> Result<Vec<ModerationEvent>> {
        let sql = format!("SELECT {MODERATION_COLS} FROM moderation_events WHERE created_at >= $1 ORDER BY id");
        let rs = self.with(|c| c.query(&sql, &[&i(since)]))?;
        rows(rs, moderation_row)
    }

    fn usage_summary(&self, since: u64, until: u64, by: &[UsageDim]) -> Result<Vec<UsageRow>> {
        let cols: Vec<&str> = by.iter().map(|d| pg_dim(*d)).collect();
        let (select, group) = if cols.is_empty() {
            (String::new(), String::new())
        } else {
            let list = cols.join(", ");
            (format!("{list}, "), format!(" GROUP BY {list} ORDER BY {list}"))
        };
        let sql = format!("SELECT {select}{TOTALS} FROM usage WHERE created_at >= $1 AND created_at < $2{group}");
        let rs = self.with(|c| c.query(&sql, &[&i(since), &i(until)]))?;
        let k = by.len();
        let rows = rows(rs, |r| {
            Ok(UsageRow {
                group: (0..k)
                    .map(|j| r.try_get::<_, String>(j))
                    .collect::<std::result::Result<_, _>>()?,
                totals: totals_at(r, k)?,
            })
        })?;
        // With no grouping and no records there is still one (all-zero) row; drop it.
        Ok(rows.into_iter().filter(|r| r.totals.records > 0).collect())
    }

    fn insert_key(&self, k: &KeyRecord, digest: &[u8]) -> Result<()> {
        self.with(|c| {
            c.execute(
                &format!(
                    "INSERT INTO keys ({KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                ),
                &[
                    &k.id,
                    &k.name,
                    &k.hint,
                    &i(k.created_at),
                    &oi(k.revoked_at),
                    &k.admin,
                    &oi(k.rpm),
                    &oi(k.tpm),
                    &k.budget,
                    &k.spent,
                    &digest,
                    &k.moderation,
                    &k.project_id,
                ],
            )?;
            Ok(())
        })
    }

    fn key(&self, id: &str) -> Result<Option<(KeyRecord, Vec<u8>)>> {
        let r = self.with(|c| c.query_opt(&format!("SELECT {KEY_COLS} FROM keys WHERE id = $1"), &[&id]))?;
        r.as_ref().map(key_row).transpose()
    }

    fn list_keys(&self) -> Result<Vec<KeyRecord>> {
        let rs = self.with(|c| c.query(&format!("SELECT {KEY_COLS} FROM keys ORDER BY created_at, id"), &[]))?;
        rows(rs, |r| key_row(r).map(|(k, _)| k))
    }

    fn update_key(&self, id: &str, u: &KeyUpdate) -> Result<bool> {
        self.tx(|tx| {
            let n: i64 = tx.query_one("SELECT COUNT(*) FROM keys WHERE id = $1", &[&id])?.get(0);
            if let Some(name) = &u.name {
                tx.execute("UPDATE keys SET name = $2 WHERE id = $1", &[&id, name])?;
            }
            if let Some(v) = u.rpm {
                tx.execute("UPDATE keys SET rpm = $2 WHERE id = $1", &[&id, &oi(v)])?;
            }
            if let Some(v) = u.tpm {
                tx.execute("UPDATE keys SET tpm = $2 WHERE id = $1", &[&id, &oi(v)])?;
            }
            if let Some(v) = u.budget {
                tx.execute("UPDATE keys SET budget = $2 WHERE id = $1", &[&id, &v])?;
            }
            if let Some(v) = &u.moderation {
                tx.execute("UPDATE keys SET moderation = $2 WHERE id = $1", &[&id, v])?;
            }
            Ok(n == 1)
        })
    }

    fn revoke_key(&self, id: &str, at: u64) -> Result<bool> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &i(at)],
            )? == 1)
        })
    }

    fn has_keys(&self) -> Result<bool> {
        self.with(|c| c.query_one("SELECT EXISTS (SELECT 1 FROM keys)", &[]).map(|r| r.get(0)))
    }

    fn insert_project(&self, p: &ProjectRecord) -> Result<()> {
        self.with(|c| {
            c.execute(
                &format!("INSERT INTO projects ({PROJECT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
                &[
                    &p.id,
                    &p.name,
                    &i(p.created_at),
                    &oi(p.archived_at),
                    &oi(p.rpm),
                    &oi(p.tpm),
                    &p.budget,
                    &p.spent,
                ],
            )?;
            Ok(())
        })
    }

    fn project(&self, id: &str) -> Result<Option<ProjectRecord>> {
        let r = self.with(|c| c.query_opt(&format!("SELECT {PROJECT_COLS} FROM projects WHERE id = $1"), &[&id]))?;
        r.as_ref().map(project_row).transpose()
    }

    fn list_projects(&self) -> Result<Vec<ProjectRecord>> {
        let rs = self.with(|c| {
            c.query(
                &format!("SELECT {PROJECT_COLS} FROM projects ORDER BY created_at, id"),
                &[],
            )
        })?;
        rows(rs, project_row)
    }

    fn update_project(&self, id: &str, u: &ProjectUpdate) -> Result<bool> {
        self.tx(|tx| {
            let n: i64 = tx
                .query_one("SELECT COUNT(*) FROM projects WHERE id = $1", &[&id])?
                .get(0);
            if let Some(name) = &u.name {
                tx.execute("UPDATE projects SET name = $2 WHERE id = $1", &[&id, name])?;
            }
            if let Some(v) = u.rpm {
                tx.execute("UPDATE projects SET rpm = $2 WHERE id = $1", &[&id, &oi(v)])?;
            }
            if let Some(v) = u.tpm {
                tx.execute("UPDATE projects SET tpm = $2 WHERE id = $1", &[&id, &oi(v)])?;
            }
            if let Some(v) = u.budget {
                tx.execute("UPDATE projects SET budget = $2 WHERE id = $1", &[&id, &v])?;
            }
            Ok(n == 1)
        })
    }

    fn insert_response(&self, r: &ResponseRecord) -> Result<()> {
        self.with(|c| {
            c.execute(
                &format!("INSERT INTO responses ({RESPONSE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
                &[
                    &r.id,
                    &r.project_id,
                    &i(r.created_at),
                    &i(r.expires_at),
                    &r.previous_response_id,
                    &r.object,
                    &r.messages,
                    &r.input_items,
                    &r.pending,
                ],
            )?;
            Ok(())
        })
    }

    fn response(&self, id: &str, now: u64) -> Result<Option<ResponseRecord>> {
        let r = self.with(|c| {
            c.query_opt(
                &format!("SELECT {RESPONSE_COLS} FROM responses WHERE id = $1 AND expires_at > $2"),
                &[&id, &i(now)],
            )
        })?;
        r.as_ref().map(response_row).transpose()
    }

    fn delete_response(&self, id: &str) -> Result<bool> {
        self.with(|c| Ok(c.execute("DELETE FROM responses WHERE id = $1", &[&id])? == 1))
    }

    fn update_response(&self, id: &str, object: &str, messages: &str, pending: bool) -> Result<bool> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE responses SET object = $2, messages = $3, pending = $4 WHERE id = $1",
                &[&id, &object, &messages, &pending],
            )? == 1)
        })
    }

    fn pending_responses(&self) -> Result<Vec<ResponseRecord>> {
        let rs = self.with(|c| c.query(&format!("SELECT {RESPONSE_COLS} FROM responses WHERE pending"), &[]))?;
        rows(rs, response_row)
    }

    fn sweep_responses(&self, now: u64) -> Result<usize> {
        self.with(|c| Ok(c.execute("DELETE FROM responses WHERE expires_at <= $1", &[&i(now)])? as usize))
    }

    fn archive_project(&self, id: &str, at: u64) -> Result<Option<Archived>> {
        let open = [BatchStatus::Validating, BatchStatus::InProgress];
        let cancel = format!(
            "UPDATE batches SET status = 'cancelling', cancelling_at = $2 WHERE project_id = $1 AND {}",
            status_in(&open)
        );
        self.tx(|tx| {
            let n = tx.execute(
                "UPDATE projects SET archived_at = $2 WHERE id = $1 AND archived_at IS NULL",
                &[&id, &i(at)],
            )?;
            if n != 1 {
                return Ok(None);
            }
            let keys_revoked = tx.execute(
                "UPDATE keys SET revoked_at = $2 WHERE project_id = $1 AND revoked_at IS NULL",
                &[&id, &i(at)],
            )? as usize;
            let batches_cancelled = tx.execute(&cancel, &[&id, &i(at)])? as usize;
            Ok(Some(Archived {
                keys_revoked,
                batches_cancelled,
            }))
        })
    }
}

/// A usage dimension's expression in PostgreSQL (UTC, as SQLite's `date(…, 'unixepoch')`).
fn pg_dim(d: UsageDim) -> &'static str {
    match d {
        UsageDim::Day => "to_char(to_timestamp(created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        UsageDim::Hour => "to_char(to_timestamp(created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24')",
        UsageDim::Key => "COALESCE(key_id, '-')",
        UsageDim::Model => "model",
        UsageDim::Project => "COALESCE(project_id, '-')",
    }
}
