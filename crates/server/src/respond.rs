//! Rendering a pipeline `Outcome`: engine events become one response object (`collect`) or a
//! server-sent event stream of chunks (`stream`), a refusal becomes its refused answer; all in the
//! wire types of `tandem_api`. Usage is counted here, once per response, whichever way it goes out.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tandem_api as api;
use tandem_engine::{Event, FinishReason, Logprobs, PredictionUsage, Priority};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::error::ApiError;
use crate::request::{Api, ValidRequest};
use crate::state::{unix_now, AppState, Pricing};

mod stream;
pub use stream::stream;

/// What identifies one response across its chunks.
struct Head {
    id: String,
    created: u64,
    model: String,
    fingerprint: String,
}

impl Head {
    fn new(state: &AppState, v: &ValidRequest) -> Self {
        let t = &state.tiers[v.tier];
        Self {
            id: v.id.clone(),
            created: unix_now(),
            model: t.id.clone(),
            fingerprint: t.fingerprint.clone(),
        }
    }

    fn chat_chunk(&self, choices: Vec<api::ChunkChoice>, usage: api::ChunkUsage) -> api::ChatCompletionChunk {
        api::ChatCompletionChunk {
            id: self.id.clone(),
            object: api::ChatCompletionChunk::OBJECT.into(),
            created: self.created,
            model: self.model.clone(),
            system_fingerprint: self.fingerprint.clone(),
            choices,
            usage,
        }
    }

    /// A whole chat response.
    fn chat(self, v: &ValidRequest, choices: Vec<api::ChatChoice>, usage: api::Usage) -> Body {
        let service_tier = match (v.flex, v.gen.priority) {
            (true, _) => "flex",
            (false, Priority::Batch) => "batch",
            _ => "default",
        };
        Body::Chat(api::ChatCompletion {
            id: self.id,
            object: api::ChatCompletion::OBJECT.into(),
            created: self.created,
            model: self.model,
            choices,
            usage,
            system_fingerprint: self.fingerprint,
            service_tier: service_tier.into(),
        })
    }

    fn text(&self, choices: Vec<api::TextChoice>, usage: api::ChunkUsage) -> api::TextCompletion {
        api::TextCompletion {
            id: self.id.clone(),
            object: api::TextCompletion::OBJECT.into(),
            created: self.created,
            model: self.model.clone(),
            system_fingerprint: self.fingerprint.clone(),
            choices,
            usage,
        }
    }
}

/// A whole (non-streamed) response.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Body {
    Chat(api::ChatCompletion),
    Text(api::TextCompletion),
}

