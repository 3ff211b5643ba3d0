//! The Responses API, a front door on the one pipeline: a request's `instructions`, the stored
//! conversation of its `previous_response_id` and its `input` items become chat messages; its
//! function tools, `tool_choice` and `text.format` become their chat equivalents; the pipeline
//! answers, and the chat answer is rendered as output items. Stored responses (`store`, default
//! true) belong to the caller's project: `GET`, `DELETE` and `input_items`, 404 for any other
//! project. `stream` renders the answer as response events (`responses_stream`). Not yet:
//! `background`, batch lines (each a 400 naming the field).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use tandem_api as api;
use tandem_store::ResponseRecord;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::params::Fields;
use crate::pipeline::{self, Outcome};
use crate::request::Api;
use crate::responses_request::{translate, Translated};
use crate::state::{new_id, unix_now, AppState};

/// How long a stored response is kept.
const RETENTION_SECS: u64 = 30 * 24 * 3600;

const FIELDS: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "text",
    "max_output_tokens",
    "temperature",
    "top_p",
    "store",
    "previous_response_id",
    "metadata",
    "truncation",
    "background",
    "include",
    "user",
    "prompt_cache_key",
    "service_tier",
    "reasoning",
    "stream",
    "safety_identifier",
    // Not OpenAI's for this endpoint: chat's seed and sampling extensions.
    "seed",
    "top_k",
    "min_p",
    "repetition_penalty",
];

fn no_such_response(id: &str, param: &str) -> ApiError {
    ApiError {
        param: Some(param.into()),
        ..ApiError::not_found(format!("No response found with id '{id}'."))
    }
}

/// `POST /v1/responses`
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Result<axum::response::Response, ApiError> {
    let raw = crate::routes::body(b, state.config.max_body_bytes)?;
    let request = Fields::parse(&raw)?;
    Ok(
        match answer(&state, &caller, request, Lane::Http(&headers, Instant::now())).await? {
            Answered::Stream(r) => r,
            Answered::Queued(v) => Json(v).into_response(),
            Answered::Done(done) => Json(done.0).into_response(),
        },
    )
}

/// What `answer` produced.
pub(crate) enum Answered {
    /// A background response, as stored when it was queued.
    Queued(Value),
    /// The event stream (it finishes, and stores the response, later).
    Stream(axum::response::Response),
    /// The response, and the chat answer it renders.
    Done(Box<(api::Response, api::ChatCompletion)>),
}

/// Where a response is asked for: over HTTP (streamed or not, its usage recorded here), or as a
/// batch line (at batch priority and price; the line records its usage with its result).
pub(crate) enum Lane<'a> {
    Http(&'a HeaderMap, Instant),
    Batch,
}

