//! Projects over HTTP, for admin keys (or an open server), at OpenAI's paths:
//! `GET|POST /v1/organization/projects` · `GET|POST /v1/organization/projects/{id}` ·
//! `POST /v1/organization/projects/{id}/archive`. Keys join a project when they are created
//! (`POST /v1/keys` with `project_id`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::Json;
use tandem_api as api;
use tandem_store::{ProjectRecord, ProjectUpdate};

use crate::admin::limits;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::params::Fields;
use crate::state::{unix_now, AppState};

pub fn project_object(p: &ProjectRecord) -> api::Project {
    api::Project {
        id: p.id.clone(),
        object: "organization.project".into(),
        name: p.name.clone(),
        created_at: p.created_at,
        archived_at: p.archived_at,
        status: if p.archived_at.is_some() { "archived" } else { "active" }.into(),
        rpm: p.rpm,
        tpm: p.tpm,
        budget: p.budget,
        spent: p.spent,
        keys_revoked: None,
        batches_cancelled: None,
    }
}

fn no_such_project(id: &str) -> ApiError {
    ApiError {
        param: Some("project_id".into()),
        ..ApiError::not_found(format!("No such project: {id}"))
    }
}

/// `name`, `rpm`, `tpm`, `budget` of a create or modify body (`null` clears a limit).
fn update(b: Result<Bytes, BytesRejection>) -> Result<ProjectUpdate, ApiError> {
    let b = b.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let v = Fields::parse(&b)?;
    let f = Fields::new(&v);
    f.check_known(&["name", "rpm", "tpm", "budget"], false)?;
    let l = limits(&f)?;
    Ok(ProjectUpdate {
        name: f.string("name")?.map(String::from),
        rpm: l.rpm,
        tpm: l.tpm,
        budget: l.budget,
    })
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<api::Page<api::Project>>, ApiError> {
    caller.require_admin()?;
    let all = state.db(|s| s.list_projects()).await?;
    let data = all.iter().map(project_object).collect();
    Ok(Json(api::Page::new(data, false, |p: &api::Project| &p.id)))
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<api::Project>, ApiError> {
    caller.require_admin()?;
    let u = update(b)?;
    let name = u
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::missing("name"))?;
    let mut p = ProjectRecord::new(name, unix_now()).map_err(|e| ApiError::internal(e.to_string()))?;
    p.rpm = u.rpm.flatten();
    p.tpm = u.tpm.flatten();
    p.budget = u.budget.flatten();
    let rec = p.clone();
    state.db(move |s| s.insert_project(&rec)).await?;
    Ok(Json(project_object(&p)))
}

pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<api::Project>, ApiError> {
    caller.require_admin()?;
    let key = id.clone();
    let p = state.db(move |s| s.project(&key)).await?;
    p.map(|p| Json(project_object(&p))).ok_or_else(|| no_such_project(&id))
}

pub async fn modify(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<api::Project>, ApiError> {
    caller.require_admin()?;
    let u = update(b)?;
    let key = id.clone();
    let p = state
        .db(move |s| {
            Ok(if s.update_project(&key, &u)? {
                s.project(&key)?
            } else {
                None
            })
        })
        .await?;
    p.map(|p| Json(project_object(&p))).ok_or_else(|| no_such_project(&id))
}

/// Revokes the project's keys and cancels its unfinished batches; its objects stay in the store,
/// reachable by no key.
pub async fn archive(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<api::Project>, ApiError> {
    caller.require_admin()?;
    let key = id.clone();
    let (done, p) = state
        .db(move |s| Ok((s.archive_project(&key, unix_now())?, s.project(&key)?)))
        .await?;
    let p = p.ok_or_else(|| no_such_project(&id))?;
    state.batch_wake.notify_one();
    Ok(Json(api::Project {
        keys_revoked: done.map(|a| a.keys_revoked),
        batches_cancelled: done.map(|a| a.batches_cancelled),
        ..project_object(&p)
    }))
}
