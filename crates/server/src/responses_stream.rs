//! A streamed Responses API answer: the engine's events as OpenAI's response events, each with its
//! `sequence_number` — `response.created`, `response.in_progress`, then per output item
//! `output_item.added` → (`content_part.added` → `output_text.delta`… → `output_text.done` →
//! `content_part.done`) or (`function_call_arguments.delta` → `.done`) → `output_item.done`, and
//! last `response.completed` (or `.incomplete`, `.failed`). Text that may be tool calls is held back
//! (`tool_calls::CallReader`) and sent as function calls when the answer ends. Usage is recorded by the same guard as chat.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tandem_api as api;
use tandem_engine::Event;
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tokio_stream::wrappers::ReceiverStream;

use crate::request::ValidRequest;
use crate::respond::UsageGuard;
use crate::state::{new_id, AppState};
use crate::tool_calls::CallReader;

/// What the stream needs to render and store the response at its end.
pub struct Finish {
    pub id: String,
    /// The request (a JSON object) the response echoes.
    pub request: Value,
    pub previous_response_id: Option<String>,
    pub store: bool,
    /// Stores the finished response (with the conversation so far), when `store`.
    pub save: Box<dyn FnOnce(api::Response, api::ChatCompletion) -> tokio::task::JoinHandle<()> + Send + Sync>,
}

/// Numbered events into the SSE channel.
struct Events {
    tx: mpsc::Sender<Result<SseEvent, Infallible>>,
    seq: u64,
}

impl Events {
    async fn send(&mut self, kind: &str, mut body: Value) -> bool {
        body["type"] = json!(kind);
        body["sequence_number"] = json!(self.seq);
        self.seq += 1;
        let e = SseEvent::default().event(kind).data(body.to_string());
        self.tx.send(Ok(e)).await.is_ok()
    }
}

/// The chat answer so far.
#[derive(Default)]
struct Answer {
    text: String,
    /// With tools on, the reader of calls (text that may be calls is held back, sent as function
    /// calls at the end).
    calls: Option<CallReader>,
    /// The message item, once its first text went out.
    message_id: Option<String>,
    finish: Option<&'static str>,
}

/// Streams `rx` as response events.
pub fn stream(
    state: Arc<AppState>,
    v: ValidRequest,
    rx: UnboundedReceiver<Event>,
    start: Instant,
    f: Finish,
) -> Response {
    let (tx, out) = mpsc::channel(64);
    tokio::spawn(run(state, v, rx, start, f, Events { tx, seq: 0 }));
    Sse::new(ReceiverStream::new(out))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)).text("keep-alive"))
        .into_response()
}

/// The response object as it stands (`in_progress`, no output yet).
fn snapshot(f: &Finish, model: &str) -> Value {
    let mut r = crate::responses::skeleton(&f.id, &f.request, model, f.previous_response_id.clone(), f.store);
    r["status"] = json!("in_progress");
    r
}

async fn run(
    state: Arc<AppState>,
    v: ValidRequest,
    mut rx: UnboundedReceiver<Event>,
    start: Instant,
    f: Finish,
    mut ev: Events,
) {
    let model = state.tiers[v.tier].id.clone();
    let mut guard = UsageGuard::new(&state, &v, start);
    for kind in ["response.created", "response.in_progress"] {
        if !ev.send(kind, json!({"response": snapshot(&f, &model)})).await {
            return;
        }
    }
    let mut a = Answer {
        calls: v.tools.clone().map(CallReader::new),
        ..Answer::default()
    };
    while a.finish.is_none() {
        let e = tokio::select! {
            e = rx.recv() => e,
            _ = ev.tx.closed() => return, // client gone
        };
        let ok = match e {
            Some(Event::Prefilled {
                prompt_tokens,
                cached_tokens,
            }) => {
                (guard.prompt, guard.cached) = (prompt_tokens, cached_tokens);
                true
            }
            Some(Event::Token { text, .. }) => {
                guard.completion += 1;
                token(&mut ev, &mut a, text).await
            }
            Some(Event::Finished {
                reason,
                completion_tokens,
                ..
            }) => {
                guard.completion = completion_tokens;
                a.finish = Some(reason.as_str());
                true
            }
            Some(Event::TimedOut) | Some(Event::Failed(_)) | None => {
                guard.status = 500;
                failed(&mut ev, &f, &model).await;
                return;
            }
        };
        if !ok {
            return;
        }
    }
    guard.status = 200;
    let usage = crate::respond::usage(
        &crate::respond::price(&state, &v),
        guard.prompt,
        guard.cached,
        guard.completion,
    );
    let tier = if v.flex { "flex" } else { "default" };
    finish(&mut ev, a, usage, (&model, tier), f).await;
}

/// One generated piece of text: held when it is (part of) a tool call, else a text delta.
async fn token(ev: &mut Events, a: &mut Answer, mut text: String) -> bool {
    if let Some(r) = a.calls.as_mut() {
        text = r.push(&text);
    }
    if text.is_empty() {
        return true;
    }
    delta(ev, a, text).await
}

