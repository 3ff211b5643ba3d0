//! The streamed rendering of an `Outcome`: engine events become chat or completion chunks as
//! server-sent events, text that may be tool calls is held back and sent as `tool_calls` deltas
//! when it is (`tool_calls::CallReader`), and the usage
//! counted so far is recorded by the stream's guard however it ends.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tandem_api as api;
use tandem_engine::{Event, FinishReason, Logprobs, PredictionUsage};
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tokio_stream::wrappers::ReceiverStream;

use super::{
    add_prediction, chat_logprobs, completion_logprobs, price, sse, tool_calls, usage, with_prediction, Head, Latency,
    UsageGuard,
};
use crate::error::ApiError;
use crate::request::{Api, ValidRequest};
use crate::speech::{Narrator, Spoken};
use crate::state::{AppState, Pricing};
use crate::tool_calls::CallReader;
use base64::Engine;

/// Streams chunks as server-sent events, ending with `data: [DONE]`. A client that goes away drops
/// the stream; the bridge task notices, drops the engine's receiver, and the engine frees the slot.
pub fn stream(state: Arc<AppState>, v: ValidRequest, mut rx: UnboundedReceiver<Event>, start: Instant) -> Response {
    let (tx, out) = mpsc::channel::<Result<SseEvent, Infallible>>(64);
    tokio::spawn(async move {
        let mut s = Streamer::new(&state, &v, start);
        let send = |events: Vec<SseEvent>| {
            let tx = tx.clone();
            async move {
                for e in events {
                    if tx.send(Ok(e)).await.is_err() {
                        return false;
                    }
                }
                true
            }
        };
        if !send(s.opening()).await {
            return;
        }
        let n = v.gen.n;
        let mut narrator = match (v.audio_out, v.api) {
            (Some(_), Api::Chat) => Narrator::start(&state, v.account.clone(), n),
            _ => None,
        };
        s.spoken = narrator.is_some();
        while s.finished < n || narrator.as_ref().is_some_and(|na| na.done < n) {
            let next = tokio::select! {
                ev = rx.recv(), if s.finished < n => Next::Engine(ev),
                heard = heard(&mut narrator) => Next::Audio(heard),
                _ = tx.closed() => return, // client gone
            };
            let (events, go_on) = match next {
                Next::Engine(None) | Next::Audio(None) => return,
                Next::Engine(Some(ev)) => {
                    let out = s.event(ev);
                    if let Some(na) = narrator.as_mut() {
                        for (choice, text) in s.to_say.drain(..) {
                            match text {
                                Some(t) => na.text(choice, &t),
                                None => na.finish(choice),
                            }
                        }
                    }
                    out
                }
                Next::Audio(Some(sp)) => match narrator.as_mut() {
                    Some(na) => s.spoken_delta(na, sp),
                    None => return,
                },
            };
            if !send(events).await || !go_on {
                return;
            }
        }
        send(s.closing()).await;
    });
    Sse::new(ReceiverStream::new(out))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)).text("keep-alive"))
        .into_response()
}

enum Next {
    Engine(Option<Event>),
    Audio(Option<Spoken>),
}

/// The narrator's next spoken sentence, or never when the answer is not spoken.
async fn heard(n: &mut Option<Narrator>) -> Option<Spoken> {
    match n {
        Some(n) => n.recv().await,
        None => std::future::pending().await,
    }
}

/// One stream's state: what each choice has sent, what tool-call text is held back, and the usage
/// counted so far (recorded by its guard whenever the stream ends).
struct Streamer<'a> {
    v: &'a ValidRequest,
    head: Head,
    pricing: Pricing,
    guard: UsageGuard,
    lat: Latency<'a>,
    /// Tokens of each unfinished choice so far.
    partial: Vec<usize>,
    /// With tools on, each choice's reader of calls (text that may be calls is held back).
    calls: Vec<Option<CallReader>>,
    /// Completions with `echo`: whether the prompt went out before the choice's first text.
    echoed: Vec<bool>,
    /// Completions' logprobs: the character offset of each choice's next token.
    offsets: Vec<usize>,
    completion: usize,
    finished: usize,
    /// Predicted Outputs' counts of the finished choices.
    predicted: Option<PredictionUsage>,
    /// The answer is spoken (`modalities` with audio): text goes to the narrator, not `content`.
    spoken: bool,
    /// Text for the narrator (None: the choice is written).
    to_say: Vec<(usize, Option<String>)>,
    /// Spoken answers: each choice's finish chunk, sent after its last audio (OpenAI's order).
    finish_later: Vec<Option<SseEvent>>,
}

