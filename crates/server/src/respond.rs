//! Turning engine events into responses: one JSON object, or a server-sent event stream of chunks.
//! Usage is counted here, once per response, whichever way it goes out.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tandem_engine::{Event, Logprobs, Priority};
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tokio_stream::wrappers::ReceiverStream;

use crate::error::ApiError;
use crate::request::{Api, ValidRequest};
use crate::state::{unix_now, AppState, Pricing};

/// What identifies one response across its chunks.
struct Head {
    id: String,
    created: u64,
    model: String,
    fingerprint: String,
    api: Api,
}

impl Head {
    fn new(state: &AppState, v: &ValidRequest) -> Self {
        let t = &state.tiers[v.tier];
        Self {
            id: v.id.clone(),
            created: unix_now(),
            model: t.id.clone(),
            fingerprint: t.fingerprint.clone(),
            api: v.api,
        }
    }

    fn object(&self, chunk: bool) -> &'static str {
        match (self.api, chunk) {
            (Api::Chat, false) => "chat.completion",
            (Api::Chat, true) => "chat.completion.chunk",
            (Api::Completion, _) => "text_completion",
        }
    }
}

/// The one place usage and cost are counted, for every response (stream or not).
fn usage(pricing: &Pricing, prompt: usize, cached: usize, completion: usize) -> Value {
    let (input, cached_input, output, total) = pricing.cost(prompt, cached, completion);
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        "cost": {"input": input, "cached_input": cached_input, "output": output, "total": total},
    })
}

fn chat_logprob(l: &Logprobs) -> Value {
    let e = |t: &tandem_engine::TokenLogprob| json!({"token": t.text, "logprob": t.logprob, "bytes": t.bytes});
    let mut c = e(&l.chosen);
    c["top_logprobs"] = Value::Array(l.top.iter().map(e).collect());
    c
}

/// The legacy completions format: parallel arrays, `text_offset` counted in characters.
fn completion_logprobs(lps: &[Logprobs], start_offset: usize, texts: &[String]) -> Value {
    let mut offset = start_offset;
    let mut offsets = Vec::with_capacity(lps.len());
    for t in texts {
        offsets.push(offset);
        offset += t.chars().count();
    }
    json!({
        "tokens": lps.iter().map(|l| l.chosen.text.clone()).collect::<Vec<_>>(),
        "token_logprobs": lps.iter().map(|l| l.chosen.logprob).collect::<Vec<_>>(),
        "top_logprobs": lps.iter().map(|l| l.top.iter().map(|t| (t.text.clone(), json!(t.logprob))).collect::<serde_json::Map<_, _>>()).collect::<Vec<_>>(),
        "text_offset": offsets,
    })
}

#[derive(Default, Clone)]
struct Choice {
    text: String,
    finish: Option<&'static str>,
    logprobs: Vec<Logprobs>,
    /// Per logprob entry: the token's own text (for text offsets).
    token_texts: Vec<String>,
    tokens: usize,
}

/// Observes latency metrics as token events pass.
struct Latency<'a> {
    state: &'a AppState,
    start: Instant,
    last: Option<Instant>,
}

impl Latency<'_> {
    fn token(&mut self) {
        let now = Instant::now();
        match self.last {
            None => self.state.metrics.ttft.observe((now - self.start).as_secs_f64()),
            Some(l) => self.state.metrics.inter_token.observe((now - l).as_secs_f64()),
        }
        self.last = Some(now);
    }
}

/// Waits for every choice to finish and answers with one JSON object.
pub async fn complete(state: Arc<AppState>, v: ValidRequest, rx: UnboundedReceiver<Event>, start: Instant) -> Response {
    let pricing = state.tiers[v.tier].pricing;
    let mut guard = UsageGuard::new(&state, &v, "", start);
    match collect(&state, &v, rx, start, &pricing).await {
        Ok(body) => {
            let n = |x: &Value| x.as_u64().unwrap_or(0) as usize;
            guard.id = body["id"].as_str().unwrap_or_default().to_string();
            guard.prompt = n(&body["usage"]["prompt_tokens"]);
            guard.cached = n(&body["usage"]["prompt_tokens_details"]["cached_tokens"]);
            guard.completion = n(&body["usage"]["completion_tokens"]);
            guard.status = 200;
            let total = body["usage"]["cost"]["total"].as_f64().unwrap_or(0.0);
            let mut resp = axum::Json(body).into_response();
            // Full precision (shortest round-trip decimal), never exponent notation.
            if let Ok(h) = axum::http::HeaderValue::from_str(&total.to_string()) {
                resp.headers_mut().insert("x-tandem-cost", h);
            }
            resp
        }
        Err(e) => {
            guard.status = e.status.as_u16();
            e.into_response()
        }
    }
}

