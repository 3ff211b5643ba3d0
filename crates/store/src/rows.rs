//! The SQLite store's column lists and how a row becomes a record.

use rusqlite::Row;

use crate::keys::KeyRecord;
use crate::projects::ProjectRecord;
use crate::types::*;

pub(crate) fn file_row(r: &Row) -> rusqlite::Result<FileRecord> {
    Ok(FileRecord {
        id: r.get(0)?,
        bytes: r.get::<_, i64>(1)? as u64,
        created_at: r.get::<_, i64>(2)? as u64,
        filename: r.get(3)?,
        purpose: r.get(4)?,
        expires_at: r.get::<_, Option<i64>>(5)?.map(|x| x as u64),
        project_id: r.get(6)?,
    })
}

pub(crate) const FILE_COLS: &str = "id, bytes, created_at, filename, purpose, expires_at, project_id";

pub(crate) const BATCH_COLS: &str = "id, endpoint, input_file_id, completion_window, status, created_at, expires_at, \
    in_progress_at, finalizing_at, completed_at, failed_at, expired_at, cancelling_at, cancelled_at, \
    output_file_id, error_file_id, errors, metadata, model, key_id, project_id";

pub(crate) fn batch_row(r: &Row) -> rusqlite::Result<BatchRecord> {
    let t = |i: usize| -> rusqlite::Result<Option<u64>> { Ok(r.get::<_, Option<i64>>(i)?.map(|x| x as u64)) };
    let status: String = r.get(4)?;
    Ok(BatchRecord {
        id: r.get(0)?,
        endpoint: r.get(1)?,
        input_file_id: r.get(2)?,
        completion_window: r.get(3)?,
        status: BatchStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, format!("status {status}").into())
        })?,
        created_at: r.get::<_, i64>(5)? as u64,
        expires_at: r.get::<_, i64>(6)? as u64,
        in_progress_at: t(7)?,
        finalizing_at: t(8)?,
        completed_at: t(9)?,
        failed_at: t(10)?,
        expired_at: t(11)?,
        cancelling_at: t(12)?,
        cancelled_at: t(13)?,
        output_file_id: r.get(14)?,
        error_file_id: r.get(15)?,
        errors: r.get(16)?,
        metadata: r.get(17)?,
        model: r.get(18)?,
        key_id: r.get(19)?,
        project_id: r.get(20)?,
    })
}

pub(crate) const KEY_COLS: &str =
    "id, name, hint, created_at, revoked_at, admin, rpm, tpm, budget, spent, digest, moderation, project_id";

pub(crate) fn key_row(r: &Row) -> rusqlite::Result<(KeyRecord, Vec<u8>)> {
    Ok((
        KeyRecord {
            id: r.get(0)?,
            name: r.get(1)?,
            hint: r.get(2)?,
            created_at: r.get::<_, i64>(3)? as u64,
            revoked_at: r.get::<_, Option<i64>>(4)?.map(|x| x as u64),
            admin: r.get(5)?,
            rpm: r.get::<_, Option<i64>>(6)?.map(|x| x as u64),
            tpm: r.get::<_, Option<i64>>(7)?.map(|x| x as u64),
            budget: r.get(8)?,
            spent: r.get(9)?,
            moderation: r.get(11)?,
            project_id: r.get(12)?,
        },
        r.get(10)?,
    ))
}

pub(crate) const RESPONSE_COLS: &str =
    "id, project_id, created_at, expires_at, previous_response_id, object, messages, input_items, pending";

pub(crate) fn response_row(r: &Row) -> rusqlite::Result<ResponseRecord> {
    Ok(ResponseRecord {
        id: r.get(0)?,
        project_id: r.get(1)?,
        created_at: r.get::<_, i64>(2)? as u64,
        expires_at: r.get::<_, i64>(3)? as u64,
        previous_response_id: r.get(4)?,
        object: r.get(5)?,
        messages: r.get(6)?,
        input_items: r.get(7)?,
        pending: r.get(8)?,
    })
}

pub(crate) const PROJECT_COLS: &str = "id, name, created_at, archived_at, rpm, tpm, budget, spent";

pub(crate) fn project_row(r: &Row) -> rusqlite::Result<ProjectRecord> {
    Ok(ProjectRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        created_at: r.get::<_, i64>(2)? as u64,
        archived_at: r.get::<_, Option<i64>>(3)?.map(|x| x as u64),
        rpm: r.get::<_, Option<i64>>(4)?.map(|x| x as u64),
        tpm: r.get::<_, Option<i64>>(5)?.map(|x| x as u64),
        budget: r.get(6)?,
        spent: r.get(7)?,
    })
}

pub(crate) const MODERATION_COLS: &str =
    "created_at, request_id, key_id, model, direction, action, categories, text, project_id";

pub(crate) fn moderation_row(r: &Row) -> rusqlite::Result<ModerationEvent> {
    let cats: String = r.get(6)?;
    Ok(ModerationEvent {
        created_at: r.get::<_, i64>(0)? as u64,
        request_id: r.get(1)?,
        key_id: r.get(2)?,
        model: r.get(3)?,
        direction: r.get(4)?,
        action: r.get(5)?,
        categories: cats.split(',').filter(|c| !c.is_empty()).map(String::from).collect(),
        text: r.get(7)?,
        project_id: r.get(8)?,
    })
}

pub(crate) const USAGE_COLS: &str = "created_at, request_id, batch_id, line, model, tier, prompt_tokens, \
     cached_tokens, completion_tokens, cost, key_id, latency_ms, status, project_id";

pub(crate) fn usage_row(r: &Row) -> rusqlite::Result<UsageRecord> {
    Ok(UsageRecord {
        created_at: r.get::<_, i64>(0)? as u64,
        request_id: r.get(1)?,
        batch_id: r.get(2)?,
        line: r.get(3)?,
        model: r.get(4)?,
        tier: r.get(5)?,
        prompt_tokens: r.get::<_, i64>(6)? as u64,
        cached_tokens: r.get::<_, i64>(7)? as u64,
        completion_tokens: r.get::<_, i64>(8)? as u64,
        cost: r.get(9)?,
        key_id: r.get(10)?,
        latency_ms: r.get::<_, i64>(11)? as u64,
        status: r.get(12)?,
        project_id: r.get(13)?,
    })
}
