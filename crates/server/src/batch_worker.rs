//! The batch worker: one task that carries every unfinished batch through its lifecycle, oldest
//! first, resuming whatever a previous process left (the store holds all of its state).
//!
//! validating → in_progress: the input file is checked line by line; lines go to the store in the
//! same transaction as the status change. in_progress: lines run at batch priority through the tier's
//! engine, a few at a time (the slots batch work may use); each result is stored together with its
//! usage record only if the line is still pending, so a line finished twice (a crash between
//! engine and store) is recorded once. finalizing: output and error files are written from the
//! stored results and the batch completes. A cancelled or expired batch keeps its finished results;
//! its unfinished lines get error results (`batch_cancelled`, `batch_expired`), so every input line
//! has exactly one result line in the end.
//!
//! Replicas sharing a store (PostgreSQL) each run this worker: lines are claimed for a lease
//! (`--batch-lease-seconds`) renewed while they run, so the replicas split a batch's lines and the
//! lines of a replica that died are taken over when its leases run out; every status change is
//! conditional, so only one replica moves a batch on.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tandem_api as api;

use tandem_store::{BatchLine, BatchRecord, BatchStatus, FileRecord, LineOutcome, LineResult, UsageRecord};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::error::ApiError;
use crate::pipeline::{self, Outcome};
use crate::request::Api;
use crate::respond;
use crate::state::{new_id, unix_now, AppState};

/// OpenAI's cap on requests in one batch.
pub const MAX_LINES: usize = 50_000;
/// Validation errors reported per batch (the rest are counted in the last message).
const MAX_ERRORS: usize = 100;
/// How often a running batch looks at its status and its deadline.
const TICK: Duration = Duration::from_millis(500);

type Res<T> = Result<T, ApiError>;