/// Records the usage of a cascade's first attempt that was not kept (the small tier answered, the
/// router escalated): it ran and is paid for, under the request's id.
pub fn record_attempt(state: &Arc<AppState>, v: &ValidRequest, start: Instant, cached: usize, completion: usize) {
    let mut g = UsageGuard::new(state, v, &v.id, start);
    // The rate-limit charge is settled once, by the response that is sent.
    g.account.tickets.clear();
    g.cached = cached;
    g.completion = completion;
    g.status = 200;
}

/// Records one interactive response's usage when dropped — whichever way the response ends:
/// finished (200), failed (its status) or abandoned by the client (499, with the tokens generated
/// so far). Settles the rate-limit charge to the real token count. Batch lines record theirs with
/// their result instead.
struct UsageGuard {
    state: Arc<AppState>,
    tier: usize,
    account: crate::request::Account,
    id: String,
    start: Instant,
    prompt: usize,
    cached: usize,
    completion: usize,
    status: u16,
}

impl UsageGuard {
    fn new(state: &Arc<AppState>, v: &ValidRequest, id: &str, start: Instant) -> Self {
        Self {
            state: state.clone(),
            tier: v.tier,
            account: v.account.clone(),
            id: id.to_string(),
            start,
            prompt: v.gen.prompt.len(),
            cached: 0,
            completion: 0,
            status: 499,
        }
    }
}

impl Drop for UsageGuard {
    fn drop(&mut self) {
        let t = &self.state.tiers[self.tier];
        // A request that never reached the engine's prefill consumed nothing.
        let prompt = if self.status >= 500 && self.completion == 0 {
            0
        } else {
            self.prompt
        };
        let (.., cost) = t.pricing.cost(prompt, self.cached, self.completion);
        self.account
            .settle(&self.state.limiter, (prompt + self.completion) as u64);
        let rec = tandem_store::UsageRecord {
            created_at: unix_now(),
            request_id: std::mem::take(&mut self.id),
            batch_id: None,
            line: None,
            model: t.id.clone(),
            tier: t.name.clone(),
            prompt_tokens: prompt as u64,
            cached_tokens: self.cached.min(prompt) as u64,
            completion_tokens: self.completion as u64,
            cost,
            key_id: self.account.key_id.clone(),
            project_id: self.account.project_id.clone(),
            latency_ms: self.start.elapsed().as_millis() as u64,
            status: self.status,
        };
        let st = self.state.clone();
        // In the background: the answer does not wait for the disk; a failed write is logged.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = st.db(move |s| s.insert_usage(&rec)).await {
                    tracing::error!(error = %e.message, "recording usage");
                }
            });
        }
    }
}

