//! The Files API: upload (multipart, streamed to disk), list, retrieve, content, delete.
//! Bytes go to the blob directory first; the record is written only once they are safely on disk,
//! so a file the API lists always has its bytes. Every file belongs to the uploader's project; a
//! file of another project is answered exactly like one that does not exist.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tandem_api as api;
use tandem_store::FileRecord;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::{new_id, unix_now, AppState};

/// Purposes a client may upload with.
const PURPOSES: &[&str] = &["batch", "user_data", "vision"];

pub fn file_object(f: &FileRecord) -> api::FileObject {
    api::FileObject {
        id: f.id.clone(),
        object: "file".into(),
        bytes: f.bytes,
        created_at: f.created_at,
        filename: f.filename.clone(),
        purpose: f.purpose.clone(),
        status: "processed".into(),
        expires_at: f.expires_at,
        status_details: None,
    }
}

pub fn no_such_file(id: &str) -> ApiError {
    ApiError {
        param: Some("id".into()),
        ..ApiError::not_found(format!("No such File object: {id}"))
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError, limit: u64) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large(limit as usize)
    } else {
        ApiError::bad_request(format!("Could not read the upload: {}", e.body_text()))
    }
}

/// A multipart field's bytes into a blob being written (not yet committed), within `limit`.
async fn stream_to_blob(
    state: &AppState,
    id: &str,
    field: &mut axum::extract::multipart::Field<'_>,
    limit: u64,
) -> Result<tandem_store::BlobWriter, ApiError> {
    let store_error = |e: tandem_store::StoreError| ApiError::internal(format!("file store: {e}"));
    let mut w = state.blobs.begin(id).map_err(store_error)?;
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
        if w.written + chunk.len() as u64 > limit {
            return Err(ApiError::payload_too_large(limit as usize));
        }
        // Small synchronous writes to the page cache; the one fsync happens at commit.
        w.write(&chunk).map_err(store_error)?;
    }
    Ok(w)
}

/// The upload's purpose and file: both given, a known purpose, a batch input named `.jsonl`.
fn check_upload<W>(purpose: Option<String>, blob: Option<(W, String)>) -> Result<(String, (W, String)), ApiError> {
    let missing = ApiError::missing;
    let purpose = purpose.ok_or_else(|| missing("purpose"))?;
    if !PURPOSES.contains(&purpose.as_str()) {
        return Err(ApiError::invalid(
            "purpose",
            "invalid_value",
            format!(
                "Invalid value for 'purpose': '{purpose}'. Supported values are: 'batch', 'user_data' and 'vision'."
            ),
        ));
    }
    let (w, filename) = blob.ok_or_else(|| missing("file"))?;
    if purpose == "batch" && !filename.ends_with(".jsonl") {
        return Err(ApiError::invalid(
            "file",
            "invalid_file_format",
            format!("Invalid file format for Batch API. Must be .jsonl (got '{filename}')."),
        ));
    }
    Ok((purpose, (w, filename)))
}

pub async fn upload(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    mp: Result<Multipart, MultipartRejection>,
) -> Result<Json<api::FileObject>, ApiError> {
    let mut mp =
        mp.map_err(|e| ApiError::bad_request(format!("Expected a multipart/form-data body: {}", e.body_text())))?;
    let limit = state.config.max_file_bytes;
    let id = new_id("file-");
    let mut purpose: Option<String> = None;
    let mut blob: Option<(tandem_store::BlobWriter, String)> = None;
    while let Some(mut field) = mp.next_field().await.map_err(|e| multipart_error(e, limit))? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "purpose" => purpose = Some(field.text().await.map_err(|e| multipart_error(e, limit))?),
            "file" => {
                if blob.is_some() {
                    return Err(ApiError::invalid(
                        "file",
                        "invalid_value",
                        "Only one 'file' may be uploaded.",
                    ));
                }
                let filename = field.file_name().unwrap_or("upload").to_string();
                blob = Some((stream_to_blob(&state, &id, &mut field, limit).await?, filename));
            }
            "expires_after" | "expires_after[anchor]" | "expires_after[seconds]" => {
                return Err(ApiError::invalid(
                    "expires_after",
                    "unsupported_parameter",
                    "File expiry ('expires_after') is not supported yet; delete files with DELETE /v1/files/{id}.",
                ))
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "Unrecognized request argument supplied: {other}"
                )))
            }
        }
    }
    let (purpose, (w, filename)) = check_upload(purpose, blob)?;
    let bytes = w.written;
    let rec = FileRecord {
        id: id.clone(),
        bytes,
        created_at: unix_now(),
        filename,
        purpose,
        expires_at: None,
        project_id: caller.project_id(),
    };
    let rec2 = rec.clone();
    state
        .db(move |s| {
            w.commit()?;
            s.insert_file(&rec2)
        })
        .await?;
    Ok(Json(file_object(&rec)))
}