/// Starts the worker; it runs until the process ends.
pub fn spawn(state: Arc<AppState>) {
    tokio::spawn(async move {
        // An embedded store has one server: claims in it were this process's predecessor's.
        if !state.store.is_shared() {
            if let Err(e) = state.db(|s| s.release_claims()).await {
                tracing::error!(error = %e.message, "batch worker: releasing old claims");
            }
        }
        loop {
            if let Err(e) = pass(&state).await {
                tracing::error!(error = %e.message, "batch worker");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            tokio::select! {
                _ = state.batch_wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    });
}

/// One sweep over the unfinished batches, oldest first, each carried as far as it goes.
/// A batch that fails here (its store write failed) is logged and retried on the next pass; it does
/// not hold up the batches behind it.
async fn pass(state: &Arc<AppState>) -> Res<()> {
    for b in state.db(|s| s.unfinished_batches()).await? {
        if let Err(e) = drive(state, b.id.clone()).await {
            tracing::error!(batch = %b.id, error = %e.message, "batch worker");
        }
    }
    Ok(())
}

async fn batch(state: &Arc<AppState>, id: &str) -> Res<BatchRecord> {
    let key = id.to_string();
    state
        .db(move |s| s.batch(&key))
        .await?
        .ok_or_else(|| ApiError::internal(format!("batch {key} vanished", key = id)))
}

/// Moves one batch through its states until it is final.
async fn drive(state: &Arc<AppState>, id: String) -> Res<()> {
    loop {
        let b = batch(state, &id).await?;
        if b.status.is_final() {
            return Ok(());
        }
        if unix_now() >= b.expires_at && b.status != BatchStatus::Finalizing {
            return expire(state, &b).await;
        }
        match b.status {
            BatchStatus::Validating => match validate(state, &b).await? {
                Ok((model, lines)) => {
                    let key = id.clone();
                    state
                        .db(move |s| s.start_batch(&key, &model, &lines, unix_now()))
                        .await?;
                }
                Err(errors) => {
                    let key = id.clone();
                    let text = serde_json::to_string(&api::List::new(errors)).unwrap_or_default();
                    state.db(move |s| s.fail_batch(&key, &text, unix_now())).await?;
                }
            },
            BatchStatus::InProgress => {
                if !run_lines(state, &b).await? {
                    continue; // stopped early: cancelled or expired, which the next turn handles
                }
                let key = id.clone();
                state
                    .db(move |s| s.transition(&key, &[BatchStatus::InProgress], BatchStatus::Finalizing, unix_now()))
                    .await?;
            }
            BatchStatus::Finalizing => {
                finalize(state, &b, &[BatchStatus::Finalizing], BatchStatus::Completed, None).await?;
            }
            BatchStatus::Cancelling => {
                let why = ("batch_cancelled", "The batch was cancelled before this request ran.");
                finalize(state, &b, &[BatchStatus::Cancelling], BatchStatus::Cancelled, Some(why)).await?;
            }
            _ => unreachable!("final states return above"),
        }
    }
}

async fn expire(state: &Arc<AppState>, b: &BatchRecord) -> Res<()> {
    let why = (
        "batch_expired",
        "This request could not be executed before the completion window expired.",
    );
    let from = [
        BatchStatus::Validating,
        BatchStatus::InProgress,
        BatchStatus::Cancelling,
    ];
    finalize(state, b, &from, BatchStatus::Expired, Some(why)).await
}

/// Ends the batches other than `current` that were cancelled or ran out of time meanwhile.
async fn sweep_others(state: &Arc<AppState>, current: &str) -> Res<()> {
    for b in state.db(|s| s.unfinished_batches()).await? {
        if b.id == current {
            continue;
        }
        if unix_now() >= b.expires_at && b.status != BatchStatus::Finalizing {
            expire(state, &b).await?;
        } else if b.status == BatchStatus::Cancelling {
            let why = ("batch_cancelled", "The batch was cancelled before this request ran.");
            finalize(state, &b, &[BatchStatus::Cancelling], BatchStatus::Cancelled, Some(why)).await?;
        }
    }
    Ok(())
}

fn verror(code: &str, message: String, param: Option<&str>, line: Option<usize>) -> api::BatchError {
    api::BatchError {
        code: code.into(),
        message,
        param: param.map(String::from),
        line,
    }
}

/// A line of the output or error file (JSON text).
fn line_json(
    custom_id: String,
    response: Option<api::BatchLineResponse>,
    error: Option<api::BatchLineError>,
) -> String {
    let r = api::BatchLineResult {
        id: new_id("batch_req_"),
        custom_id,
        response,
        error,
    };
    serde_json::to_string(&r).unwrap_or_default()
}

/// Checks the input file as OpenAI does: every line a JSON object with a unique `custom_id`,
/// `method` POST, the batch's `url`, a `body` naming one served model (the same on every line),
/// and at most 50,000 lines. Request bodies themselves are checked when each line runs.
async fn validate(
    state: &Arc<AppState>,
    b: &BatchRecord,
) -> Res<Result<(String, Vec<BatchLine>), Vec<api::BatchError>>> {
    let file_id = b.input_file_id.clone();
    let (st, fid) = (state.clone(), file_id.clone());
    let bytes = tokio::task::spawn_blocking(move || -> tandem_store::Result<Option<Vec<u8>>> {
        match st.store.file(&fid)? {
            None => Ok(None),
            Some(_) => Ok(Some(st.blobs.read(&fid)?)),
        }
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(format!("reading {file_id}: {e}")))?;
    let Some(bytes) = bytes else {
        let msg = format!("The input file {file_id} no longer exists.");
        return Ok(Err(vec![verror("file_not_found", msg, Some("input_file_id"), None)]));
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        let msg = "The input file is not UTF-8 text; it must be JSONL.".to_string();
        return Ok(Err(vec![verror(
            "invalid_file_format",
            msg,
            Some("input_file_id"),
            None,
        )]));
    };
    Ok(check_lines(state, text, &b.endpoint))
}

fn check_lines(state: &AppState, text: &str, endpoint: &str) -> Result<(String, Vec<BatchLine>), Vec<api::BatchError>> {
    let (mut errors, mut lines, mut bad) = (Vec::new(), Vec::new(), 0usize);
    let mut seen = HashSet::new();
    let mut model: Option<String> = None;
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.trim().is_empty() {
            continue;
        }
        match check_line(state, i + 1, raw, endpoint, &mut model, &mut seen) {
            Ok(line) => lines.push(line),
            Err(e) => {
                bad += 1;
                if errors.len() < MAX_ERRORS {
                    errors.push(e);
                }
            }
        }
    }
    if lines.len() + bad > MAX_LINES {
        let msg = format!(
            "The input file has {} requests; a batch may have at most {MAX_LINES}.",
            lines.len() + bad
        );
        errors.insert(0, verror("too_many_requests", msg, Some("input_file_id"), None));
    } else if lines.is_empty() && bad == 0 {
        let msg = "The input file has no requests.".to_string();
        errors.push(verror("empty_file", msg, Some("input_file_id"), None));
    }
    if bad > errors.len() {
        let msg = format!("{} more lines have errors.", bad - errors.len());
        errors.push(verror("too_many_errors", msg, None, None));
    }
    match (errors.is_empty(), model) {
        (true, Some(m)) => {
            let canonical = state.tier(&m).map(|t| t.id.clone()).unwrap_or(m);
            Ok((canonical, lines))
        }
        _ => Err(errors),
    }
}

/// Line `n` of an input file: a JSON object with a unique `custom_id`, `POST`, the batch's URL and
/// a body naming the batch's one model (the first line's, set in `model`).
fn check_line(
    state: &AppState,
    n: usize,
    raw: &str,
    endpoint: &str,
    model: &mut Option<String>,
    seen: &mut HashSet<String>,
) -> Result<BatchLine, api::BatchError> {
    let fail = |code: &str, msg: String, param: Option<&str>| verror(code, msg, param, Some(n));
    let v: Value = match serde_json::from_str(raw) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return Err(fail(
                "invalid_json_line",
                format!("Line {n} is not a JSON object."),
                None,
            ))
        }
        Err(e) => {
            return Err(fail(
                "invalid_json_line",
                format!("Line {n} is not valid JSON: {e}."),
                None,
            ))
        }
    };
    let custom_id = match v.get("custom_id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            let msg = format!("Line {n}: 'custom_id' must be a non-empty string.");
            return Err(fail("missing_required_parameter", msg, Some("custom_id")));
        }
    };
    if v.get("method").and_then(Value::as_str) != Some("POST") {
        return Err(fail(
            "invalid_method",
            format!("Line {n}: 'method' must be 'POST'."),
            Some("method"),
        ));
    }
    let url = v.get("url").and_then(Value::as_str).unwrap_or("");
    if url != endpoint {
        let msg = format!("Line {n}: the URL '{url}' does not match the batch's endpoint '{endpoint}'.");
        return Err(fail("invalid_url", msg, Some("url")));
    }
    let Some(body @ Value::Object(_)) = v.get("body") else {
        let msg = format!("Line {n}: 'body' must be a JSON object.");
        return Err(fail("missing_required_parameter", msg, Some("body")));
    };
    if endpoint == "/v1/moderations" {
        // Moderation names its classifier, not a tier (and may leave it out).
        model.get_or_insert_with(|| "omni-moderation-latest".into());
    } else if endpoint == "/v1/embeddings" {
        let m = body.get("model").and_then(Value::as_str).unwrap_or("");
        if !state.embedder.as_ref().is_some_and(|e| e.answers_to(m)) {
            let msg = format!("Line {n}: the model '{m}' is not an embedding model this server serves.");
            return Err(fail("model_not_found", msg, Some("body.model")));
        }
        model.get_or_insert_with(|| m.to_string());
    } else {
        let Some(m) = body.get("model").and_then(Value::as_str) else {
            let msg = format!("Line {n}: the body has no 'model'.");
            return Err(fail("missing_required_parameter", msg, Some("body.model")));
        };
        check_model(state, n, m, model)?;
    }
    if !seen.insert(custom_id.clone()) {
        let msg = format!("Line {n}: the custom_id '{custom_id}' is used more than once.");
        return Err(fail("duplicate_custom_id", msg, Some("custom_id")));
    }
    Ok(BatchLine {
        line: n as u32,
        custom_id,
        body: body.to_string(),
    })
}

