//! The embedded store: one SQLite database in WAL mode with `synchronous=FULL`, so a write that
//! returned survives a process kill and a power cut. One connection behind a mutex: every method is
//! a short statement or transaction, never held across an await.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use crate::keys::{KeyRecord, KeyUpdate};
use crate::migrations::{projects_report, MIGRATIONS, PROJECTS_MIGRATION};
use crate::projects::{Archived, ProjectRecord, ProjectUpdate};
use crate::rows::*;
use crate::types::*;
use crate::{Result, Store, StoreError};

pub struct SqliteStore {
    conn: Mutex<Connection>,
    notes: Vec<String>,
}

impl SqliteStore {
    /// Opens (creating and migrating as needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_at(path, MIGRATIONS.len())
    }

    /// A database as an older release left it: migrated up to `version` only (tests of the
    /// migrations start from one).
    #[doc(hidden)]
    pub fn open_at(path: &Path, version: usize) -> Result<Self> {
        let target = version.min(MIGRATIONS.len());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::NewerSchema {
                path: path.display().to_string(),
                found: version,
                known,
            });
        }
        let mut notes = Vec::new();
        for (i, m) in MIGRATIONS.iter().enumerate().take(target).skip(version as usize) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(m)?;
            // A new database has nothing to move: only an existing store's migration is reported.
            if i + 1 == PROJECTS_MIGRATION && version > 0 {
                notes.push(projects_report(&tx)?);
            }
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            notes,
        })
    }

    /// What the migrations applied by `open` did to existing data, one line each (for the log).
    pub fn migration_notes(&self) -> &[String] {
        &self.notes
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        // A panic elsewhere while holding the lock leaves the connection usable: SQLite rolls back
        // any open transaction when the `Transaction` guard drops.
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&mut c)?)
    }
}