/// Answers one Responses request.
pub(crate) async fn answer(
    state: &Arc<AppState>,
    caller: &Caller,
    request: Value,
    lane: Lane<'_>,
) -> Result<Answered, ApiError> {
    let f = Fields::new(&request);
    f.check_known(FIELDS, state.config.ignore_unknown_fields)?;
    let streamed = f.bool("stream")?.unwrap_or(false);
    let background = f.bool("background")?.unwrap_or(false);
    let store = f.bool("store")?.unwrap_or(true);
    let previous = previous(state, caller, f.string("previous_response_id")?).await?;
    let mut t = translate(&f, previous.as_ref())?;
    if background {
        if matches!(lane, Lane::Batch) || streamed || !store {
            let (param, why) = if !store {
                (
                    "store",
                    "a background response is stored: 'background' needs 'store' true",
                )
            } else {
                ("background", "a background response that is streamed or a batch line")
            };
            return Err(ApiError::invalid(param, "invalid_value", why.to_string()));
        }
        let previous_id = previous.as_ref().map(|p| p.id.clone());
        return crate::responses_background::start(state, caller, request.clone(), t, previous_id).await;
    }
    t.chat["stream"] = json!(streamed);
    let body = serde_json::to_vec(&t.chat).map_err(|e| ApiError::internal(e.to_string()))?;
    let headers = match &lane {
        Lane::Http(h, _) => Some(*h),
        Lane::Batch => None,
    };
    let req = pipeline::Request {
        api: Api::Chat,
        body: &body,
        headers,
        batch: matches!(lane, Lane::Batch),
        background: false,
    };
    let previous_id = previous.as_ref().map(|p| p.id.clone());
    let answer = match (pipeline::run(state, caller, req).await?, lane) {
        (Outcome::Refused { v, .. }, _) => crate::respond::refusal_body(state, &v),
        (Outcome::Generated { v, rx, .. }, Lane::Http(_, start)) if streamed => {
            let finish = crate::responses_stream::Finish {
                id: new_id("resp_"),
                request: request.clone(),
                previous_response_id: previous_id,
                store,
                save: saver(state, caller, t),
            };
            return Ok(Answered::Stream(crate::responses_stream::stream(
                state.clone(),
                v,
                rx,
                start,
                finish,
            )));
        }
        (Outcome::Generated { v, rx, .. }, Lane::Http(_, start)) => {
            crate::respond::collect_recorded(state, &v, rx, start).await?
        }
        (Outcome::Generated { v, rx, .. }, Lane::Batch) => {
            let pricing = state.tiers[v.tier].pricing.batch();
            crate::respond::collect(state, &v, rx, Instant::now(), &pricing).await?
        }
    };
    let crate::respond::Body::Chat(chat) = answer else {
        return Err(ApiError::internal("a chat request answered as a text completion"));
    };
    let response = render(new_id("resp_"), &f, &chat, previous_id, store)?;
    if store {
        save(state, caller, &response, t, &chat).await?;
    }
    Ok(Answered::Done(Box::new((response, chat))))
}

/// Stores a streamed response once it has finished.
fn saver(
    state: &Arc<AppState>,
    caller: &Caller,
    t: Translated,
) -> Box<dyn FnOnce(api::Response, api::ChatCompletion) -> tokio::task::JoinHandle<()> + Send + Sync> {
    let (state, caller) = (state.clone(), caller.clone());
    Box::new(move |response, chat| {
        tokio::spawn(async move {
            if let Err(e) = save(&state, &caller, &response, t, &chat).await {
                tracing::error!(error = %e.message, "storing a streamed response");
            }
        })
    })
}

/// The response object before any output: what `response.created` carries.
pub(crate) fn skeleton(id: &str, request: &Value, model: &str, previous: Option<String>, store: bool) -> Value {
    let f = Fields::new(request);
    let chat = chat_answer(model, String::new(), Vec::new(), None, api::Usage::default(), "default");
    let mut r = render(id.to_string(), &f, &chat, previous, store)
        .map(|r| serde_json::to_value(r).unwrap_or_default())
        .unwrap_or_default();
    r["output"] = json!([]);
    r["usage"] = Value::Null;
    r
}

/// A streamed answer as the chat completion `render` reads.
pub(crate) fn chat_answer(
    model: &str,
    text: String,
    tool_calls: Vec<api::ToolCall>,
    finish: Option<String>,
    usage: api::Usage,
    service_tier: &str,
) -> api::ChatCompletion {
    let mut message = api::AssistantMessage::text(text);
    if !tool_calls.is_empty() {
        message.tool_calls = Some(tool_calls);
    }
    api::ChatCompletion {
        id: String::new(),
        object: api::ChatCompletion::OBJECT.into(),
        created: unix_now(),
        model: model.to_string(),
        choices: vec![api::ChatChoice {
            index: 0,
            message,
            logprobs: None,
            finish_reason: finish,
        }],
        usage,
        system_fingerprint: String::new(),
        service_tier: service_tier.into(),
    }
}