impl<'a> Streamer<'a> {
    fn new(state: &'a Arc<AppState>, v: &'a ValidRequest, start: Instant) -> Self {
        let n = v.gen.n;
        Self {
            v,
            head: Head::new(state, v),
            pricing: price(state, v),
            guard: UsageGuard::new(state, v, start),
            lat: Latency::new(state, v, start),
            partial: vec![0; n],
            calls: (0..n).map(|_| v.tools.clone().map(CallReader::new)).collect(),
            echoed: vec![false; n],
            offsets: vec![v.echo.as_ref().map(|e| e.chars().count()).unwrap_or(0); n],
            completion: 0,
            finished: 0,
            predicted: None,
            spoken: false,
            to_say: Vec::new(),
            finish_later: vec![None; n],
        }
    }

    /// A spoken sentence as an audio delta (OpenAI's streamed shape: base64 pcm16 and the words;
    /// the choice's last with `expires_at`), or the failure that ends the stream.
    fn spoken_delta(&mut self, na: &mut Narrator, sp: Spoken) -> (Vec<SseEvent>, bool) {
        let data = match sp.pcm16 {
            Ok(d) => d,
            Err(e) => {
                return (
                    vec![sse(&ApiError::internal(format!("speech failed: {e}")).body())],
                    false,
                )
            }
        };
        if sp.last {
            na.done += 1;
        }
        let audio = api::AudioDelta {
            id: na.ids[sp.choice].clone(),
            data: base64::engine::general_purpose::STANDARD.encode(data),
            transcript: sp.transcript,
            expires_at: sp.last.then_some(na.expires_at),
        };
        let delta = api::Delta {
            audio: Some(audio),
            ..api::Delta::default()
        };
        let mut out = vec![self.chat(sp.choice, delta, None, None)];
        if sp.last {
            out.extend(self.finish_later[sp.choice].take());
        }
        (out, true)
    }

    /// `usage: null` on every chunk when the client asked for a final usage chunk.
    fn chunk_usage(&self) -> api::ChunkUsage {
        self.v.include_usage.then_some(None)
    }

    fn chat(
        &self,
        index: usize,
        delta: api::Delta,
        logprobs: Option<api::ChatLogprobs>,
        finish: Option<&str>,
    ) -> SseEvent {
        let choice = api::ChunkChoice {
            index,
            delta,
            logprobs,
            finish_reason: finish.map(String::from),
        };
        sse(&self.head.chat_chunk(vec![choice], self.chunk_usage()))
    }

    fn text(&self, choice: api::TextChoice) -> SseEvent {
        sse(&self.head.text(vec![choice], self.chunk_usage()))
    }

    /// Chat streams open with each choice's role.
    fn opening(&self) -> Vec<SseEvent> {
        match self.v.api {
            Api::Chat => (0..self.v.gen.n)
                .map(|i| self.chat(i, api::Delta::start(), None, None))
                .collect(),
            Api::Completion => Vec::new(),
        }
    }

    /// The chunks for one engine event, and whether the stream goes on.
    fn event(&mut self, ev: Event) -> (Vec<SseEvent>, bool) {
        match ev {
            Event::Prefilled {
                prompt_tokens,
                cached_tokens,
            } => {
                (self.guard.prompt, self.guard.cached) = (prompt_tokens, cached_tokens);
                (Vec::new(), true)
            }
            Event::Token { choice, text, logprobs } => (self.token(choice, text, logprobs), true),
            Event::Finished {
                choice,
                reason,
                completion_tokens,
                prediction,
            } => {
                self.predicted = [self.predicted, prediction]
                    .into_iter()
                    .flatten()
                    .reduce(add_prediction);
                (self.finish(choice, reason, completion_tokens), true)
            }
            Event::TimedOut => {
                self.guard.status = 503;
                (vec![sse(&ApiError::queue_timeout().body())], false)
            }
            Event::Failed(msg) => {
                self.guard.status = 500;
                (vec![sse(&ApiError::internal(msg).body())], false)
            }
        }
    }