fn insert_file(c: &Connection, f: &FileRecord) -> rusqlite::Result<()> {
    c.execute(
        &format!("INSERT INTO files ({FILE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
        params![
            f.id,
            f.bytes as i64,
            f.created_at as i64,
            f.filename,
            f.purpose,
            f.expires_at.map(|x| x as i64),
            f.project_id
        ],
    )?;
    Ok(())
}

impl Store for SqliteStore {
    fn insert_file(&self, f: &FileRecord) -> Result<()> {
        self.with(|c| insert_file(c, f))
    }

    fn file(&self, id: &str) -> Result<Option<FileRecord>> {
        self.with(|c| {
            c.query_row(&format!("SELECT {FILE_COLS} FROM files WHERE id = ?1"), [id], file_row)
                .optional()
        })
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
        self.with(|c| {
            // `IS` so that `None` matches the files of no project. The cursor is looked up in the
            // same project: another project's id finds no row and the page is empty.
            let sql = format!(
                "SELECT {FILE_COLS} FROM files WHERE project_id IS ?4 AND (?1 IS NULL OR purpose = ?1) AND \
                 (?2 IS NULL OR (created_at, id) {cmp} \
                  (SELECT created_at, id FROM files WHERE id = ?2 AND project_id IS ?4)) \
                 ORDER BY created_at {dir}, id {dir} LIMIT ?3"
            );
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map(params![purpose, after, limit as i64, project], file_row)?;
            rows.collect()
        })
    }

    fn delete_file(&self, id: &str) -> Result<bool> {
        self.with(|c| Ok(c.execute("DELETE FROM files WHERE id = ?1", [id])? == 1))
    }

    fn assign_file(&self, id: &str, project: &str) -> Result<bool> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE files SET project_id = ?2 WHERE id = ?1 AND project_id IS NULL \
                 AND EXISTS (SELECT 1 FROM projects WHERE id = ?2)",
                params![id, project],
            )? == 1)
        })
    }

    fn insert_batch(&self, b: &BatchRecord) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO batches (id, endpoint, input_file_id, completion_window, status, created_at, expires_at, \
                 metadata, key_id, project_id, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
                 (SELECT IFNULL(MAX(seq), 0) + 1 FROM batches))",
                params![
                    b.id,
                    b.endpoint,
                    b.input_file_id,
                    b.completion_window,
                    b.status.as_str(),
                    b.created_at as i64,
                    b.expires_at as i64,
                    b.metadata,
                    b.key_id,
                    b.project_id
                ],
            )?;
            Ok(())
        })
    }

    fn batch(&self, id: &str) -> Result<Option<BatchRecord>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {BATCH_COLS} FROM batches WHERE id = ?1"),
                [id],
                batch_row,
            )
            .optional()
        })
    }

    fn list_batches(&self, project: Option<&str>, after: Option<&str>, limit: usize) -> Result<Vec<BatchRecord>> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {BATCH_COLS} FROM batches WHERE project_id IS ?3 AND \
                 (?1 IS NULL OR seq < (SELECT seq FROM batches WHERE id = ?1 AND project_id IS ?3)) \
                 ORDER BY seq DESC LIMIT ?2"
            ))?;
            let rows = st.query_map(params![after, limit as i64, project], batch_row)?;
            rows.collect()
        })
    }

    fn unfinished_batches(&self) -> Result<Vec<BatchRecord>> {
        let open = [
            BatchStatus::Validating,
            BatchStatus::InProgress,
            BatchStatus::Finalizing,
            BatchStatus::Cancelling,
        ];
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {BATCH_COLS} FROM batches WHERE {} ORDER BY seq ASC",
                status_in(&open)
            ))?;
            let rows = st.query_map([], batch_row)?;
            rows.collect()
        })
    }

    fn transition(&self, id: &str, from: &[BatchStatus], to: BatchStatus, at: u64) -> Result<bool> {
        self.with(|c| {
            let n = c.execute(
                &format!(
                    "UPDATE batches SET status = ?2, {} = ?3 WHERE id = ?1 AND {}",
                    to.at_column(),
                    status_in(from)
                ),
                params![id, to.as_str(), at as i64],
            )?;
            Ok(n == 1)
        })
    }

    fn fail_batch(&self, id: &str, errors_json: &str, at: u64) -> Result<bool> {
        self.with(|c| {
            let n = c.execute(
                "UPDATE batches SET status = 'failed', failed_at = ?2, errors = ?3 WHERE id = ?1 AND \
                 status NOT IN ('completed', 'failed', 'expired', 'cancelled')",
                params![id, at as i64, errors_json],
            )?;
            Ok(n == 1)
        })
    }

    fn start_batch(&self, id: &str, model: &str, lines: &[BatchLine], at: u64) -> Result<bool> {
        self.with(|c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE batches SET status = 'in_progress', in_progress_at = ?2, model = ?3 \
                 WHERE id = ?1 AND status = 'validating'",
                params![id, at as i64, model],
            )?;
            if n != 1 {
                return Ok(false);
            }
            {
                let mut st =
                    tx.prepare("INSERT INTO batch_lines (batch_id, line, custom_id, body) VALUES (?1, ?2, ?3, ?4)")?;
                for l in lines {
                    st.execute(params![id, l.line, l.custom_id, l.body])?;
                }
            }
            tx.commit()?;
            Ok(true)
        })
    }

    fn pending_lines(&self, id: &str) -> Result<Vec<u32>> {
        self.with(|c| {
            let mut st =
                c.prepare("SELECT line FROM batch_lines WHERE batch_id = ?1 AND state = 'pending' ORDER BY line")?;
            let rows = st.query_map([id], |r| r.get::<_, u32>(0))?;
            rows.collect()
        })
    }

    fn claim_lines(&self, id: &str, worker: &str, n: usize, now: u64, until: u64) -> Result<Vec<u32>> {
        self.with(|c| {
            let mut st = c.prepare(
                "UPDATE batch_lines SET claimed_by = ?2, lease_until = ?4 WHERE batch_id = ?1 AND line IN \
                 (SELECT line FROM batch_lines WHERE batch_id = ?1 AND state = 'pending' \
                  AND (lease_until IS NULL OR lease_until <= ?3) ORDER BY line LIMIT ?5) RETURNING line",
            )?;
            let rows = st.query_map(params![id, worker, now as i64, until as i64, n as i64], |r| r.get(0))?;
            let mut lines = rows.collect::<rusqlite::Result<Vec<u32>>>()?;
            lines.sort_unstable();
            Ok(lines)
        })
    }

    fn renew_lines(&self, id: &str, worker: &str, lines: &[u32], until: u64) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            for l in lines {
                tx.execute(
                    "UPDATE batch_lines SET lease_until = ?4 WHERE batch_id = ?1 AND line = ?3 AND claimed_by = ?2 \
                     AND state = 'pending'",
                    params![id, worker, l, until as i64],
                )?;
            }
            tx.commit()
        })
    }

    fn release_claims(&self) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE batch_lines SET claimed_by = NULL, lease_until = NULL WHERE claimed_by IS NOT NULL",
                [],
            )?;
            Ok(())
        })
    }

    fn line(&self, id: &str, line: u32) -> Result<Option<BatchLine>> {
        self.with(|c| {
            c.query_row(
                "SELECT line, custom_id, body FROM batch_lines WHERE batch_id = ?1 AND line = ?2",
                params![id, line],
                |r| {
                    Ok(BatchLine {
                        line: r.get(0)?,
                        custom_id: r.get(1)?,
                        body: r.get(2)?,
                    })
                },
            )
            .optional()
        })
    }

    fn complete_line(&self, id: &str, line: u32, result: &LineResult, usage: Option<&UsageRecord>) -> Result<bool> {
        let state = match result.outcome {
            LineOutcome::Completed => "completed",
            LineOutcome::Failed => "failed",
        };
        self.with(|c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE batch_lines SET state = ?3, result = ?4 WHERE batch_id = ?1 AND line = ?2 AND state = 'pending'",
                params![id, line, state, result.json],
            )?;
            if n != 1 {
                return Ok(false);
            }
            if let Some(u) = usage {
                insert_usage(&tx, u)?;
            }
            tx.commit()?;
            Ok(true)
        })
    }

    fn line_results(&self, id: &str) -> Result<Vec<LineResult>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT line, state, result FROM batch_lines WHERE batch_id = ?1 AND state != 'pending' ORDER BY line",
            )?;
            let rows = st.query_map([id], |r| {
                let state: String = r.get(1)?;
                Ok(LineResult {
                    line: r.get(0)?,
                    outcome: if state == "completed" {
                        LineOutcome::Completed
                    } else {
                        LineOutcome::Failed
                    },
                    json: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }

    fn request_counts(&self, id: &str) -> Result<RequestCounts> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*), IFNULL(SUM(state = 'completed'), 0), IFNULL(SUM(state = 'failed'), 0) \
                 FROM batch_lines WHERE batch_id = ?1",
                [id],
                |r| {
                    Ok(RequestCounts {
                        total: r.get::<_, i64>(0)? as u64,
                        completed: r.get::<_, i64>(1)? as u64,
                        failed: r.get::<_, i64>(2)? as u64,
                    })
                },
            )
        })
    }

    fn batch_usage(&self, id: &str) -> Result<UsageTotals> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*), IFNULL(SUM(prompt_tokens), 0), IFNULL(SUM(cached_tokens), 0), \
                 IFNULL(SUM(completion_tokens), 0), IFNULL(SUM(cost), 0.0) FROM usage WHERE batch_id = ?1",
                [id],
                |r| {
                    Ok(UsageTotals {
                        records: r.get::<_, i64>(0)? as u64,
                        prompt_tokens: r.get::<_, i64>(1)? as u64,
                        cached_tokens: r.get::<_, i64>(2)? as u64,
                        completion_tokens: r.get::<_, i64>(3)? as u64,
                        cost: r.get(4)?,
                    })
                },
            )
        })
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
        self.with(|c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                &format!(
                    "UPDATE batches SET status = ?2, {} = ?3, output_file_id = ?4, error_file_id = ?5 WHERE id = ?1 AND {}",
                    to.at_column(),
                    status_in(from)
                ),
                params![
                    id,
                    to.as_str(),
                    at as i64,
                    output.map(|f| f.id.as_str()),
                    errors.map(|f| f.id.as_str())
                ],
            )?;
            if n != 1 {
                return Ok(false);
            }
            for f in output.into_iter().chain(errors) {
                // A finalize that crashed after its blob write may run again: same ids, same files.
                tx.execute("DELETE FROM files WHERE id = ?1", [&f.id])?;
                insert_file(&tx, f)?;
            }
            tx.commit()?;
            Ok(true)
        })
    }

    fn insert_usage(&self, u: &UsageRecord) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            insert_usage(&tx, u)?;
            tx.commit()
        })
    }

    fn hold_spend(&self, h: &SpendHold) -> Result<Option<BudgetReached>> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let stale = h.created_at.saturating_sub(HOLD_TTL) as i64;
            tx.execute("DELETE FROM spend_holds WHERE created_at < ?1", [stale])?;
            let scopes = [("key", "keys", &h.key_id), ("project", "projects", &h.project_id)];
            for (scope, table, id) in scopes {
                let Some(id) = id else { continue };
                let row: Option<(Option<f64>, f64, f64)> = tx
                    .query_row(
                        &format!(
                            "SELECT budget, spent, (SELECT IFNULL(SUM(amount), 0.0) FROM spend_holds \
                             WHERE {scope}_id = ?1) FROM {table} WHERE id = ?1"
                        ),
                        [id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?;
                if let Some((Some(budget), spent, held)) = row {
                    if let Some(reached) = BudgetReached::check(scope, budget, spent, held) {
                        return Ok(Some(reached));
                    }
                }
            }
            tx.execute(
                "INSERT INTO spend_holds (id, key_id, project_id, amount, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![h.id, h.key_id, h.project_id, h.amount, h.created_at as i64],
            )?;
            tx.commit()?;
            Ok(None)
        })
    }

    fn release_spend(&self, id: &str) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM spend_holds WHERE id = ?1", [id])?;
            Ok(())
        })
    }

    fn insert_moderation(&self, e: &ModerationEvent) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO moderation_events (created_at, request_id, key_id, model, direction, action, categories, \
                 text, project_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    e.created_at as i64,
                    e.request_id,
                    e.key_id,
                    e.model,
                    e.direction,
                    e.action,
                    e.categories.join(","),
                    e.text,
                    e.project_id
                ],
            )?;
            Ok(())
        })
    }

    fn moderation_since(&self, since: u64) -> Result<Vec<ModerationEvent>> {
        self.with(|c| {
            let sql = format!("SELECT {MODERATION_COLS} FROM moderation_events WHERE created_at >= ?1 ORDER BY id");
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map([since as i64], moderation_row)?;
            rows.collect()
        })
    }

    fn usage_since(&self, since: u64) -> Result<Vec<UsageRecord>> {
        self.with(|c| {
            let sql = format!("SELECT {USAGE_COLS} FROM usage WHERE created_at >= ?1 ORDER BY id");
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map([since as i64], usage_row)?;
            rows.collect()
        })
    }

    fn usage_summary(&self, since: u64, until: u64, by: &[UsageDim]) -> Result<Vec<UsageRow>> {
        let cols: Vec<&str> = by.iter().map(|d| d.sql()).collect();
        let (select, group) = if cols.is_empty() {
            (String::new(), String::new())
        } else {
            let list = cols.join(", ");
            (format!("{list}, "), format!(" GROUP BY {list} ORDER BY {list}"))
        };
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {select}COUNT(*), IFNULL(SUM(prompt_tokens), 0), IFNULL(SUM(cached_tokens), 0), \
                 IFNULL(SUM(completion_tokens), 0), IFNULL(SUM(cost), 0.0) FROM usage \
                 WHERE created_at >= ?1 AND created_at < ?2{group}"
            ))?;
            let k = by.len();
            let rows = st.query_map(params![since as i64, until.min(i64::MAX as u64) as i64], |r| {
                Ok(UsageRow {
                    group: (0..k).map(|i| r.get::<_, String>(i)).collect::<rusqlite::Result<_>>()?,
                    totals: UsageTotals {
                        records: r.get::<_, i64>(k)? as u64,
                        prompt_tokens: r.get::<_, i64>(k + 1)? as u64,
                        cached_tokens: r.get::<_, i64>(k + 2)? as u64,
                        completion_tokens: r.get::<_, i64>(k + 3)? as u64,
                        cost: r.get(k + 4)?,
                    },
                })
            })?;
            let rows: Vec<UsageRow> = rows.collect::<rusqlite::Result<_>>()?;
            // With no grouping and no records there is still one (all-zero) row; drop it.
            Ok(rows.into_iter().filter(|r| r.totals.records > 0).collect())
        })
    }

    fn insert_key(&self, k: &KeyRecord, digest: &[u8]) -> Result<()> {
        self.with(|c| {
            c.execute(
                &format!(
                    "INSERT INTO keys ({KEY_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                ),
                params![
                    k.id,
                    k.name,
                    k.hint,
                    k.created_at as i64,
                    k.revoked_at.map(|x| x as i64),
                    k.admin,
                    k.rpm.map(|x| x as i64),
                    k.tpm.map(|x| x as i64),
                    k.budget,
                    k.spent,
                    digest,
                    k.moderation,
                    k.project_id
                ],
            )?;
            Ok(())
        })
    }

    fn key(&self, id: &str) -> Result<Option<(KeyRecord, Vec<u8>)>> {
        self.with(|c| {
            c.query_row(&format!("SELECT {KEY_COLS} FROM keys WHERE id = ?1"), [id], key_row)
                .optional()
        })
    }

    fn list_keys(&self) -> Result<Vec<KeyRecord>> {
        self.with(|c| {
            let mut st = c.prepare(&format!("SELECT {KEY_COLS} FROM keys ORDER BY created_at, id"))?;
            let rows = st.query_map([], |r| key_row(r).map(|(k, _)| k))?;
            rows.collect()
        })
    }

    fn update_key(&self, id: &str, u: &KeyUpdate) -> Result<bool> {
        self.with(|c| {
            let tx = c.transaction()?;
            let n = tx.query_row("SELECT COUNT(*) FROM keys WHERE id = ?1", [id], |r| r.get::<_, i64>(0))?;
            if let Some(name) = &u.name {
                tx.execute("UPDATE keys SET name = ?2 WHERE id = ?1", params![id, name])?;
            }
            if let Some(v) = u.rpm {
                tx.execute(
                    "UPDATE keys SET rpm = ?2 WHERE id = ?1",
                    params![id, v.map(|x| x as i64)],
                )?;
            }
            if let Some(v) = u.tpm {
                tx.execute(
                    "UPDATE keys SET tpm = ?2 WHERE id = ?1",
                    params![id, v.map(|x| x as i64)],
                )?;
            }
            if let Some(v) = u.budget {
                tx.execute("UPDATE keys SET budget = ?2 WHERE id = ?1", params![id, v])?;
            }
            if let Some(v) = &u.moderation {
                tx.execute("UPDATE keys SET moderation = ?2 WHERE id = ?1", params![id, v])?;
            }
            tx.commit()?;
            Ok(n == 1)
        })
    }

    fn revoke_key(&self, id: &str, at: u64) -> Result<bool> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, at as i64],
            )? == 1)
        })
    }

    fn has_keys(&self) -> Result<bool> {
        self.with(|c| c.query_row("SELECT EXISTS (SELECT 1 FROM keys)", [], |r| r.get(0)))
    }

    fn insert_project(&self, p: &ProjectRecord) -> Result<()> {
        self.with(|c| {
            c.execute(
                &format!("INSERT INTO projects ({PROJECT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                params![
                    p.id,
                    p.name,
                    p.created_at as i64,
                    p.archived_at.map(|x| x as i64),
                    p.rpm.map(|x| x as i64),
                    p.tpm.map(|x| x as i64),
                    p.budget,
                    p.spent
                ],
            )?;
            Ok(())
        })
    }

    fn project(&self, id: &str) -> Result<Option<ProjectRecord>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {PROJECT_COLS} FROM projects WHERE id = ?1"),
                [id],
                project_row,
            )
            .optional()
        })
    }

    fn list_projects(&self) -> Result<Vec<ProjectRecord>> {
        self.with(|c| {
            let mut st = c.prepare(&format!("SELECT {PROJECT_COLS} FROM projects ORDER BY created_at, id"))?;
            let rows = st.query_map([], project_row)?;
            rows.collect()
        })
    }

    fn update_project(&self, id: &str, u: &ProjectUpdate) -> Result<bool> {
        self.with(|c| {
            let tx = c.transaction()?;
            let n = tx.query_row("SELECT COUNT(*) FROM projects WHERE id = ?1", [id], |r| {
                r.get::<_, i64>(0)
            })?;
            if let Some(name) = &u.name {
                tx.execute("UPDATE projects SET name = ?2 WHERE id = ?1", params![id, name])?;
            }
            if let Some(v) = u.rpm {
                tx.execute(
                    "UPDATE projects SET rpm = ?2 WHERE id = ?1",
                    params![id, v.map(|x| x as i64)],
                )?;
            }
            if let Some(v) = u.tpm {
                tx.execute(
                    "UPDATE projects SET tpm = ?2 WHERE id = ?1",
                    params![id, v.map(|x| x as i64)],
                )?;
            }
            if let Some(v) = u.budget {
                tx.execute("UPDATE projects SET budget = ?2 WHERE id = ?1", params![id, v])?;
            }
            tx.commit()?;
            Ok(n == 1)
        })
    }

    fn insert_response(&self, r: &ResponseRecord) -> Result<()> {
        self.with(|c| {
            c.execute(
                &format!("INSERT INTO responses ({RESPONSE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
                params![
                    r.id,
                    r.project_id,
                    r.created_at as i64,
                    r.expires_at.min(i64::MAX as u64) as i64,
                    r.previous_response_id,
                    r.object,
                    r.messages,
                    r.input_items,
                    r.pending
                ],
            )?;
            Ok(())
        })
    }

    fn response(&self, id: &str, now: u64) -> Result<Option<ResponseRecord>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {RESPONSE_COLS} FROM responses WHERE id = ?1 AND expires_at > ?2"),
                params![id, now as i64],
                response_row,
            )
            .optional()
        })
    }

    fn delete_response(&self, id: &str) -> Result<bool> {
        self.with(|c| Ok(c.execute("DELETE FROM responses WHERE id = ?1", [id])? == 1))
    }

    fn update_response(&self, id: &str, object: &str, messages: &str, pending: bool) -> Result<bool> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE responses SET object = ?2, messages = ?3, pending = ?4 WHERE id = ?1",
                params![id, object, messages, pending],
            )? == 1)
        })
    }

    fn pending_responses(&self) -> Result<Vec<ResponseRecord>> {
        self.with(|c| {
            let mut st = c.prepare(&format!("SELECT {RESPONSE_COLS} FROM responses WHERE pending = 1"))?;
            let rows = st.query_map([], response_row)?;
            rows.collect()
        })
    }

    fn sweep_responses(&self, now: u64) -> Result<usize> {
        self.with(|c| c.execute("DELETE FROM responses WHERE expires_at <= ?1", [now as i64]))
    }

    fn archive_project(&self, id: &str, at: u64) -> Result<Option<Archived>> {
        let open = [BatchStatus::Validating, BatchStatus::InProgress];
        self.with(|c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE projects SET archived_at = ?2 WHERE id = ?1 AND archived_at IS NULL",
                params![id, at as i64],
            )?;
            if n != 1 {
                return Ok(None);
            }
            let keys_revoked = tx.execute(
                "UPDATE keys SET revoked_at = ?2 WHERE project_id = ?1 AND revoked_at IS NULL",
                params![id, at as i64],
            )?;
            let batches_cancelled = tx.execute(
                &format!(
                    "UPDATE batches SET status = 'cancelling', cancelling_at = ?2 WHERE project_id = ?1 AND {}",
                    status_in(&open)
                ),
                params![id, at as i64],
            )?;
            tx.commit()?;
            Ok(Some(Archived {
                keys_revoked,
                batches_cancelled,
            }))
        })
    }
}

fn insert_usage(c: &Connection, u: &UsageRecord) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO usage (created_at, request_id, batch_id, line, model, tier, prompt_tokens, cached_tokens, \
         completion_tokens, cost, key_id, latency_ms, status, project_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            u.created_at as i64,
            u.request_id,
            u.batch_id,
            u.line,
            u.model,
            u.tier,
            u.prompt_tokens as i64,
            u.cached_tokens as i64,
            u.completion_tokens as i64,
            u.cost,
            u.key_id,
            u.latency_ms as i64,
            u.status,
            u.project_id
        ],
    )?;
    // The key's and the project's running spend move with their usage records, in the same
    // transaction, and the request's spend hold ends there.
    c.execute("DELETE FROM spend_holds WHERE id = ?1", [&u.request_id])?;
    if let Some(k) = &u.key_id {
        c.execute("UPDATE keys SET spent = spent + ?2 WHERE id = ?1", params![k, u.cost])?;
    }
    if let Some(p) = &u.project_id {
        c.execute(
            "UPDATE projects SET spent = spent + ?2 WHERE id = ?1",
            params![p, u.cost],
        )?;
    }
    Ok(())
}