/// Waits for every choice to finish and builds the response object, its usage priced with
/// `pricing` (a batch line's is half the tier's).
pub async fn collect(
    state: &AppState,
    v: &ValidRequest,
    mut rx: UnboundedReceiver<Event>,
    start: Instant,
    pricing: &Pricing,
) -> Result<Value, ApiError> {
    let head = Head::new(state, v);
    let mut choices = vec![Choice::default(); v.gen.n];
    let (mut prompt_tokens, mut cached) = (v.gen.prompt.len(), 0);
    let mut finished = 0;
    let mut lat = Latency {
        state,
        start,
        last: None,
    };
    while finished < v.gen.n {
        match rx.recv().await {
            Some(Event::Prefilled {
                prompt_tokens: p,
                cached_tokens: c,
            }) => (prompt_tokens, cached) = (p, c),
            Some(Event::Token { choice, text, logprobs }) => {
                lat.token();
                let ch = &mut choices[choice];
                if let Some(l) = logprobs {
                    ch.token_texts.push(l.chosen.text.clone());
                    ch.logprobs.push(l);
                }
                ch.text.push_str(&text);
            }
            Some(Event::Finished {
                choice,
                reason,
                completion_tokens,
            }) => {
                choices[choice].finish = Some(reason.as_str());
                choices[choice].tokens = completion_tokens;
                finished += 1;
            }
            Some(Event::TimedOut) => return Err(ApiError::queue_timeout()),
            Some(Event::Failed(msg)) => return Err(ApiError::internal(msg)),
            None => return Err(ApiError::internal("the engine dropped the request")),
        }
    }
    let completion_tokens: usize = choices.iter().map(|c| c.tokens).sum();
    if state.config.log_content {
        for (i, c) in choices.iter().enumerate() {
            tracing::info!(id = %head.id, choice = i, prompt_tokens, completion = %c.text, "completion (--log-content)");
        }
    }
    let logprobs_on = v.gen.top_logprobs.is_some();
    let out: Vec<Value> = choices
        .iter()
        .enumerate()
        .map(|(i, c)| match head.api {
            Api::Chat => {
                let mut message = json!({"role": "assistant", "content": c.text, "refusal": null, "annotations": []});
                let mut finish = c.finish;
                if v.tools {
                    let (content, calls) = crate::tools::split_calls(&c.text);
                    if !calls.is_empty() {
                        message["content"] = if content.is_empty() { Value::Null } else { json!(content) };
                        message["tool_calls"] = crate::tools::calls_json(&calls);
                        if finish == Some("stop") {
                            finish = Some("tool_calls");
                        }
                    }
                }
                json!({
                    "index": i,
                    "message": message,
                    "logprobs": if logprobs_on { json!({"content": c.logprobs.iter().map(chat_logprob).collect::<Vec<_>>(), "refusal": null}) } else { Value::Null },
                    "finish_reason": finish,
                })
            }
            Api::Completion => {
                let echo = v.echo.clone().unwrap_or_default();
                json!({
                    "text": format!("{echo}{}", c.text),
                    "index": i,
                    "logprobs": if logprobs_on { completion_logprobs(&c.logprobs, echo.chars().count(), &c.token_texts) } else { Value::Null },
                    "finish_reason": c.finish,
                })
            }
        })
        .collect();
    let mut body = json!({
        "id": head.id, "object": head.object(false), "created": head.created, "model": head.model,
        "choices": out, "usage": usage(pricing, prompt_tokens, cached, completion_tokens),
        "system_fingerprint": head.fingerprint,
    });
    if head.api == Api::Chat {
        body["service_tier"] = json!(if v.gen.priority == Priority::Batch {
            "batch"
        } else {
            "default"
        });
    }
    Ok(body)
}

