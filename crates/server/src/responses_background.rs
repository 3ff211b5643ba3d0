//! Background responses (`background: true`): stored at once as `queued` and answered by a task at
//! batch priority (under the caller's per-minute limits), which stores `in_progress` and then the
//! finished response; clients poll `GET /v1/responses/{id}`. `POST /v1/responses/{id}/cancel`
//! stops generation: the answer so far is kept, its usage recorded, the status `cancelled`.
//! The cancel switches live in this process (`AppState::background`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Extension, Path, State};
use axum::Json;
use serde_json::{json, Value};
use tandem_api as api;
use tandem_engine::{Event, FinishReason};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::sync::watch;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::params::Fields;
use crate::pipeline::{self, Outcome};
use crate::request::Api;
use crate::responses::{json_text, record, render, Answered};
use crate::responses_request::Translated;
use crate::state::{new_id, AppState};

/// Stores the queued response and starts its task.
pub(crate) async fn start(
    state: &Arc<AppState>,
    caller: &Caller,
    request: Value,
    t: Translated,
    previous_id: Option<String>,
) -> Result<Answered, ApiError> {
    let model = Fields::new(&request).string("model")?.unwrap_or_default().to_string();
    let model = state.tier(&model).map(|t| t.id.clone()).unwrap_or(model);
    let id = new_id("resp_");
    let f = Fields::new(&request);
    let chat = crate::responses::chat_answer(
        &model,
        String::new(),
        Vec::new(),
        None,
        api::Usage::default(),
        "default",
    );
    let mut queued = render(id.clone(), &f, &chat, previous_id.clone(), true)?;
    (queued.status, queued.background, queued.output, queued.usage) = ("queued".into(), true, Vec::new(), None);
    // Registered before it is stored, so `fail_orphans` never takes it for a dead one.
    let (cancel, cancelled) = watch::channel(false);
    state
        .background
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id.clone(), cancel);
    let rec = record(caller, &queued, t.clone(), None);
    if let Err(e) = state.db(move |s| s.insert_response(&rec)).await {
        state.background.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        return Err(e);
    }
    let job = Job {
        state: state.clone(),
        caller: caller.clone(),
        request,
        t,
        queued: queued.clone(),
    };
    tokio::spawn(job.run(cancelled));
    Ok(Answered::Queued(serde_json::to_value(&queued).unwrap_or_default()))
}

struct Job {
    state: Arc<AppState>,
    caller: Caller,
    request: Value,
    t: Translated,
    queued: api::Response,
}

impl Job {
    async fn run(self, cancelled: watch::Receiver<bool>) {
        let mut running = self.queued.clone();
        running.status = "in_progress".into();
        self.store(&running, None).await;
        let outcome = self.answer(cancelled.clone()).await;
        let finished = match outcome {
            Ok(chat) => self.finished(&chat, *cancelled.borrow()).map(|r| (r, Some(chat))),
            Err(e) => Err(e),
        };
        match finished {
            Ok((response, chat)) => self.store(&response, chat.as_ref()).await,
            Err(e) => {
                let mut failed = self.queued.clone();
                failed.status = "failed".into();
                failed.error = Some(json!({"code": "server_error", "message": e.message}));
                self.store(&failed, None).await;
            }
        }
        let mut jobs = self.state.background.lock().unwrap_or_else(|p| p.into_inner());
        jobs.remove(&self.queued.id);
    }

    /// The chat answer, cut where a cancel arrived.
    async fn answer(&self, cancelled: watch::Receiver<bool>) -> Result<api::ChatCompletion, ApiError> {
        let body = serde_json::to_vec(&self.t.chat).map_err(|e| ApiError::internal(e.to_string()))?;
        let req = pipeline::Request {
            api: Api::Chat,
            body: &body,
            headers: None,
            batch: false,
            background: true,
        };
        let state = &self.state;
        let answer = match pipeline::run(state, &self.caller, req).await? {
            Outcome::Refused { v, .. } => crate::respond::refusal_body(state, &v),
            Outcome::Generated { v, rx, .. } => {
                crate::respond::collect_recorded(state, &v, cancellable(rx, cancelled), Instant::now()).await?
            }
        };
        match answer {
            crate::respond::Body::Chat(chat) => Ok(chat),
            crate::respond::Body::Text(_) => Err(ApiError::internal("a chat request answered as a text completion")),
        }
    }

