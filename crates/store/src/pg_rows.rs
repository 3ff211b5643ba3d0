//! How a PostgreSQL row becomes a record (the column lists are the SQLite store's: the same
//! names in the same order).

use postgres::Row;

pub(crate) use crate::rows::{
    BATCH_COLS, FILE_COLS, KEY_COLS, MODERATION_COLS, PROJECT_COLS, RESPONSE_COLS, USAGE_COLS,
};

use crate::keys::KeyRecord;
use crate::projects::ProjectRecord;
use crate::types::*;
use crate::{Result, StoreError};

/// The five totals of a usage query, in `totals_at`'s order.
pub(crate) const TOTALS: &str = "COUNT(*), COALESCE(SUM(prompt_tokens), 0)::BIGINT, \
    COALESCE(SUM(cached_tokens), 0)::BIGINT, COALESCE(SUM(completion_tokens), 0)::BIGINT, \
    COALESCE(SUM(cost), 0)::DOUBLE PRECISION";

fn corrupt(what: &str, v: i64) -> StoreError {
    StoreError::Corrupt(format!("{what}: {v} is out of range"))
}

pub(crate) fn u64_at(r: &Row, i: usize) -> Result<u64> {
    let v: i64 = r.try_get(i)?;
    u64::try_from(v).map_err(|_| corrupt("a count or time", v))
}

fn opt_u64_at(r: &Row, i: usize) -> Result<Option<u64>> {
    r.try_get::<_, Option<i64>>(i)?
        .map(|v| u64::try_from(v).map_err(|_| corrupt("a time or limit", v)))
        .transpose()
}

pub(crate) fn u32_at(r: &Row, i: usize) -> Result<u32> {
    let v: i64 = r.try_get(i)?;
    u32::try_from(v).map_err(|_| corrupt("a line number", v))
}

pub(crate) fn totals_at(r: &Row, k: usize) -> Result<UsageTotals> {
    Ok(UsageTotals {
        records: u64_at(r, k)?,
        prompt_tokens: u64_at(r, k + 1)?,
        cached_tokens: u64_at(r, k + 2)?,
        completion_tokens: u64_at(r, k + 3)?,
        cost: r.try_get(k + 4)?,
    })
}

pub(crate) fn file_row(r: &Row) -> Result<FileRecord> {
    Ok(FileRecord {
        id: r.try_get(0)?,
        bytes: u64_at(r, 1)?,
        created_at: u64_at(r, 2)?,
        filename: r.try_get(3)?,
        purpose: r.try_get(4)?,
        expires_at: opt_u64_at(r, 5)?,
        project_id: r.try_get(6)?,
    })
}

pub(crate) fn batch_row(r: &Row) -> Result<BatchRecord> {
    let status: String = r.try_get(4)?;
    Ok(BatchRecord {
        id: r.try_get(0)?,
        endpoint: r.try_get(1)?,
        input_file_id: r.try_get(2)?,
        completion_window: r.try_get(3)?,
        status: BatchStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("batch status {status}")))?,
        created_at: u64_at(r, 5)?,
        expires_at: u64_at(r, 6)?,
        in_progress_at: opt_u64_at(r, 7)?,
        finalizing_at: opt_u64_at(r, 8)?,
        completed_at: opt_u64_at(r, 9)?,
        failed_at: opt_u64_at(r, 10)?,
        expired_at: opt_u64_at(r, 11)?,
        cancelling_at: opt_u64_at(r, 12)?,
        cancelled_at: opt_u64_at(r, 13)?,
        output_file_id: r.try_get(14)?,
        error_file_id: r.try_get(15)?,
        errors: r.try_get(16)?,
        metadata: r.try_get(17)?,
        model: r.try_get(18)?,
        key_id: r.try_get(19)?,
        project_id: r.try_get(20)?,
    })
}

pub(crate) fn key_row(r: &Row) -> Result<(KeyRecord, Vec<u8>)> {
    Ok((
        KeyRecord {
            id: r.try_get(0)?,
            name: r.try_get(1)?,
            hint: r.try_get(2)?,
            created_at: u64_at(r, 3)?,
            revoked_at: opt_u64_at(r, 4)?,
            admin: r.try_get(5)?,
            rpm: opt_u64_at(r, 6)?,
            tpm: opt_u64_at(r, 7)?,
            budget: r.try_get(8)?,
            spent: r.try_get(9)?,
            moderation: r.try_get(11)?,
            project_id: r.try_get(12)?,
        },
        r.try_get(10)?,
    ))
}

pub(crate) fn response_row(r: &Row) -> Result<ResponseRecord> {
    Ok(ResponseRecord {
        id: r.try_get(0)?,
        project_id: r.try_get(1)?,
        created_at: u64_at(r, 2)?,
        expires_at: u64_at(r, 3)?,
        previous_response_id: r.try_get(4)?,
        object: r.try_get(5)?,
        messages: r.try_get(6)?,
        input_items: r.try_get(7)?,
        pending: r.try_get(8)?,
    })
}

pub(crate) fn project_row(r: &Row) -> Result<ProjectRecord> {
    Ok(ProjectRecord {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        created_at: u64_at(r, 2)?,
        archived_at: opt_u64_at(r, 3)?,
        rpm: opt_u64_at(r, 4)?,
        tpm: opt_u64_at(r, 5)?,
        budget: r.try_get(6)?,
        spent: r.try_get(7)?,
    })
}

pub(crate) fn moderation_row(r: &Row) -> Result<ModerationEvent> {
    let cats: String = r.try_get(6)?;
    Ok(ModerationEvent {
        created_at: u64_at(r, 0)?,
        request_id: r.try_get(1)?,
        key_id: r.try_get(2)?,
        model: r.try_get(3)?,
        direction: r.try_get(4)?,
        action: r.try_get(5)?,
        categories: cats.split(',').filter(|c| !c.is_empty()).map(String::from).collect(),
        text: r.try_get(7)?,
        project_id: r.try_get(8)?,
    })
}

pub(crate) fn usage_row(r: &Row) -> Result<UsageRecord> {
    let line: Option<i64> = r.try_get(3)?;
    let status: i64 = r.try_get(12)?;
    Ok(UsageRecord {
        created_at: u64_at(r, 0)?,
        request_id: r.try_get(1)?,
        batch_id: r.try_get(2)?,
        line: line
            .map(|v| u32::try_from(v).map_err(|_| corrupt("a line number", v)))
            .transpose()?,
        model: r.try_get(4)?,
        tier: r.try_get(5)?,
        prompt_tokens: u64_at(r, 6)?,
        cached_tokens: u64_at(r, 7)?,
        completion_tokens: u64_at(r, 8)?,
        cost: r.try_get(9)?,
        key_id: r.try_get(10)?,
        latency_ms: u64_at(r, 11)?,
        status: u16::try_from(status).map_err(|_| corrupt("an HTTP status", status))?,
        project_id: r.try_get(13)?,
    })
}
