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
use serde_json::{json, Map, Value};
use tandem_api as api;
use tandem_store::ResponseRecord;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::params::{wrong_type, Fields};
use crate::pipeline::{self, Outcome};
use crate::request::Api;
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

/// Hosted tools OpenAI runs on its side, which this server cannot.
const HOSTED_TOOLS: &[&str] = &[
    "web_search",
    "web_search_preview",
    "file_search",
    "computer_use_preview",
    "computer_use",
    "code_interpreter",
    "image_generation",
    "mcp",
    "local_shell",
    "shell",
    "custom",
];

fn unsupported(param: &str, what: &str) -> ApiError {
    ApiError::invalid(
        param,
        "unsupported_parameter",
        format!("Unsupported parameter: '{param}': {what} is not supported by this server yet."),
    )
}

fn no_such_response(id: &str, param: &str) -> ApiError {
    ApiError {
        param: Some(param.into()),
        ..ApiError::not_found(format!("No response found with id '{id}'."))
    }
}

/// A request translated for the pipeline: the chat body, and what the response object echoes.
#[derive(Clone)]
pub(crate) struct Translated {
    pub(crate) chat: Value,
    /// The chat messages of this turn (after the stored conversation), without the instructions.
    turn: Vec<Value>,
    /// The conversation before this turn (from `previous_response_id`).
    history: Vec<Value>,
    input_items: Vec<Value>,
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

/// The chat request this Responses request asks for.
fn translate(f: &Fields, previous: Option<&ResponseRecord>) -> Result<Translated, ApiError> {
    let history: Vec<Value> = match previous {
        Some(p) => {
            serde_json::from_str(&p.messages).map_err(|e| ApiError::internal(format!("stored response: {e}")))?
        }
        None => Vec::new(),
    };
    let (turn, input_items) = input(f.get("input"))?;
    let mut messages = Vec::new();
    if let Some(i) = f.string("instructions")? {
        messages.push(json!({"role": "system", "content": i}));
    }
    messages.extend(history.iter().cloned());
    messages.extend(turn.iter().cloned());
    let mut chat = Map::new();
    chat.insert("model".into(), f.get("model").cloned().unwrap_or(Value::Null));
    chat.insert("messages".into(), Value::Array(messages));
    if let Some(t) = tools(f.get("tools"))? {
        chat.insert("tools".into(), t);
    }
    if let Some(c) = f.get("tool_choice") {
        chat.insert("tool_choice".into(), tool_choice(c)?);
    }
    if let Some(rf) = text_format(f.get("text"))? {
        chat.insert("response_format".into(), rf);
    }
    for (from, to) in [
        ("max_output_tokens", "max_completion_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("parallel_tool_calls", "parallel_tool_calls"),
        ("user", "user"),
        ("seed", "seed"),
        ("service_tier", "service_tier"),
        ("top_k", "top_k"),
        ("min_p", "min_p"),
        ("repetition_penalty", "repetition_penalty"),
    ] {
        if let Some(x) = f.get(from).filter(|x| !x.is_null()) {
            chat.insert(to.into(), x.clone());
        }
    }
    Ok(Translated {
        chat: Value::Object(chat),
        turn,
        history,
        input_items,
    })
}

/// `input`: a string (one user message) or items. Returns the chat messages and the items as
/// stored (each with an id).
fn input(v: Option<&Value>) -> Result<(Vec<Value>, Vec<Value>), ApiError> {
    let items = match v {
        None | Some(Value::Null) => return Err(ApiError::missing("input")),
        Some(Value::String(s)) => vec![json!({"type": "message", "role": "user", "content": s})],
        Some(Value::Array(a)) => a.clone(),
        Some(v) => return Err(wrong_type("input", "a string or an array of items", v)),
    };
    let mut messages: Vec<Value> = Vec::new();
    let mut stored = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("input[{i}]");
        let Value::Object(o) = item else {
            return Err(wrong_type(&p, "an object", item));
        };
        let kind = o.get("type").and_then(Value::as_str).unwrap_or("message");
        match kind {
            "message" => messages.push(message(&p, o)?),
            "function_call" => function_call(&p, o, &mut messages)?,
            "function_call_output" => messages.push(function_call_output(&p, o)?),
            // Reasoning items carry nothing these models read.
            "reasoning" => continue,
            other => {
                return Err(ApiError::invalid(
                    format!("{p}.type"),
                    "invalid_value",
                    format!("Input items of type '{other}' are not supported by this server."),
                ))
            }
        }
        let mut kept = o.clone();
        if !kept.contains_key("id") {
            let prefix = match kind {
                "message" => "msg_",
                "function_call" => "fc_",
                _ => "fco_",
            };
            kept.insert("id".into(), json!(new_id(prefix)));
        }
        kept.insert("type".into(), json!(kind));
        stored.push(Value::Object(kept));
    }
    Ok((messages, stored))
}

/// A message item: its text parts joined (`input_text`, or `output_text` in replayed history).
fn message(p: &str, o: &Map<String, Value>) -> Result<Value, ApiError> {
    let role = o.get("role").and_then(Value::as_str).unwrap_or("");
    if !["user", "assistant", "system", "developer"].contains(&role) {
        return Err(ApiError::invalid(
            format!("{p}.role"),
            "invalid_value",
            format!("Invalid value for '{p}.role': '{role}'. Supported values are: 'user', 'assistant', 'system' and 'developer'."),
        ));
    }
    let text = match o.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            return Ok(json!({"role": role, "content": parts_content(&format!("{p}.content"), parts)?}))
        }
        Some(v) => return Err(wrong_type(&format!("{p}.content"), "a string or an array of parts", v)),
        None => {
            return Err(ApiError::invalid(
                format!("{p}.content"),
                "missing_required_parameter",
                format!("Missing required parameter: '{p}.content'."),
            ))
        }
    };
    Ok(json!({"role": role, "content": text}))
}