impl Body {
    pub fn usage(&self) -> api::Usage {
        match self {
            Body::Chat(c) => c.usage.clone(),
            Body::Text(t) => t.usage().cloned().unwrap_or_default(),
        }
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The JSON response, its cost in `x-tandem-cost` (shortest round-trip decimal).
    fn into_response(self) -> Response {
        let total = self.usage().cost.total;
        let mut resp = axum::Json(self).into_response();
        crate::routes::set_cost(&mut resp, total);
        resp
    }
}

/// The one place usage and cost are counted, for every response (stream or not).
/// What the request's tokens cost: the tier's prices, halved on the batch lane (`service_tier:
/// "flex"`; batch lines pass the batch price themselves).
pub(crate) fn price(state: &AppState, v: &ValidRequest) -> Pricing {
    let p = state.tiers[v.tier].pricing;
    if v.flex {
        p.batch()
    } else {
        p
    }
}

pub(crate) fn usage(pricing: &Pricing, prompt: usize, cached: usize, completion: usize) -> api::Usage {
    let (input, cached_input, output, total) = pricing.cost(prompt, cached, completion);
    let cost = api::Cost {
        input,
        cached_input,
        output,
        total,
    };
    api::Usage::new(prompt as u64, cached as u64, completion as u64, cost)
}

/// Predicted Outputs' counts in `completion_tokens_details` (summed over choices). Rejected
/// prediction tokens are reported and not charged: they cost a verification row, not a token.
fn with_prediction(mut u: api::Usage, p: Option<PredictionUsage>) -> api::Usage {
    if let Some(p) = p {
        u.completion_tokens_details.accepted_prediction_tokens = p.accepted as u64;
        u.completion_tokens_details.rejected_prediction_tokens = p.rejected as u64;
    }
    u
}

fn add_prediction(a: PredictionUsage, b: PredictionUsage) -> PredictionUsage {
    PredictionUsage {
        accepted: a.accepted + b.accepted,
        rejected: a.rejected + b.rejected,
    }
}

fn chat_logprob(l: &Logprobs) -> api::TokenLogprob {
    api::TokenLogprob {
        token: l.chosen.text.clone(),
        logprob: l.chosen.logprob as f64,
        bytes: l.chosen.bytes.clone(),
        top_logprobs: l
            .top
            .iter()
            .map(|t| api::TopLogprob {
                token: t.text.clone(),
                logprob: t.logprob as f64,
                bytes: t.bytes.clone(),
            })
            .collect(),
    }
}

fn chat_logprobs(lps: &[Logprobs]) -> api::ChatLogprobs {
    api::ChatLogprobs {
        content: lps.iter().map(chat_logprob).collect(),
        refusal: None,
    }
}

/// The legacy completions format: parallel arrays, `text_offset` counted in characters.
fn completion_logprobs(lps: &[Logprobs], start_offset: usize, texts: &[String]) -> api::CompletionLogprobs {
    let mut offset = start_offset;
    let mut offsets = Vec::with_capacity(lps.len());
    for t in texts {
        offsets.push(offset);
        offset += t.chars().count();
    }
    api::CompletionLogprobs {
        tokens: lps.iter().map(|l| l.chosen.text.clone()).collect(),
        token_logprobs: lps.iter().map(|l| l.chosen.logprob as f64).collect(),
        top_logprobs: lps
            .iter()
            .map(|l| l.top.iter().map(|t| (t.text.clone(), t.logprob as f64)).collect())
            .collect(),
        text_offset: offsets,
    }
}

/// Tool calls as the API shows them, each with a fresh id.
pub(crate) fn tool_calls(calls: &[crate::tools::Call]) -> Vec<api::ToolCall> {
    calls
        .iter()
        .map(|(name, args)| api::ToolCall {
            id: crate::state::new_id("call_"),
            kind: "function".into(),
            function: api::FunctionCall {
                name: name.clone(),
                arguments: args.clone(),
            },
        })
        .collect()
}

#[derive(Default, Clone)]
struct Choice {
    text: String,
    finish: Option<&'static str>,
    logprobs: Vec<Logprobs>,
    /// Per logprob entry: the token's own text (for text offsets).
    token_texts: Vec<String>,
    tokens: usize,
    prediction: Option<PredictionUsage>,
}

/// Observes a tier's latency metrics as token events pass; dropped, the whole response's.
struct Latency<'a> {
    state: &'a AppState,
    model: &'a str,
    start: Instant,
    last: Option<Instant>,
}

impl<'a> Latency<'a> {
    fn new(state: &'a AppState, v: &ValidRequest, start: Instant) -> Self {
        Self {
            state,
            model: &state.tiers[v.tier].id,
            start,
            last: None,
        }
    }

    fn token(&mut self) {
        let now = Instant::now();
        match self.last {
            None => self
                .state
                .metrics
                .first_token(self.model, (now - self.start).as_secs_f64()),
            Some(l) => self.state.metrics.next_token(self.model, (now - l).as_secs_f64()),
        }
        self.last = Some(now);
    }
}

impl Drop for Latency<'_> {
    fn drop(&mut self) {
        if let Some(last) = self.last {
            self.state
                .metrics
                .response(self.model, (last - self.start).as_secs_f64());
        }
    }
}

/// Waits for every choice to finish and answers with one JSON object.
pub async fn complete(state: Arc<AppState>, v: ValidRequest, rx: UnboundedReceiver<Event>, start: Instant) -> Response {
    let body = match collect_recorded(&state, &v, rx, start).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    match (v.audio_out, body) {
        (Some(a), Body::Chat(mut c)) => match spoken(&state, &v, &mut c, a).await {
            Ok(()) => Body::Chat(c).into_response(),
            Err(e) => e.into_response(),
        },
        (_, body) => body.into_response(),
    }
}