    fn finished(&self, chat: &api::ChatCompletion, cancelled: bool) -> Result<api::Response, ApiError> {
        let f = Fields::new(&self.request);
        let previous = self.queued.previous_response_id.clone();
        let mut r = render(self.queued.id.clone(), &f, chat, previous, true)?;
        r.created_at = self.queued.created_at;
        r.background = true;
        if cancelled {
            r.status = "cancelled".into();
            r.incomplete_details = None;
        }
        Ok(r)
    }

    /// Stores the response's object as it stands (and, when answered, the conversation).
    async fn store(&self, response: &api::Response, chat: Option<&api::ChatCompletion>) {
        let (id, object) = (response.id.clone(), json_text(response));
        let rec = record(&self.caller, response, self.t.clone(), chat);
        let (messages, pending) = (rec.messages, rec.pending);
        if let Err(e) = self
            .state
            .db(move |s| s.update_response(&id, &object, &messages, pending))
            .await
        {
            tracing::error!(error = %e.message, "storing a background response");
        }
    }
}

/// Background responses a previous process left queued or running can never finish: they are
/// stored as failed, so nobody polls them forever.
pub(crate) async fn fail_orphans(state: &Arc<AppState>) -> Result<usize, ApiError> {
    let mut pending = state.db(|s| s.pending_responses()).await?;
    pending.retain(|r| {
        !state
            .background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&r.id)
    });
    let n = pending.len();
    for r in pending {
        let mut object: Value = serde_json::from_str(&r.object).unwrap_or_else(|_| json!({}));
        object["status"] = json!("failed");
        object["error"] = json!({"code": "server_error", "message": "The server restarted before this background response finished."});
        let (id, text, messages) = (r.id, object.to_string(), r.messages);
        state
            .db(move |s| s.update_response(&id, &text, &messages, false))
            .await?;
    }
    Ok(n)
}

/// The engine's events until a cancel arrives; then the answer ends there (its receiver is
/// dropped, which stops generation) with the tokens generated so far.
fn cancellable(mut rx: UnboundedReceiver<Event>, mut cancelled: watch::Receiver<bool>) -> UnboundedReceiver<Event> {
    let (tx, out) = unbounded_channel();
    tokio::spawn(async move {
        let mut tokens = 0;
        loop {
            tokio::select! {
                e = rx.recv() => {
                    let Some(e) = e else { return };
                    if matches!(e, Event::Token { .. }) {
                        tokens += 1;
                    }
                    if tx.send(e).is_err() {
                        return;
                    }
                }
                _ = cancelled.wait_for(|c| *c) => {
                    let _ = tx.send(Event::Finished { choice: 0, reason: FinishReason::Stop, completion_tokens: tokens, prediction: None });
                    return;
                }
            }
        }
    });
    out
}

/// `POST /v1/responses/{id}/cancel`: stops a background response and answers it as stored once
/// its task has written the final state.
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let object = |r: &tandem_store::ResponseRecord| -> Result<Value, ApiError> {
        serde_json::from_str(&r.object).map_err(|e| ApiError::internal(format!("stored response: {e}")))
    };
    let r = crate::responses::find(&state, &caller, &id).await?;
    if object(&r)?["background"] != json!(true) {
        return Err(ApiError::invalid(
            "response_id",
            "invalid_value",
            "Only responses created with 'background': true can be cancelled.",
        ));
    }
    if let Some(switch) = state.background.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
        let _ = switch.send(true);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = object(&crate::responses::find(&state, &caller, &id).await?)?;
        let pending = matches!(now["status"].as_str(), Some("queued") | Some("in_progress"));
        if !pending || Instant::now() > deadline {
            return Ok(Json(now));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