async fn delta(ev: &mut Events, a: &mut Answer, text: String) -> bool {
    let id = match &a.message_id {
        Some(id) => id.clone(),
        None => {
            let id = new_id("msg_");
            a.message_id = Some(id.clone());
            let item =
                json!({"type": "message", "id": id, "role": "assistant", "status": "in_progress", "content": []});
            let part = json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []});
            if !ev
                .send("response.output_item.added", json!({"output_index": 0, "item": item}))
                .await
                || !ev
                    .send(
                        "response.content_part.added",
                        json!({"item_id": id, "output_index": 0, "content_index": 0, "part": part}),
                    )
                    .await
            {
                return false;
            }
            id
        }
    };
    a.text.push_str(&text);
    let d = json!({"item_id": id, "output_index": 0, "content_index": 0, "delta": text, "logprobs": []});
    ev.send("response.output_text.delta", d).await
}

/// Closes the message, sends the held tool calls, and the final response.
/// `(model, service tier)` name what answered.
async fn finish(ev: &mut Events, mut a: Answer, usage: api::Usage, (model, tier): (&str, &str), f: Finish) {
    let (held, calls) = match a.calls.take() {
        Some(mut r) => {
            let (held, calls) = r.finish();
            a.finish = a.finish.map(|reason| r.finish_reason(reason, &calls));
            (held, calls)
        }
        None => Default::default(),
    };
    // Not calls after all (plain JSON, or cut short): the held text goes out as text.
    if !held.is_empty() && !delta(ev, &mut a, held).await {
        return;
    }
    let mut ids = Vec::new();
    if let Some(id) = a.message_id.clone() {
        let part = json!({"type": "output_text", "text": a.text, "annotations": [], "logprobs": []});
        let at = json!({"item_id": id, "output_index": 0, "content_index": 0});
        let status = match a.finish {
            Some("length") | Some("content_filter") => "incomplete",
            _ => "completed",
        };
        let item = json!({"type": "message", "id": id, "role": "assistant", "status": status, "content": [part]});
        let done = [
            (
                "response.output_text.done",
                merge(&at, json!({"text": a.text, "logprobs": []})),
            ),
            ("response.content_part.done", merge(&at, json!({"part": part}))),
            ("response.output_item.done", json!({"output_index": 0, "item": item})),
        ];
        for (kind, body) in done {
            if !ev.send(kind, body).await {
                return;
            }
        }
        ids.push(id);
    }
    let tool_calls = crate::respond::tool_calls(&calls);
    for call in &tool_calls {
        let (index, id) = (ids.len(), new_id("fc_"));
        if !function_call(ev, index, &id, call).await {
            return;
        }
        ids.push(id);
    }
    let chat = crate::responses::chat_answer(model, a.text, tool_calls, a.finish.map(String::from), usage, tier);
    let Ok(mut response) = crate::responses::render_value(&f, &chat) else {
        return failed(ev, &f, model).await;
    };
    for (item, id) in response.output.iter_mut().zip(&ids) {
        match item {
            api::OutputItem::Message { id: i, .. } | api::OutputItem::FunctionCall { id: i, .. } => *i = id.clone(),
        }
    }
    let kind = if response.status == "completed" {
        "response.completed"
    } else {
        "response.incomplete"
    };
    let body = json!({"response": serde_json::to_value(&response).unwrap_or_default()});
    if f.store {
        let _ = (f.save)(response, chat).await;
    }
    ev.send(kind, body).await;
}

async fn function_call(ev: &mut Events, index: usize, id: &str, call: &api::ToolCall) -> bool {
    let item = |status: &str, args: &str| {
        json!({"type": "function_call", "id": id, "call_id": call.id, "name": call.function.name,
               "arguments": args, "status": status})
    };
    let args = &call.function.arguments;
    let at = json!({"item_id": id, "output_index": index});
    let events = [
        (
            "response.output_item.added",
            json!({"output_index": index, "item": item("in_progress", "")}),
        ),
        (
            "response.function_call_arguments.delta",
            merge(&at, json!({"delta": args})),
        ),
        (
            "response.function_call_arguments.done",
            merge(&at, json!({"arguments": args, "name": call.function.name})),
        ),
        (
            "response.output_item.done",
            json!({"output_index": index, "item": item("completed", args)}),
        ),
    ];
    for (kind, body) in events {
        if !ev.send(kind, body).await {
            return false;
        }
    }
    true
}

async fn failed(ev: &mut Events, f: &Finish, model: &str) {
    let mut r = snapshot(f, model);
    r["status"] = json!("failed");
    r["error"] = json!({"code": "server_error", "message": "The engine could not finish the response."});
    ev.send("response.failed", json!({"response": r})).await;
}

fn merge(a: &Value, b: Value) -> Value {
    let mut out = a.clone();
    if let (Value::Object(o), Value::Object(extra)) = (&mut out, b) {
        o.extend(extra);
    }
    out
}