/// A message's parts as chat content: the text joined when there is only text, else chat parts
/// in order — each `input_image` (`image_url` or `file_id`, `detail`) as an `image_url` part the
/// pipeline's seeing stage reads.
fn parts_content(p: &str, parts: &[Value]) -> Result<Value, ApiError> {
    if !parts
        .iter()
        .any(|x| x.get("type").and_then(Value::as_str) == Some("input_image"))
    {
        return Ok(Value::String(parts_text(p, parts)?));
    }
    let mut out = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let pp = format!("{p}[{j}]");
        if part.get("type").and_then(Value::as_str) != Some("input_image") {
            if let Some(t) = part_text(&pp, part)? {
                out.push(json!({"type": "text", "text": t}));
            }
            continue;
        }
        let mut img = Map::new();
        match (part.get("image_url"), part.get("file_id")) {
            (Some(Value::String(u)), _) => img.insert("url".into(), json!(u)),
            (_, Some(Value::String(id))) => img.insert("file_id".into(), json!(id)),
            _ => return Err(ApiError::missing(&format!("{pp}.image_url"))),
        };
        if let Some(d) = part.get("detail") {
            img.insert("detail".into(), d.clone());
        }
        // `_param`: the seeing stage names this path, not the chat message's, in its errors.
        out.push(json!({"type": "image_url", "image_url": img, "_param": pp}));
    }
    Ok(Value::Array(out))
}

fn parts_text(p: &str, parts: &[Value]) -> Result<String, ApiError> {
    let mut text = String::new();
    for (j, part) in parts.iter().enumerate() {
        if let Some(t) = part_text(&format!("{p}[{j}]"), part)? {
            text.push_str(&t);
        }
    }
    Ok(text)
}

/// A text part's text (`None` for a refusal); any other part is an error naming it.
fn part_text(pp: &str, part: &Value) -> Result<Option<String>, ApiError> {
    match part.get("type").and_then(Value::as_str) {
        Some("input_text") | Some("output_text") => match part.get("text") {
            Some(Value::String(t)) => Ok(Some(t.clone())),
            v => Err(wrong_type(&format!("{pp}.text"), "a string", v.unwrap_or(&Value::Null))),
        },
        Some("refusal") => Ok(None),
        Some("input_image") => Err(unsupported(pp, "image input here")),
        Some("input_file") => Err(unsupported(pp, "file input")),
        Some("input_audio") => Err(unsupported(pp, "audio input")),
        other => Err(ApiError::invalid(
            format!("{pp}.type"),
            "invalid_value",
            format!("Invalid content part type {other:?}."),
        )),
    }
}