/// Each choice's text spoken into its `message.audio` (the text is final: output moderation has
/// run); as OpenAI answers, the words are then in `audio.transcript` and `content` is null.
async fn spoken(
    state: &Arc<AppState>,
    v: &ValidRequest,
    c: &mut api::ChatCompletion,
    a: crate::speech::ChatAudio,
) -> Result<(), ApiError> {
    for choice in c.choices.iter_mut() {
        let Some(text) = choice.message.content.clone().filter(|t| !t.trim().is_empty()) else {
            continue;
        };
        choice.message.audio = Some(crate::speech::speak_answer(state, &v.account, &text, a).await?);
        choice.message.content = None;
    }
    Ok(())
}

/// `collect` at the tier's price, with the response's usage recorded (once, whichever way it ends).
pub async fn collect_recorded(
    state: &Arc<AppState>,
    v: &ValidRequest,
    rx: UnboundedReceiver<Event>,
    start: Instant,
) -> Result<Body, ApiError> {
    let pricing = price(state, v);
    let mut guard = UsageGuard::new(state, v, start);
    let r = collect(state, v, rx, start, &pricing).await;
    match &r {
        Ok(body) => {
            let u = body.usage();
            guard.prompt = u.prompt_tokens as usize;
            guard.cached = u.prompt_tokens_details.cached_tokens as usize;
            guard.completion = u.completion_tokens as usize;
            guard.status = 200;
        }
        Err(e) => guard.status = e.status.as_u16(),
    }
    r
}

/// Records the usage of a cascade's first attempt that was not kept (the small tier answered, the
/// router escalated): it ran and is paid for, under the request's id.
pub fn record_attempt(state: &Arc<AppState>, v: &ValidRequest, start: Instant, cached: usize, completion: usize) {
    let mut g = UsageGuard::new(state, v, start);
    // The rate-limit charge is settled once, by the response that is sent.
    g.account.charge = None;
    g.cached = cached;
    g.completion = completion;
    g.status = 200;
}

/// Records one interactive response's usage when dropped — whichever way the response ends:
/// finished (200), failed (its status) or abandoned by the client (499, with the tokens generated
/// so far) — and tells the rate-limit charge what was really used. Batch lines record theirs with
/// their result instead.
pub(crate) struct UsageGuard {
    state: Arc<AppState>,
    pricing: Pricing,
    tier: usize,
    account: crate::request::Account,
    id: String,
    start: Instant,
    pub(crate) prompt: usize,
    pub(crate) cached: usize,
    pub(crate) completion: usize,
    pub(crate) status: u16,
}

impl UsageGuard {
    pub(crate) fn new(state: &Arc<AppState>, v: &ValidRequest, start: Instant) -> Self {
        Self {
            state: state.clone(),
            pricing: price(state, v),
            tier: v.tier,
            account: v.account.clone(),
            id: v.id.clone(),
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
        let (.., cost) = self.pricing.cost(prompt, self.cached, self.completion);
        if let Some(c) = &self.account.charge {
            c.used((prompt + self.completion) as u64);
        }
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
        self.state.record_usage(rec);
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
) -> Result<Body, ApiError> {
    let mut choices = vec![Choice::default(); v.gen.n];
    let (mut prompt_tokens, mut cached) = (v.gen.prompt.len(), 0);
    let mut finished = 0;
    let mut lat = Latency::new(state, v, start);
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
                prediction,
            }) => {
                choices[choice].finish = Some(reason.as_str());
                choices[choice].tokens = completion_tokens;
                choices[choice].prediction = prediction;
                finished += 1;
            }
            Some(Event::TimedOut) => return Err(ApiError::queue_timeout()),
            Some(Event::Failed(msg)) => return Err(ApiError::internal(msg)),
            None => return Err(ApiError::internal("the engine dropped the request")),
        }
    }
    let head = Head::new(state, v);
    if state.config.log_content {
        for (i, c) in choices.iter().enumerate() {
            tracing::info!(id = %head.id, choice = i, prompt_tokens, completion = %c.text, "completion (--log-content)");
        }
    }
    let completion_tokens: usize = choices.iter().map(|c| c.tokens).sum();
    let predicted = choices.iter().filter_map(|c| c.prediction).reduce(add_prediction);
    let u = with_prediction(usage(pricing, prompt_tokens, cached, completion_tokens), predicted);
    Ok(match v.api {
        Api::Chat => {
            let choices = choices.iter().enumerate().map(|(i, c)| chat_choice(v, i, c)).collect();
            head.chat(v, choices, u)
        }
        Api::Completion => {
            let choices = choices.iter().enumerate().map(|(i, c)| text_choice(v, i, c)).collect();
            Body::Text(head.text(choices, Some(Some(u))))
        }
    })
}