/// Streams chunks as server-sent events, ending with `data: [DONE]`. A client that goes away drops
/// the stream; the bridge task notices, drops the engine's receiver, and the engine frees the slot.
pub fn stream(state: Arc<AppState>, v: ValidRequest, mut rx: UnboundedReceiver<Event>, start: Instant) -> Response {
    let (tx, out) = mpsc::channel::<Result<SseEvent, Infallible>>(64);
    tokio::spawn(async move {
        let head = Head::new(&state, &v);
        let chunk = |choices: Value| {
            let mut c = json!({"id": head.id, "object": head.object(true), "created": head.created,
                               "model": head.model, "system_fingerprint": head.fingerprint, "choices": choices});
            if v.include_usage {
                c["usage"] = Value::Null;
            }
            SseEvent::default().data(c.to_string())
        };
        let send = |e: SseEvent| {
            let tx = tx.clone();
            async move { tx.send(Ok(e)).await.is_ok() }
        };
        if head.api == Api::Chat {
            for i in 0..v.gen.n {
                let first = json!([{"index": i, "delta": {"role": "assistant", "content": "", "refusal": null}, "logprobs": null, "finish_reason": null}]);
                if !send(chunk(first)).await {
                    return;
                }
            }
        }
        let (mut prompt_tokens, mut cached, mut completion, mut finished) = (v.gen.prompt.len(), 0, 0, 0);
        // Counts what the client was sent, should it leave before the end.
        let mut guard = UsageGuard::new(&state, &v, &head.id, start);
        let mut partial = vec![0usize; v.gen.n];
        // With tools on, text from `<tool_call>` on is held back and sent as tool_calls deltas.
        let mut held: Vec<Option<String>> = vec![None; v.gen.n];
        let mut echoed = vec![false; v.gen.n];
        let mut offsets = vec![v.echo.as_ref().map(|e| e.chars().count()).unwrap_or(0); v.gen.n];
        let mut lat = Latency {
            state: &state,
            start,
            last: None,
        };
        while finished < v.gen.n {
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = tx.closed() => return, // client gone
            };
            let piece = match ev {
                Some(Event::Prefilled {
                    prompt_tokens: p,
                    cached_tokens: c,
                }) => {
                    (prompt_tokens, cached) = (p, c);
                    (guard.prompt, guard.cached) = (p, c);
                    continue;
                }
                Some(Event::Token { choice, text, logprobs }) => {
                    lat.token();
                    partial[choice] += 1;
                    guard.completion = completion + partial.iter().sum::<usize>();
                    if text.is_empty() && logprobs.is_none() {
                        continue;
                    }
                    match head.api {
                        Api::Chat => {
                            let mut text = text;
                            if v.tools {
                                if let Some(h) = held[choice].as_mut() {
                                    h.push_str(&text);
                                    continue;
                                }
                                if let Some(at) = text.find(crate::tools::OPEN) {
                                    held[choice] = Some(text.split_off(at));
                                    if text.is_empty() {
                                        continue;
                                    }
                                }
                            }
                            let lp = logprobs
                                .as_ref()
                                .map(|l| json!({"content": [chat_logprob(l)], "refusal": null}))
                                .unwrap_or(Value::Null);
                            json!([{"index": choice, "delta": {"content": text}, "logprobs": lp, "finish_reason": null}])
                        }
                        Api::Completion => {
                            let mut t = text.clone();
                            if !echoed[choice] {
                                echoed[choice] = true;
                                t = format!("{}{t}", v.echo.clone().unwrap_or_default());
                            }
                            let lp = logprobs
                                .as_ref()
                                .map(|l| {
                                    completion_logprobs(
                                        std::slice::from_ref(l),
                                        offsets[choice],
                                        std::slice::from_ref(&l.chosen.text),
                                    )
                                })
                                .unwrap_or(Value::Null);
                            offsets[choice] += l_chars(&logprobs);
                            json!([{"text": t, "index": choice, "logprobs": lp, "finish_reason": null}])
                        }
                    }
                }
                Some(Event::Finished {
                    choice,
                    reason,
                    completion_tokens,
                }) => {
                    finished += 1;
                    completion += completion_tokens;
                    partial[choice] = 0;
                    guard.completion = completion + partial.iter().sum::<usize>();
                    match head.api {
                        Api::Chat => {
                            let mut finish = reason.as_str();
                            if let Some(h) = held[choice].take() {
                                let (_, calls) = crate::tools::split_calls(&h);
                                let deltas: Vec<Value> = if calls.is_empty() {
                                    // Not calls after all (cut short): the text goes out as content.
                                    vec![
                                        json!([{"index": choice, "delta": {"content": h}, "logprobs": null, "finish_reason": null}]),
                                    ]
                                } else {
                                    if finish == "stop" {
                                        finish = "tool_calls";
                                    }
                                    // Per call: id, type and name first, then the arguments.
                                    let ids = crate::tools::calls_json(&calls);
                                    calls.iter().enumerate().flat_map(|(k, (name, args))| {
                                        let first = json!({"index": k, "id": ids[k]["id"], "type": "function",
                                                           "function": {"name": name, "arguments": ""}});
                                        let second = json!({"index": k, "function": {"arguments": args}});
                                        [first, second].map(|tc| json!([{"index": choice, "delta": {"tool_calls": [tc]}, "logprobs": null, "finish_reason": null}]))
                                    }).collect()
                                };
                                for d in deltas {
                                    if !send(chunk(d)).await {
                                        return;
                                    }
                                }
                            }
                            json!([{"index": choice, "delta": {}, "logprobs": null, "finish_reason": finish}])
                        }
                        Api::Completion => {
                            json!([{"text": "", "index": choice, "logprobs": null, "finish_reason": reason.as_str()}])
                        }
                    }
                }
                Some(Event::TimedOut) => {
                    guard.status = 503;
                    let _ = send(SseEvent::default().data(ApiError::queue_timeout().body().to_string())).await;
                    return;
                }
                Some(Event::Failed(msg)) => {
                    guard.status = 500;
                    let _ = send(SseEvent::default().data(ApiError::internal(msg).body().to_string())).await;
                    return;
                }
                None => return,
            };
            if !send(chunk(piece)).await {
                return;
            }
        }
        let u = usage(&state.tiers[v.tier].pricing, prompt_tokens, cached, completion);
        guard.status = 200;
        if v.include_usage {
            let mut last = json!({"id": head.id, "object": head.object(true), "created": head.created,
                                  "model": head.model, "system_fingerprint": head.fingerprint, "choices": []});
            last["usage"] = u;
            if !send(SseEvent::default().data(last.to_string())).await {
                return;
            }
        }
        let _ = send(SseEvent::default().data("[DONE]")).await;
    });
    Sse::new(ReceiverStream::new(out))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)).text("keep-alive"))
        .into_response()
}

fn l_chars(l: &Option<Logprobs>) -> usize {
    l.as_ref().map(|l| l.chosen.text.chars().count()).unwrap_or(0)
}