/// The batch's model: the first line's, which must be a served tier; every other line the same.
fn check_model(state: &AppState, n: usize, m: &str, model: &mut Option<String>) -> Result<(), api::BatchError> {
    let fail = |code: &str, msg: String| verror(code, msg, Some("body.model"), Some(n));
    match model {
        None if m == crate::router::AUTO && state.tier(m).is_err() => {
            // The cascade answers interactively; a batch names the tier it wants.
            let msg = format!("Line {n}: model 'auto' is not available in batches; name a tier (e.g. 'mini').");
            Err(fail("model_not_found", msg))
        }
        None if state.tier(m).is_err() => Err(fail(
            "model_not_found",
            format!("Line {n}: the model '{m}' does not exist."),
        )),
        None => {
            *model = Some(m.to_string());
            Ok(())
        }
        Some(first) if first != m => {
            let msg = format!("Line {n}: every request of a batch must use the same model ('{first}'), not '{m}'.");
            Err(fail("mismatched_model", msg))
        }
        Some(_) => Ok(()),
    }
}

/// Runs the batch's lines a few at a time, each claimed from the store for a lease this replica
/// renews while the line runs, so replicas sharing a store split the lines and a replica that
/// dies loses its lines to the others when its leases run out. `true` once no line is left
/// unanswered; `false` when the batch stopped being in progress (cancelled or expired).
async fn run_lines(state: &Arc<AppState>, b: &BatchRecord) -> Res<bool> {
    // A model no longer served (the server restarted with other --models): its lines fail one by
    // one with the same 404 an interactive request would get.
    let width = match state.tier(b.model.as_deref().unwrap_or("")) {
        Ok(t) => t
            .engine
            .config
            .slots
            .saturating_sub(t.engine.config.batch_reserve)
            .max(1),
        Err(_) => 1,
    };
    let lease = state.config.batch_lease;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut set: JoinSet<Res<u32>> = JoinSet::new();
    let mut held: HashSet<u32> = HashSet::new();
    let mut renewed = Instant::now();
    let result = loop {
        if set.len() < width {
            for n in claim(state, &b.id, width - set.len()).await? {
                held.insert(n);
                let (st, bb, rx) = (state.clone(), b.clone(), stop_rx.clone());
                set.spawn(async move { run_line(st, bb, n, rx).await.map(|()| n) });
            }
        }
        if set.is_empty() && unanswered(state, &b.id).await? == 0 {
            break Ok(true);
        }
        // With nothing of ours running, the rest is held by other replicas: look again after a
        // tick (their leases may run out).
        tokio::select! {
            r = set.join_next(), if !set.is_empty() => match r {
                Some(Ok(Ok(n))) => { held.remove(&n); }
                None => {}
                Some(Ok(Err(e))) => break Err(e),
                Some(Err(e)) => break Err(ApiError::internal(format!("batch line task: {e}"))),
            },
            _ = state.batch_wake.notified() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
        if renewed.elapsed() >= lease / 3 && !held.is_empty() {
            renew(state, &b.id, &held).await?;
            renewed = Instant::now();
        }
        let now = batch(state, &b.id).await?;
        if now.status != BatchStatus::InProgress || unix_now() >= now.expires_at {
            break Ok(false);
        }
        sweep_others(state, &b.id).await?;
    };
    // Lines in flight stop without recording anything; none is left writing behind our back.
    let _ = stop_tx.send(true);
    while set.join_next().await.is_some() {}
    result
}

async fn claim(state: &Arc<AppState>, id: &str, n: usize) -> Res<Vec<u32>> {
    let (key, worker, lease) = (
        id.to_string(),
        state.worker_id.clone(),
        state.config.batch_lease.as_secs(),
    );
    state
        .db(move |s| {
            let now = unix_now();
            s.claim_lines(&key, &worker, n, now, now + lease)
        })
        .await
}

async fn renew(state: &Arc<AppState>, id: &str, held: &HashSet<u32>) -> Res<()> {
    let (key, worker, lease) = (
        id.to_string(),
        state.worker_id.clone(),
        state.config.batch_lease.as_secs(),
    );
    let lines: Vec<u32> = held.iter().copied().collect();
    state
        .db(move |s| s.renew_lines(&key, &worker, &lines, unix_now() + lease))
        .await
}

async fn unanswered(state: &Arc<AppState>, id: &str) -> Res<usize> {
    let key = id.to_string();
    Ok(state.db(move |s| s.pending_lines(&key)).await?.len())
}

/// Runs one line and records its result with its usage, unless `stop` fires first.
async fn run_line(state: Arc<AppState>, b: BatchRecord, n: u32, mut stop: watch::Receiver<bool>) -> Res<()> {
    let key = b.id.clone();
    let Some(line) = state.db(move |s| s.line(&key, n)).await? else {
        return Err(ApiError::internal(format!("line {n} of {} is missing", b.id)));
    };
    let request_id = new_id("req_");
    let started = Instant::now();
    let outcome = tokio::select! {
        r = execute(&state, &b, &line) => r,
        _ = stop.wait_for(|s| *s) => return Ok(()),
    };
    let (result, usage) = match outcome {
        Ok((body, usage)) => {
            let u = UsageRecord {
                created_at: unix_now(),
                request_id: request_id.clone(),
                batch_id: Some(b.id.clone()),
                line: Some(n),
                model: usage.model,
                tier: usage.tier,
                prompt_tokens: usage.usage.prompt_tokens,
                cached_tokens: usage.usage.prompt_tokens_details.cached_tokens,
                completion_tokens: usage.usage.completion_tokens,
                cost: usage.usage.cost.total,
                key_id: b.key_id.clone(),
                project_id: b.project_id.clone(),
                latency_ms: started.elapsed().as_millis() as u64,
                status: 200,
            };
            let response = api::BatchLineResponse {
                status_code: 200,
                request_id,
                body,
            };
            (
                LineResult {
                    line: n,
                    outcome: LineOutcome::Completed,
                    json: line_json(line.custom_id, Some(response), None),
                },
                Some(u),
            )
        }
        Err(e) => {
            let response = api::BatchLineResponse {
                status_code: e.status.as_u16(),
                request_id,
                body: serde_json::to_value(e.body()).unwrap_or_default(),
            };
            (
                LineResult {
                    line: n,
                    outcome: LineOutcome::Failed,
                    json: line_json(line.custom_id, Some(response), None),
                },
                None,
            )
        }
    };
    let key = b.id.clone();
    state
        .db(move |s| s.complete_line(&key, n, &result, usage.as_ref()))
        .await?;
    Ok(())
}

/// The batch's key and project as the store has them now (limits and budgets move).
async fn owner(state: &Arc<AppState>, b: &BatchRecord) -> Res<crate::auth::Caller> {
    let (key_id, project_id) = (b.key_id.clone(), b.project_id.clone());
    let (key, project) = state
        .db(move |s| {
            let key = match key_id {
                Some(id) => s.key(&id)?.map(|(k, _)| k),
                None => None,
            };
            let project = match project_id {
                Some(id) => s.project(&id)?,
                None => None,
            };
            Ok((key, project))
        })
        .await?;
    Ok(crate::auth::Caller { key, project })
}

/// The line's request through the same pipeline as an interactive one, at batch priority, and
/// rendered at half price: the response body and its usage.
async fn execute(state: &Arc<AppState>, b: &BatchRecord, line: &BatchLine) -> Res<(Value, LineUsage)> {
    let api = match b.endpoint.as_str() {
        "/v1/chat/completions" => Api::Chat,
        "/v1/responses" => return execute_response(state, b, line).await,
        "/v1/moderations" => return execute_moderation(state, line).await,
        "/v1/embeddings" => return execute_embedding(state, line).await,
        _ => Api::Completion,
    };
    let caller = owner(state, b).await?;
    let req = pipeline::Request {
        api,
        body: line.body.as_bytes(),
        headers: None,
        batch: true,
        background: false,
    };
    let (v, body) = match pipeline::run(state, &caller, req).await? {
        Outcome::Refused { v, .. } => {
            let body = respond::refusal_body(state, &v);
            (v, body)
        }
        Outcome::Generated { v, rx, .. } => {
            let pricing = state.tiers[v.tier].pricing.batch();
            let body = respond::collect(state, &v, rx, Instant::now(), &pricing).await?;
            (v, body)
        }
    };
    let tier = &state.tiers[v.tier];
    let usage = LineUsage {
        model: tier.id.clone(),
        tier: tier.name.clone(),
        usage: body.usage(),
    };
    Ok((body.to_value(), usage))
}

/// A `/v1/moderations` line: free, like the endpoint (its usage record counts no tokens).
async fn execute_moderation(state: &Arc<AppState>, line: &BatchLine) -> Res<(Value, LineUsage)> {
    let request: Value = serde_json::from_str(&line.body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let m = crate::moderation::moderate(state, &request).await?;
    let tier = state.tiers.iter().find(|t| t.id == m.model);
    let usage = LineUsage {
        model: m.model.clone(),
        tier: tier.map_or_else(|| m.model.clone(), |t| t.name.clone()),
        usage: tandem_api::Usage::default(),
    };
    Ok((serde_json::to_value(m).unwrap_or_default(), usage))
}

/// A `/v1/embeddings` line, at the batch price.
async fn execute_embedding(state: &Arc<AppState>, line: &BatchLine) -> Res<(Value, LineUsage)> {
    let request: Value = serde_json::from_str(&line.body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let list = crate::embeddings::embed(state, &request, true).await?;
    let cost = list.usage.cost.clone();
    let usage = LineUsage {
        model: list.model.clone(),
        tier: "embeddings".into(),
        usage: tandem_api::Usage::new(list.usage.prompt_tokens, 0, 0, cost),
    };
    Ok((serde_json::to_value(list).unwrap_or_default(), usage))
}

/// A `/v1/responses` line: the Responses front door on the batch lane.
async fn execute_response(state: &Arc<AppState>, b: &BatchRecord, line: &BatchLine) -> Res<(Value, LineUsage)> {
    let caller = owner(state, b).await?;
    let request: Value = serde_json::from_str(&line.body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    match crate::responses::answer(state, &caller, request, crate::responses::Lane::Batch).await? {
        crate::responses::Answered::Done(done) => {
            let (response, chat) = *done;
            let tier = state
                .tiers
                .iter()
                .find(|t| t.id == chat.model)
                .map_or_else(|| chat.model.clone(), |t| t.name.clone());
            let usage = LineUsage {
                model: chat.model,
                tier,
                usage: chat.usage,
            };
            Ok((serde_json::to_value(response).unwrap_or_default(), usage))
        }
        // `answer` refuses both on the batch lane; never reached.
        crate::responses::Answered::Stream(_) | crate::responses::Answered::Queued(_) => Err(ApiError::invalid(
            "stream",
            "invalid_value",
            "Streaming and background are not available in a batch.",
        )),
    }
}

/// What a line's usage record needs of its response.
struct LineUsage {
    model: String,
    tier: String,
    usage: tandem_api::Usage,
}

/// Writes the output and error files from the stored results and ends the batch in `to`. With
/// `unfinished`, pending lines first get that error (`code`, `message`) as their result.
async fn finalize(
    state: &Arc<AppState>,
    b: &BatchRecord,
    from: &[BatchStatus],
    to: BatchStatus,
    unfinished: Option<(&'static str, &'static str)>,
) -> Res<()> {
    let (st, b2, from) = (state.clone(), b.clone(), from.to_vec());
    tokio::task::spawn_blocking(move || -> tandem_store::Result<()> {
        let (s, id) = (st.store.as_ref(), b2.id.as_str());
        if let Some((code, message)) = unfinished {
            for n in s.pending_lines(id)? {
                let custom_id = s.line(id, n)?.map(|l| l.custom_id).unwrap_or_default();
                let error = api::BatchLineError {
                    code: code.into(),
                    message: message.into(),
                };
                let r = LineResult {
                    line: n,
                    outcome: LineOutcome::Failed,
                    json: line_json(custom_id, None, Some(error)),
                };
                s.complete_line(id, n, &r, None)?;
            }
        }
        let (mut out, mut err) = (String::new(), String::new());
        for r in s.line_results(id)? {
            let dest = if r.outcome == LineOutcome::Completed {
                &mut out
            } else {
                &mut err
            };
            dest.push_str(&r.json);
            dest.push('\n');
        }
        // Ids derive from the batch's, so a finalize that runs again rewrites the same files.
        let suffix = id.trim_start_matches("batch_");
        let file = |kind: &str, text: &str| -> tandem_store::Result<Option<FileRecord>> {
            if text.is_empty() {
                return Ok(None);
            }
            let f = FileRecord {
                id: format!("file-{kind}-{suffix}"),
                bytes: text.len() as u64,
                created_at: unix_now(),
                filename: format!("{id}_{kind}.jsonl"),
                purpose: "batch_output".into(),
                expires_at: None,
                project_id: b2.project_id.clone(),
            };
            st.blobs.write(&f.id, text.as_bytes())?;
            Ok(Some(f))
        };
        let (o, e) = (file("output", &out)?, file("error", &err)?);
        s.finish_batch(id, &from, to, o.as_ref(), e.as_ref(), unix_now())?;
        Ok(())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(format!("finalizing {}: {e}", b.id)))?;
    tracing::info!(batch = %b.id, status = %to, "batch ended");
    Ok(())
}