pub fn limit_param(q: &HashMap<String, String>, max: usize, default: usize) -> Result<usize, ApiError> {
    match q.get("limit") {
        None => Ok(default),
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|&n| (1..=max).contains(&n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    "invalid_value",
                    format!("Invalid 'limit': expected an integer in [1, {max}], got '{l}'."),
                )
            }),
    }
}

/// `GET /v1/files?purpose=&limit=&after=&order=asc|desc`
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<api::Page<api::FileObject>>, ApiError> {
    let limit = limit_param(&q, 10_000, 10_000)?;
    let ascending = match q.get("order").map(String::as_str) {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(o) => {
            return Err(ApiError::invalid(
                "order",
                "invalid_value",
                format!("Invalid 'order': '{o}'. Expected 'asc' or 'desc'."),
            ))
        }
    };
    let (purpose, after, project) = (q.get("purpose").cloned(), q.get("after").cloned(), caller.project_id());
    let mut files = state
        .db(move |s| {
            s.list_files(
                project.as_deref(),
                purpose.as_deref(),
                after.as_deref(),
                limit + 1,
                ascending,
            )
        })
        .await?;
    let has_more = files.len() > limit;
    files.truncate(limit);
    let data = files.iter().map(file_object).collect();
    Ok(Json(api::Page::new(data, has_more, |f: &api::FileObject| &f.id)))
}

/// The caller's file `id`; another project's is `no_such_file`, as a missing one.
pub async fn find(state: &Arc<AppState>, caller: &Caller, id: &str) -> Result<FileRecord, ApiError> {
    let key = id.to_string();
    state
        .db(move |s| s.file(&key))
        .await?
        .filter(|f| caller.owns(f.project_id.as_deref()))
        .ok_or_else(|| no_such_file(id))
}

pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<api::FileObject>, ApiError> {
    Ok(Json(file_object(&find(&state, &caller, &id).await?)))
}

/// The bytes, streamed from disk.
pub async fn content(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let f = find(&state, &caller, &id).await?;
    let file = tokio::fs::File::open(state.blobs.path(&f.id))
        .await
        .map_err(|e| ApiError::internal(format!("the bytes of {} are missing: {e}", f.id)))?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let disposition = format!(
        "attachment; filename=\"{}\"",
        f.filename.replace(['"', '\\', '\r', '\n'], "_")
    );
    let headers = [
        ("content-type", "application/octet-stream".to_string()),
        ("content-length", f.bytes.to_string()),
        ("content-disposition", disposition),
    ];
    Ok((headers, body).into_response())
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<api::Deleted>, ApiError> {
    let f = find(&state, &caller, &id).await?;
    if !state.db(move |s| s.delete_file(&f.id)).await? {
        return Err(no_such_file(&id));
    }
    // The record is gone first: a crash here leaves an orphan blob, never a dangling record.
    let _ = state.blobs.remove(&id);
    Ok(Json(api::Deleted {
        id,
        object: "file".into(),
        deleted: true,
        revoked_at: None,
    }))
}
