//! The Batch API routes: create, retrieve, list, cancel. The work itself is `batch_worker`'s.
//! A batch belongs to its creator's project, takes only that project's input files, and is
//! answered to another project's keys exactly as a batch that does not exist.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::Json;
use serde_json::Value;
use tandem_api as api;
use tandem_store::{BatchRecord, BatchStatus, RequestCounts, UsageTotals};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::params::{wrong_type, Fields};
use crate::state::{new_id, unix_now, AppState};

/// Endpoints a batch may target.
pub const ENDPOINTS: &[&str] = &[
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/responses",
    "/v1/moderations",
    "/v1/embeddings",
];

pub fn batch_object(b: &BatchRecord, counts: RequestCounts, usage: UsageTotals) -> api::Batch {
    let parse = |s: &Option<String>| s.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok());
    api::Batch {
        id: b.id.clone(),
        object: "batch".into(),
        endpoint: b.endpoint.clone(),
        errors: parse(&b.errors),
        input_file_id: b.input_file_id.clone(),
        completion_window: b.completion_window.clone(),
        status: b.status.as_str().into(),
        output_file_id: b.output_file_id.clone(),
        error_file_id: b.error_file_id.clone(),
        created_at: b.created_at,
        in_progress_at: b.in_progress_at,
        expires_at: b.expires_at,
        finalizing_at: b.finalizing_at,
        completed_at: b.completed_at,
        failed_at: b.failed_at,
        expired_at: b.expired_at,
        cancelling_at: b.cancelling_at,
        cancelled_at: b.cancelled_at,
        request_counts: api::RequestCounts {
            total: counts.total,
            completed: counts.completed,
            failed: counts.failed,
        },
        metadata: parse(&b.metadata),
        model: b.model.clone(),
        usage: api::BatchUsage {
            input_tokens: usage.prompt_tokens,
            input_tokens_details: api::InputTokensDetails {
                cached_tokens: usage.cached_tokens,
            },
            output_tokens: usage.completion_tokens,
            output_tokens_details: api::OutputTokensDetails::default(),
            total_tokens: usage.prompt_tokens + usage.completion_tokens,
            cost: usage.cost,
        },
    }
}

fn no_such_batch(id: &str) -> ApiError {
    ApiError {
        param: Some("batch_id".into()),
        ..ApiError::not_found(format!("No such Batch object: {id}"))
    }
}

/// Reads the caller's batch with its counts and usage, as the API shows it.
async fn load(state: &Arc<AppState>, caller: &Caller, id: String) -> Result<Json<api::Batch>, ApiError> {
    let (key, project) = (id.clone(), caller.project_id());
    let found = state
        .db(move |s| {
            let Some(b) = s.batch(&key)? else { return Ok(None) };
            if !tandem_store::owned_by(b.project_id.as_deref(), project.as_deref()) {
                return Ok(None);
            }
            Ok(Some((s.request_counts(&key)?, s.batch_usage(&key)?, b)))
        })
        .await?;
    let (counts, usage, b) = found.ok_or_else(|| no_such_batch(&id))?;
    Ok(Json(batch_object(&b, counts, usage)))
}

/// Metadata: at most 16 pairs, keys ≤ 64 characters, string values ≤ 512.
fn metadata(v: Option<&Value>) -> Result<Option<String>, ApiError> {
    let Some(v) = v else { return Ok(None) };
    let Value::Object(m) = v else {
        return Err(wrong_type("metadata", "an object", v));
    };
    if m.len() > 16 {
        return Err(ApiError::invalid(
            "metadata",
            "invalid_value",
            format!("Invalid 'metadata': at most 16 keys, got {}.", m.len()),
        ));
    }
    for (k, val) in m {
        let Value::String(s) = val else {
            return Err(wrong_type(&format!("metadata.{k}"), "a string", val));
        };
        if k.chars().count() > 64 || s.chars().count() > 512 {
            return Err(ApiError::invalid(
                format!("metadata.{k}"),
                "invalid_value",
                "Invalid 'metadata': keys are at most 64 characters and values at most 512.",
            ));
        }
    }
    Ok(Some(v.to_string()))
}