/// The finished streamed response.
pub(crate) fn render_value(
    f: &crate::responses_stream::Finish,
    chat: &api::ChatCompletion,
) -> Result<api::Response, ApiError> {
    render(
        f.id.clone(),
        &Fields::new(&f.request),
        chat,
        f.previous_response_id.clone(),
        f.store,
    )
}

/// The stored response `previous_response_id` names, if the caller may see it.
async fn previous(
    state: &Arc<AppState>,
    caller: &Caller,
    id: Option<&str>,
) -> Result<Option<ResponseRecord>, ApiError> {
    let Some(id) = id else { return Ok(None) };
    find(state, caller, id)
        .await
        .map(Some)
        .map_err(|_| no_such_response(id, "previous_response_id"))
}

pub(crate) async fn find(state: &Arc<AppState>, caller: &Caller, id: &str) -> Result<ResponseRecord, ApiError> {
    let key = id.to_string();
    state
        .db(move |s| s.response(&key, unix_now()))
        .await?
        .filter(|r| caller.owns(r.project_id.as_deref()))
        .ok_or_else(|| no_such_response(id, "response_id"))
}

/// The chat answer as a response object.
pub(crate) fn render(
    id: String,
    f: &Fields,
    chat: &api::ChatCompletion,
    previous_response_id: Option<String>,
    store: bool,
) -> Result<api::Response, ApiError> {
    let choice = chat
        .choices
        .first()
        .ok_or_else(|| ApiError::internal("an answer without a choice"))?;
    let (status, incomplete_details) = match choice.finish_reason.as_deref() {
        Some("length") => ("incomplete", Some("max_output_tokens")),
        Some("content_filter") => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    };
    let echo = |k: &str| f.get(k).filter(|x| !x.is_null()).cloned();
    Ok(api::Response {
        id,
        object: "response".into(),
        created_at: chat.created,
        status: status.into(),
        error: None,
        incomplete_details: incomplete_details.map(|r| api::IncompleteDetails { reason: r.into() }),
        instructions: f.string("instructions")?.map(String::from),
        max_output_tokens: f.get("max_output_tokens").and_then(Value::as_u64),
        model: chat.model.clone(),
        output: output_items(&choice.message, status),
        parallel_tool_calls: f.bool("parallel_tool_calls")?.unwrap_or(true),
        previous_response_id,
        temperature: f.get("temperature").and_then(Value::as_f64).or(Some(1.0)),
        top_p: f.get("top_p").and_then(Value::as_f64).or(Some(1.0)),
        text: echo("text").unwrap_or_else(|| json!({"format": {"type": "text"}})),
        tool_choice: echo("tool_choice").unwrap_or_else(|| json!("auto")),
        tools: echo("tools").and_then(|t| t.as_array().cloned()).unwrap_or_default(),
        truncation: f.string("truncation")?.unwrap_or("disabled").into(),
        usage: Some(api::ResponseUsage::from(&chat.usage)),
        user: f.string("user")?.map(String::from),
        metadata: echo("metadata").unwrap_or_else(|| json!({})),
        store,
        background: false,
        service_tier: chat.service_tier.clone(),
    })
}

/// An assistant message as output items: its text (or refusal) as a message, each tool call as a
/// function call.
fn output_items(m: &api::AssistantMessage, status: &str) -> Vec<api::OutputItem> {
    let mut out = Vec::new();
    let content = match (&m.refusal, &m.content) {
        (Some(r), _) => vec![api::OutputContent::Refusal { refusal: r.clone() }],
        (None, Some(t)) if !t.is_empty() => vec![api::OutputContent::OutputText {
            text: t.clone(),
            annotations: Vec::new(),
            logprobs: Vec::new(),
        }],
        _ => Vec::new(),
    };
    if !content.is_empty() {
        out.push(api::OutputItem::Message {
            id: new_id("msg_"),
            role: "assistant".into(),
            status: status.into(),
            content,
        });
    }
    for call in m.tool_calls.iter().flatten() {
        out.push(api::OutputItem::FunctionCall {
            id: new_id("fc_"),
            call_id: call.id.clone(),
            name: call.function.name.clone(),
            arguments: call.function.arguments.clone(),
            status: "completed".into(),
        });
    }
    out
}