fn string_field<'a>(p: &str, o: &'a Map<String, Value>, k: &str) -> Result<&'a str, ApiError> {
    o.get(k).and_then(Value::as_str).ok_or_else(|| {
        ApiError::invalid(
            format!("{p}.{k}"),
            "missing_required_parameter",
            format!("Missing required parameter: '{p}.{k}' (a string)."),
        )
    })
}

/// A replayed function call: a tool call of an assistant message (consecutive calls share one).
fn function_call(p: &str, o: &Map<String, Value>, messages: &mut Vec<Value>) -> Result<(), ApiError> {
    let call = json!({"id": string_field(p, o, "call_id")?, "type": "function",
                      "function": {"name": string_field(p, o, "name")?, "arguments": string_field(p, o, "arguments")?}});
    match messages.last_mut() {
        Some(m) if m["role"] == "assistant" && m["tool_calls"].is_array() => {
            m["tool_calls"].as_array_mut().expect("checked").push(call);
        }
        _ => messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
    }
    Ok(())
}

/// A function's result: a `tool` message answering its call.
fn function_call_output(p: &str, o: &Map<String, Value>) -> Result<Value, ApiError> {
    let output = match o.get("output") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts_text(&format!("{p}.output"), parts)?,
        v => {
            return Err(wrong_type(
                &format!("{p}.output"),
                "a string",
                v.unwrap_or(&Value::Null),
            ))
        }
    };
    Ok(json!({"role": "tool", "tool_call_id": string_field(p, o, "call_id")?, "content": output}))
}

/// Function tools (flat, as the Responses API writes them) as chat tools; a hosted tool is a 400.
fn tools(v: Option<&Value>) -> Result<Option<Value>, ApiError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let Value::Array(a) = v else {
        return Err(wrong_type("tools", "an array", v));
    };
    let mut out = Vec::new();
    for (i, t) in a.iter().enumerate() {
        match t.get("type").and_then(Value::as_str) {
            Some("function") => {
                let mut function = Map::new();
                for k in ["name", "description", "parameters", "strict"] {
                    if let Some(x) = t.get(k).filter(|x| !x.is_null()) {
                        function.insert(k.into(), x.clone());
                    }
                }
                out.push(json!({"type": "function", "function": function}));
            }
            Some(h) if HOSTED_TOOLS.iter().any(|x| h.starts_with(x)) => {
                return Err(unsupported(
                    &format!("tools[{i}].type"),
                    &format!("the hosted tool '{h}'"),
                ))
            }
            other => {
                return Err(ApiError::invalid(
                    format!("tools[{i}].type"),
                    "invalid_value",
                    format!("Invalid tool type {other:?}: only 'function' tools run here."),
                ))
            }
        }
    }
    Ok(Some(Value::Array(out)))
}

/// `tool_choice`: the modes as they are, `{type: function, name}` as chat's named choice.
fn tool_choice(v: &Value) -> Result<Value, ApiError> {
    match v {
        Value::String(_) => Ok(v.clone()),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = string_field("tool_choice", o, "name")?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(ApiError::invalid(
            "tool_choice",
            "invalid_value",
            "Invalid 'tool_choice': 'none', 'auto', 'required' or {\"type\": \"function\", \"name\": …}.",
        )),
    }
}

/// `text.format` as chat's `response_format` (`verbosity` is accepted and changes nothing).
fn text_format(v: Option<&Value>) -> Result<Option<Value>, ApiError> {
    let Some(format) = v.and_then(|t| t.get("format")).filter(|x| !x.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            for k in ["name", "schema", "strict", "description"] {
                if let Some(x) = format.get(k).filter(|x| !x.is_null()) {
                    schema.insert(k.into(), x.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        other => Err(ApiError::invalid(
            "text.format.type",
            "invalid_value",
            format!("Invalid 'text.format.type' {other:?}: 'text', 'json_object' or 'json_schema'."),
        )),
    }
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