/// The endpoint, the window and output expiry: what this server can run.
fn check_options(endpoint: &str, window: &str, output_expiry: bool) -> Result<(), ApiError> {
    if !ENDPOINTS.contains(&endpoint) {
        return Err(ApiError::invalid(
            "endpoint",
            "invalid_value",
            format!("Invalid value for 'endpoint': '{endpoint}'. Supported values are: '/v1/chat/completions', '/v1/completions', '/v1/responses', '/v1/moderations' and '/v1/embeddings'."),
        ));
    }
    if window != "24h" {
        return Err(ApiError::invalid(
            "completion_window",
            "invalid_value",
            format!("Invalid value for 'completion_window': '{window}'. Supported values are: '24h'."),
        ));
    }
    if output_expiry {
        return Err(ApiError::invalid(
            "output_expires_after",
            "unsupported_parameter",
            "Output file expiry ('output_expires_after') is not supported yet.",
        ));
    }
    Ok(())
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<api::Batch>, ApiError> {
    caller.check_budget()?;
    let b = b.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let v = Fields::parse(&b)?;
    let f = Fields::new(&v);
    f.check_known(
        &[
            "input_file_id",
            "endpoint",
            "completion_window",
            "metadata",
            "output_expires_after",
        ],
        state.config.ignore_unknown_fields,
    )?;
    let need = |k: &str| f.string(k)?.ok_or_else(|| ApiError::missing(k));
    let (input, endpoint, window) = (need("input_file_id")?, need("endpoint")?, need("completion_window")?);
    check_options(endpoint, window, f.get("output_expires_after").is_some())?;
    let meta = metadata(f.get("metadata"))?;
    let file = crate::files::find(&state, &caller, input).await.map_err(|e| ApiError {
        param: Some("input_file_id".into()),
        ..e
    })?;
    if file.purpose != "batch" {
        return Err(ApiError::invalid(
            "input_file_id",
            "invalid_value",
            format!(
                "File {input} has purpose '{}'; a batch needs a file uploaded with purpose 'batch'.",
                file.purpose
            ),
        ));
    }
    let now = unix_now();
    let mut rec = BatchRecord::new(
        new_id("batch_"),
        endpoint.to_string(),
        input.to_string(),
        now,
        now + state.config.batch_window.as_secs(),
    );
    rec.metadata = meta;
    rec.key_id = caller.key_id();
    rec.project_id = caller.project_id();
    let r = rec.clone();
    state.db(move |s| s.insert_batch(&r)).await?;
    state.batch_wake.notify_one();
    Ok(Json(batch_object(
        &rec,
        RequestCounts::default(),
        UsageTotals::default(),
    )))
}

pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<api::Batch>, ApiError> {
    load(&state, &caller, id).await
}

/// `GET /v1/batches?after=&limit=` (newest first).
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<api::Page<api::Batch>>, ApiError> {
    let limit = crate::files::limit_param(&q, 100, 20)?;
    let (after, project) = (q.get("after").cloned(), caller.project_id());
    let mut rows = state
        .db(move |s| {
            s.list_batches(project.as_deref(), after.as_deref(), limit + 1)?
                .into_iter()
                .map(|b| Ok((s.request_counts(&b.id)?, s.batch_usage(&b.id)?, b)))
                .collect::<tandem_store::Result<Vec<_>>>()
        })
        .await?;
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let data = rows.iter().map(|(c, u, b)| batch_object(b, *c, *u)).collect();
    Ok(Json(api::Page::new(data, has_more, |b: &api::Batch| &b.id)))
}

/// Moves a running batch to `cancelling`; the worker stops its lines and ends it as `cancelled`.
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<api::Batch>, ApiError> {
    let (key, project) = (id.clone(), caller.project_id());
    let (found, moved) = state
        .db(move |s| {
            let Some(b) = s
                .batch(&key)?
                .filter(|b| tandem_store::owned_by(b.project_id.as_deref(), project.as_deref()))
            else {
                return Ok((None, false));
            };
            let moved = s.transition(
                &key,
                &[BatchStatus::Validating, BatchStatus::InProgress],
                BatchStatus::Cancelling,
                unix_now(),
            )?;
            Ok((Some(b.status), moved))
        })
        .await?;
    match found {
        None => return Err(no_such_batch(&id)),
        Some(st) if !moved && st != BatchStatus::Cancelling && st != BatchStatus::Cancelled => {
            return Err(ApiError {
                status: axum::http::StatusCode::CONFLICT,
                ..ApiError::bad_request(format!("Cannot cancel a batch with status '{st}'."))
            })
        }
        _ => {}
    }
    state.batch_wake.notify_one();
    load(&state, &caller, id).await
}