/// Stores the response with the conversation a continuation starts from.
async fn save(
    state: &Arc<AppState>,
    caller: &Caller,
    response: &api::Response,
    t: Translated,
    chat: &api::ChatCompletion,
) -> Result<(), ApiError> {
    let rec = record(caller, response, t, Some(chat));
    state.db(move |s| s.insert_response(&rec)).await
}

/// What the store keeps of a response: its object, the conversation through its answer (when
/// there is one yet), and its input items.
pub(crate) fn record(
    caller: &Caller,
    response: &api::Response,
    t: Translated,
    chat: Option<&api::ChatCompletion>,
) -> ResponseRecord {
    let mut messages = t.history;
    messages.extend(t.turn);
    if let Some(c) = chat.and_then(|c| c.choices.first()) {
        messages.push(json!({"role": "assistant", "content": c.message.content,
                             "tool_calls": c.message.tool_calls}));
    }
    ResponseRecord {
        id: response.id.clone(),
        project_id: caller.project_id(),
        created_at: response.created_at,
        expires_at: response.created_at + RETENTION_SECS,
        previous_response_id: response.previous_response_id.clone(),
        object: json_text(response),
        messages: json_text(&messages),
        input_items: json_text(&t.input_items),
        pending: matches!(response.status.as_str(), "queued" | "in_progress"),
    }
}

/// JSON text of anything serialisable (the store keeps objects as text).
pub(crate) fn json_text<T: serde::Serialize>(x: &T) -> String {
    serde_json::to_string(x).unwrap_or_default()
}

/// Deletes expired stored responses at start and then hourly (expired ones are already invisible).
pub fn spawn_sweeper(state: Arc<AppState>) {
    tokio::spawn(async move {
        match crate::responses_background::fail_orphans(&state).await {
            Ok(n) if n > 0 => tracing::warn!(failed = n, "background responses left unfinished by a previous process"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e.message, "failing orphaned background responses"),
        }
        loop {
            match state.db(|s| s.sweep_responses(unix_now())).await {
                Ok(n) if n > 0 => tracing::info!(deleted = n, "expired stored responses"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e.message, "sweeping stored responses"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
    });
}

/// `GET /v1/responses/{id}`
pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let r = find(&state, &caller, &id).await?;
    serde_json::from_str(&r.object)
        .map(Json)
        .map_err(|e| ApiError::internal(format!("stored response: {e}")))
}

/// `DELETE /v1/responses/{id}`
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<api::Deleted>, ApiError> {
    let r = find(&state, &caller, &id).await?;
    state.db(move |s| s.delete_response(&r.id)).await?;
    Ok(Json(api::Deleted {
        id,
        object: "response".into(),
        deleted: true,
        revoked_at: None,
    }))
}

/// `GET /v1/responses/{id}/input_items` (newest first, as OpenAI lists them; `order=asc` for
/// oldest first).
pub async fn input_items(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Json<api::Page<Value>>, ApiError> {
    let r = find(&state, &caller, &id).await?;
    let mut items: Vec<Value> =
        serde_json::from_str(&r.input_items).map_err(|e| ApiError::internal(format!("stored response: {e}")))?;
    if q.get("order").map(String::as_str) != Some("asc") {
        items.reverse();
    }
    let limit = crate::files::limit_param(&q, 100, 20)?;
    if let Some(after) = q.get("after") {
        let at = items.iter().position(|x| x["id"].as_str() == Some(after.as_str()));
        items = at.map(|i| items.split_off(i + 1)).unwrap_or_default();
    }
    let has_more = items.len() > limit;
    items.truncate(limit);
    Ok(Json(api::Page::new(items, has_more, |x: &Value| {
        x["id"].as_str().unwrap_or("")
    })))
}