    fn token(&mut self, choice: usize, text: String, logprobs: Option<Logprobs>) -> Vec<SseEvent> {
        self.lat.token();
        self.partial[choice] += 1;
        self.guard.completion = self.completion + self.partial.iter().sum::<usize>();
        if text.is_empty() && logprobs.is_none() {
            return Vec::new();
        }
        match self.v.api {
            Api::Chat => {
                let mut text = text;
                if let Some(r) = self.calls[choice].as_mut() {
                    let shown = r.push(&text);
                    if shown.is_empty() && !text.is_empty() {
                        return Vec::new(); // held: may be a call
                    }
                    text = shown;
                }
                if self.spoken {
                    self.to_say.push((choice, Some(text)));
                    return Vec::new();
                }
                let lp = logprobs.as_ref().map(|l| chat_logprobs(std::slice::from_ref(l)));
                vec![self.chat(choice, api::Delta::content(text), lp, None)]
            }
            Api::Completion => {
                let mut t = text;
                if !self.echoed[choice] {
                    self.echoed[choice] = true;
                    t = format!("{}{t}", self.v.echo.clone().unwrap_or_default());
                }
                let lp = logprobs.as_ref().map(|l| {
                    completion_logprobs(
                        std::slice::from_ref(l),
                        self.offsets[choice],
                        std::slice::from_ref(&l.chosen.text),
                    )
                });
                self.offsets[choice] += logprobs.as_ref().map_or(0, |l| l.chosen.text.chars().count());
                vec![self.text(api::TextChoice {
                    text: t,
                    index: choice,
                    logprobs: lp,
                    finish_reason: None,
                })]
            }
        }
    }

    fn finish(&mut self, choice: usize, reason: FinishReason, completion_tokens: usize) -> Vec<SseEvent> {
        self.finished += 1;
        if self.spoken {
            self.to_say.push((choice, None));
        }
        self.completion += completion_tokens;
        self.partial[choice] = 0;
        self.guard.completion = self.completion + self.partial.iter().sum::<usize>();
        match self.v.api {
            Api::Chat => {
                let mut finish = reason.as_str();
                let mut out = Vec::new();
                if let Some(mut r) = self.calls[choice].take() {
                    let (held, calls) = r.finish();
                    if !held.is_empty() {
                        // Not calls after all (plain JSON, or cut short): the text goes out as content.
                        out.push(self.chat(choice, api::Delta::content(held), None, None));
                    }
                    if !calls.is_empty() {
                        finish = r.finish_reason(finish, &calls);
                        out.extend(self.tool_call_deltas(choice, &calls));
                    }
                }
                let end = self.chat(choice, api::Delta::default(), None, Some(finish));
                if self.spoken {
                    self.finish_later[choice] = Some(end);
                } else {
                    out.push(end);
                }
                out
            }
            Api::Completion => vec![self.text(api::TextChoice {
                text: String::new(),
                index: choice,
                logprobs: None,
                finish_reason: Some(reason.as_str().into()),
            })],
        }
    }

    /// Per call: its id, type and name first, then the arguments.
    fn tool_call_deltas(&self, choice: usize, calls: &[crate::tools::Call]) -> Vec<SseEvent> {
        let delta = |tc: api::ToolCallDelta| api::Delta {
            tool_calls: Some(vec![tc]),
            ..Default::default()
        };
        tool_calls(calls)
            .into_iter()
            .enumerate()
            .flat_map(|(k, call)| {
                let first = api::ToolCallDelta {
                    index: k,
                    id: Some(call.id),
                    kind: Some(call.kind),
                    function: api::FunctionDelta {
                        name: Some(call.function.name),
                        arguments: String::new(),
                    },
                };
                let second = api::ToolCallDelta {
                    index: k,
                    id: None,
                    kind: None,
                    function: api::FunctionDelta {
                        name: None,
                        arguments: call.function.arguments,
                    },
                };
                [first, second].map(|tc| self.chat(choice, delta(tc), None, None))
            })
            .collect()
    }

    /// The usage chunk (when asked for) and `[DONE]`; the guard records a finished response.
    fn closing(&mut self) -> Vec<SseEvent> {
        self.guard.status = 200;
        let mut out = Vec::new();
        if self.v.include_usage {
            let u = usage(&self.pricing, self.guard.prompt, self.guard.cached, self.completion);
            let u = Some(Some(with_prediction(u, self.predicted)));
            out.push(match self.v.api {
                Api::Chat => sse(&self.head.chat_chunk(vec![], u)),
                Api::Completion => sse(&self.head.text(vec![], u)),
            });
        }
        out.push(SseEvent::default().data("[DONE]"));
        out
    }
}