fn chat_choice(v: &ValidRequest, index: usize, c: &Choice) -> api::ChatChoice {
    let mut message = api::AssistantMessage::text(c.text.clone());
    let mut finish = c.finish;
    if let (Some(declared), Some(reason)) = (&v.tools, finish) {
        let (content, calls, reason) = declared.read(&c.text, reason);
        if !calls.is_empty() {
            message.content = (!content.is_empty()).then_some(content);
            message.tool_calls = Some(tool_calls(&calls));
            finish = Some(reason);
        }
    }
    api::ChatChoice {
        index,
        message,
        logprobs: v.gen.top_logprobs.map(|_| chat_logprobs(&c.logprobs)),
        finish_reason: finish.map(String::from),
    }
}

fn text_choice(v: &ValidRequest, index: usize, c: &Choice) -> api::TextChoice {
    let echo = v.echo.clone().unwrap_or_default();
    api::TextChoice {
        text: format!("{echo}{}", c.text),
        index,
        logprobs: v
            .gen
            .top_logprobs
            .map(|_| completion_logprobs(&c.logprobs, echo.chars().count(), &c.token_texts)),
        finish_reason: c.finish.map(String::from),
    }
}

/// The refused answer of a blocked request, as one object: one choice per requested `n`, the
/// refusal in `message.refusal` (chat) or an empty text with `finish_reason: "content_filter"`
/// (completions, which have no refusal field); no tokens generated, none charged.
pub fn refusal_body(state: &AppState, v: &ValidRequest) -> Body {
    let head = Head::new(state, v);
    let u = api::Usage::default();
    match v.api {
        Api::Chat => {
            let choices = (0..v.gen.n)
                .map(|index| api::ChatChoice {
                    index,
                    message: api::AssistantMessage::refusal(crate::guard::REFUSAL),
                    logprobs: None,
                    finish_reason: Some("stop".into()),
                })
                .collect();
            head.chat(v, choices, u)
        }
        Api::Completion => Body::Text(head.text(refused_texts(0..v.gen.n), Some(Some(u)))),
    }
}

fn refused_texts(range: std::ops::Range<usize>) -> Vec<api::TextChoice> {
    range
        .map(|index| api::TextChoice {
            text: String::new(),
            index,
            logprobs: None,
            finish_reason: Some(FinishReason::ContentFilter.as_str().into()),
        })
        .collect()
}

/// The refused answer over HTTP, streamed or not, with its `x-tandem-moderation` header.
pub fn refusal(state: &AppState, v: &ValidRequest, moderation: &str) -> Response {
    let mut resp = if !v.stream {
        refusal_body(state, v).into_response()
    } else {
        let head = Head::new(state, v);
        let usage = v.include_usage.then_some(None);
        let mut events: Vec<SseEvent> = (0..v.gen.n)
            .map(|index| match v.api {
                Api::Chat => sse(&head.chat_chunk(
                    vec![api::ChunkChoice {
                        index,
                        delta: api::Delta::refusal(crate::guard::REFUSAL),
                        logprobs: None,
                        finish_reason: Some("stop".into()),
                    }],
                    usage.clone(),
                )),
                Api::Completion => sse(&head.text(refused_texts(index..index + 1), usage.clone())),
            })
            .collect();
        if v.include_usage {
            let u = Some(Some(api::Usage::default()));
            events.push(match v.api {
                Api::Chat => sse(&head.chat_chunk(vec![], u)),
                Api::Completion => sse(&head.text(vec![], u)),
            });
        }
        events.push(SseEvent::default().data("[DONE]"));
        Sse::new(tokio_stream::iter(events.into_iter().map(Ok::<_, Infallible>))).into_response()
    };
    if let Ok(h) = axum::http::HeaderValue::from_str(moderation) {
        resp.headers_mut().insert("x-tandem-moderation", h);
    }
    resp
}

fn sse<T: Serialize>(x: &T) -> SseEvent {
    SseEvent::default().data(serde_json::to_string(x).unwrap_or_default())
}
