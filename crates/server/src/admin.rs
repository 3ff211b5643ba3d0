//! Admin endpoints (an admin key, or an open server): keys over HTTP, and usage aggregates across
//! projects. `GET /v1/usage?since=&until=&by=day,hour,key,model,project` · `GET|POST /v1/keys` ·
//! `POST|DELETE /v1/keys/{id}`. Projects are `projects`'. Least privilege: an admin key manages
//! keys and projects and reads usage, but files and batches only of its own project.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::Json;
use serde_json::Value;
use tandem_api as api;
use tandem_store::{KeyRecord, KeyUpdate, NewKey, UsageDim};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::params::{wrong_type, Fields};
use crate::state::{unix_now, AppState};

pub fn key_object(k: &KeyRecord) -> api::ApiKey {
    api::ApiKey {
        id: k.id.clone(),
        object: "api_key".into(),
        name: k.name.clone(),
        redacted_value: k.hint.clone(),
        created_at: k.created_at,
        revoked_at: k.revoked_at,
        admin: k.admin,
        rpm: k.rpm,
        tpm: k.tpm,
        budget: k.budget,
        spent: k.spent,
        moderation: k.moderation.clone(),
        project_id: k.project_id.clone(),
        value: None,
    }
}

/// A time bound: unix seconds or a `YYYY-MM-DD` day (its start, UTC).
pub(crate) fn time_param(q: &HashMap<String, String>, k: &str) -> Result<Option<u64>, ApiError> {
    let Some(v) = q.get(k) else { return Ok(None) };
    v.parse::<u64>()
        .ok()
        .or_else(|| tandem_store::day_start(v))
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid(
                k,
                "invalid_value",
                format!("Invalid '{k}': '{v}' is neither unix seconds nor YYYY-MM-DD."),
            )
        })
}

/// Usage rows as the API shows them: the group's values (`day`, `key_id`, `model`,
/// `project_id`) and the totals.
pub fn usage_json(rows: &[tandem_store::UsageRow], dims: &[UsageDim]) -> Vec<api::UsageRow> {
    rows.iter()
        .map(|r| {
            let mut o = api::UsageRow {
                requests: r.totals.records,
                input_tokens: r.totals.prompt_tokens,
                cached_tokens: r.totals.cached_tokens,
                output_tokens: r.totals.completion_tokens,
                cost: r.totals.cost,
                ..Default::default()
            };
            for (d, v) in dims.iter().zip(&r.group) {
                *match d {
                    UsageDim::Day => &mut o.day,
                    UsageDim::Hour => &mut o.hour,
                    UsageDim::Key => &mut o.key_id,
                    UsageDim::Model => &mut o.model,
                    UsageDim::Project => &mut o.project_id,
                } = Some(v.clone());
            }
            o
        })
        .collect()
}

fn parse_dims(by: &str) -> Result<Vec<UsageDim>, ApiError> {
    by.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            UsageDim::parse(s.trim()).ok_or_else(|| {
                ApiError::invalid(
                    "by",
                    "invalid_value",
                    format!("Invalid 'by': '{s}'. Group by any of day, hour, key, model, project."),
                )
            })
        })
        .collect()
}

pub async fn usage(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<api::List<api::UsageRow>>, ApiError> {
    caller.require_admin()?;
    let since = time_param(&q, "since")?.unwrap_or(0);
    let until = time_param(&q, "until")?.unwrap_or(u64::MAX);
    let dims = parse_dims(q.get("by").map(String::as_str).unwrap_or("day,key,model"))?;
    let d2 = dims.clone();
    let rows = state.db(move |s| s.usage_summary(since, until, &d2)).await?;
    Ok(Json(api::List::new(usage_json(&rows, &dims))))
}

pub async fn list_keys(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<api::List<api::ApiKey>>, ApiError> {
    caller.require_admin()?;
    let keys = state.db(|s| s.list_keys()).await?;
    Ok(Json(api::List::new(keys.iter().map(key_object).collect())))
}

/// `rpm`, `tpm` (non-negative integers), `budget` (dollars) and `moderation` (a policy such as
/// `input:block`); `null` clears one.
pub(crate) fn limits(f: &Fields) -> Result<KeyUpdate, ApiError> {
    let int = |k: &str| -> Result<Option<Option<u64>>, ApiError> {
        match f.obj.get(k) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => v
                .as_u64()
                .map(|n| Some(Some(n)))
                .ok_or_else(|| wrong_type(k, "a non-negative integer", v)),
        }
    };
    let budget = match f.obj.get("budget") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => match v.as_f64() {
            Some(b) if b >= 0.0 && b.is_finite() => Some(Some(b)),
            _ => return Err(wrong_type("budget", "a non-negative number of dollars", v)),
        },
    };
    let moderation = match f.obj.get("moderation") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => {
            crate::guard::ModerationPolicy::default()
                .overridden(s)
                .map_err(|e| ApiError::invalid("moderation", "invalid_value", e))?;
            Some(Some(s.clone()))
        }
        Some(v) => return Err(wrong_type("moderation", "a string", v)),
    };
    Ok(KeyUpdate {
        name: None,
        rpm: int("rpm")?,
        tpm: int("tpm")?,
        budget,
        moderation,
    })
}

pub async fn create_key(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<api::ApiKey>, ApiError> {
    caller.require_admin()?;
    let b = b.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let v = Fields::parse(&b)?;
    let f = Fields::new(&v);
    f.check_known(
        &["name", "admin", "rpm", "tpm", "budget", "moderation", "project_id"],
        false,
    )?;
    let l = limits(&f)?;
    let spec = NewKey {
        name: f.string("name")?.unwrap_or("").to_string(),
        admin: f.bool("admin")?.unwrap_or(false),
        rpm: l.rpm.flatten(),
        tpm: l.tpm.flatten(),
        budget: l.budget.flatten(),
        moderation: l.moderation.flatten(),
        project_id: f.string("project_id")?.map(String::from),
    };
    let st = state.clone();
    let (rec, key) = state
        .db_checked(
            move |s| tandem_store::create_key(s, &st.keyring, spec, unix_now()),
            "project_id",
        )
        .await?;
    Ok(Json(api::ApiKey {
        value: Some(key),
        ..key_object(&rec)
    }))
}

pub async fn update_key(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<api::ApiKey>, ApiError> {
    caller.require_admin()?;
    let b = b.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let v = Fields::parse(&b)?;
    let f = Fields::new(&v);
    f.check_known(&["name", "rpm", "tpm", "budget", "moderation"], false)?;
    let u = KeyUpdate {
        name: f.string("name")?.map(String::from),
        ..limits(&f)?
    };
    let key = id.clone();
    let found = state
        .db(move |s| {
            Ok(if s.update_key(&key, &u)? {
                s.key(&key)?.map(|(k, _)| k)
            } else {
                None
            })
        })
        .await?;
    found
        .map(|k| Json(key_object(&k)))
        .ok_or_else(|| ApiError::not_found(format!("No such API key: {id}")))
}

pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<api::Deleted>, ApiError> {
    caller.require_admin()?;
    let key = id.clone();
    let found = state
        .db(move |s| {
            s.revoke_key(&key, unix_now())?;
            Ok(s.key(&key)?.map(|(k, _)| k))
        })
        .await?;
    found
        .map(|k| {
            Json(api::Deleted {
                id: k.id,
                object: "api_key.deleted".into(),
                deleted: true,
                revoked_at: k.revoked_at,
            })
        })
        .ok_or_else(|| ApiError::not_found(format!("No such API key: {id}")))
}
