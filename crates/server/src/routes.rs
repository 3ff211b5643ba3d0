//! The HTTP routes.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use tandem_api as api;
use tandem_text::{chat, SpecialMode};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::params::{wrong_type, Fields};
use crate::pipeline::{self, Outcome};
use crate::request::Api;
use crate::respond;
use crate::state::{new_id, AppState};

pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_body_bytes;
    let origins = state.config.cors_origins.clone();
    let page = state.config.playground;
    let mut r = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{*id}", get(get_model))
        .route(
            "/v1/files",
            post(crate::files::upload)
                .get(crate::files::list)
                // Uploads have their own cap (checked while streaming to disk), plus room for the
                // multipart framing.
                .layer(DefaultBodyLimit::max(state.config.max_file_bytes as usize + (64 << 10))),
        )
        .route(
            "/v1/files/{id}",
            get(crate::files::retrieve).delete(crate::files::delete),
        )
        .route("/v1/files/{id}/content", get(crate::files::content))
        .route("/v1/batches", post(crate::batches::create).get(crate::batches::list))
        .route("/v1/batches/{id}", get(crate::batches::retrieve))
        .route("/v1/batches/{id}/cancel", post(crate::batches::cancel))
        .route("/v1/usage", get(crate::admin::usage))
        .route("/v1/keys", get(crate::admin::list_keys).post(crate::admin::create_key))
        .route(
            "/v1/organization/projects",
            get(crate::projects::list).post(crate::projects::create),
        )
        .route(
            "/v1/organization/projects/{id}",
            get(crate::projects::retrieve).post(crate::projects::modify),
        )
        .route("/v1/organization/projects/{id}/archive", post(crate::projects::archive))
        .route(
            "/v1/keys/{id}",
            post(crate::admin::update_key).delete(crate::admin::revoke_key),
        )
        .route("/v1/moderations", post(crate::moderation::create))
        .route("/v1/embeddings", post(crate::embeddings::create))
        .route(
            "/v1/audio/transcriptions",
            post(crate::audio::transcriptions).layer(DefaultBodyLimit::max(crate::audio::MAX_FILE_BYTES + (64 << 10))),
        )
        .route(
            "/v1/audio/translations",
            post(crate::audio::translations).layer(DefaultBodyLimit::max(crate::audio::MAX_FILE_BYTES + (64 << 10))),
        )
        .route("/v1/audio/speech", post(crate::speech::create))
        .route("/v1/responses", post(crate::responses::create))
        .route(
            "/v1/responses/{id}",
            get(crate::responses::retrieve).delete(crate::responses::delete),
        )
        .route("/v1/responses/{id}/input_items", get(crate::responses::input_items))
        .route("/v1/responses/{id}/cancel", post(crate::responses_background::cancel))
        .route("/perceive", post(crate::seeing::perceive))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/health", get(health))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/report", get(report))
        .merge(if page { crate::web::routes() } else { Router::new() })
        .route_layer(middleware::from_fn(label_route))
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), crate::auth::authenticate))
        .layer(middleware::from_fn_with_state(state.clone(), around))
        .with_state(state);
    if !origins.is_empty() {
        let allow = if origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
        };
        r = r.layer(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods(Any)
                .allow_headers(Any),
        );
    }
    r
}

/// The route a request matched (its path template), carried out on the response for `around`.
#[derive(Clone)]
struct RouteLabel(String);

async fn label_route(path: MatchedPath, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.extensions_mut().insert(RouteLabel(path.as_str().to_string()));
    resp
}

/// A client's `x-request-id`, kept when it is a sane token (≤ 128 visible ASCII characters).
fn client_request_id(req: &Request) -> Option<String> {
    let v = req.headers().get("x-request-id")?.to_str().ok()?;
    (!v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())).then(|| v.to_string())
}

/// Every response: an `x-request-id` (the client's, or a new one), the log line and the HTTP
/// metrics (by route template, so ids in paths do not make new series).
async fn around(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let id = client_request_id(&req).unwrap_or_else(|| new_id("req_"));
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let start = Instant::now();
    let mut resp = next.run(req).await;
    let s = resp.status();
    let ms = start.elapsed().as_millis() as u64;
    // Never the body: prompts and completions stay out of the log (see --log-content).
    tracing::info!(request_id = %id, %method, %path, status = s.as_u16(), ms, "request");
    let route = resp
        .extensions()
        .get::<RouteLabel>()
        .map_or("unmatched", |r| r.0.as_str());
    state
        .metrics
        .http(route, method.as_str(), s.as_u16(), start.elapsed().as_secs_f64());
    if let Ok(h) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", h);
    }
    resp
}

/// `GET /v1/report`: the tiers' comparison table as `tandem report --json` prints it (any key).
async fn report(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let Some(f) = state.report.clone() else {
        return Err(ApiError::not_found(
            "This server has no report: it was not started by `tandem serve`.",
        ));
    };
    let v = tokio::task::spawn_blocking(move || f())
        .await
        .map_err(|e| ApiError::internal(format!("report: {e}")))?;
    Ok(Json(v))
}

/// A response's cost in `x-tandem-cost` (USD, the shortest round-trip decimal).
pub(crate) fn set_cost(resp: &mut Response, cost: f64) {
    if let Ok(h) = axum::http::HeaderValue::from_str(&cost.to_string()) {
        resp.headers_mut().insert("x-tandem-cost", h);
    }
}

pub(crate) fn body(b: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    b.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(limit)
        } else {
            ApiError::bad_request(e.body_text())
        }
    })
}

/// The HTTP front door of chat and completions: the pipeline, then the outcome rendered as JSON
/// or a stream, with the routing and moderation headers.
async fn generate(
    state: Arc<AppState>,
    api: Api,
    caller: Caller,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Response {
    let start = Instant::now();
    let raw = match body(b, state.config.max_body_bytes) {
        Ok(raw) => raw,
        Err(e) => return e.into_response(),
    };
    let req = pipeline::Request {
        api,
        body: &raw,
        headers: Some(&headers),
        batch: false,
        background: false,
    };
    let (v, rx, route, moderation) = match pipeline::run(&state, &caller, req).await {
        Err(e) => return e.into_response(),
        Ok(Outcome::Refused { v, moderation }) => return respond::refusal(&state, &v, &moderation),
        Ok(Outcome::Generated {
            v,
            rx,
            route,
            moderation,
        }) => (v, rx, route, moderation),
    };
    let mut resp = if v.stream {
        respond::stream(state, v, rx, start)
    } else {
        respond::complete(state, v, rx, start).await
    };
    for (name, value) in [("x-tandem-moderation", moderation), ("x-tandem-route", route)] {
        if let Some(h) = value.and_then(|h| HeaderValue::from_str(&h).ok()) {
            resp.headers_mut().insert(name, h);
        }
    }
    resp
}

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Response {
    generate(state, Api::Chat, caller, headers, b).await
}

async fn completions(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Response {
    generate(state, Api::Completion, caller, headers, b).await
}

fn model_object(state: &AppState, t: &crate::state::Tier) -> api::Model {
    let p = &t.pricing;
    let mut input_modalities = vec!["text".to_string()];
    if !state.speech.is_empty() {
        input_modalities.push("audio".into());
    }
    if state.seer.is_some() {
        input_modalities.push("image".into());
    }
    api::Model {
        id: t.id.clone(),
        object: "model".into(),
        created: t.created,
        owned_by: "tandem".into(),
        tier: t.name.clone(),
        context_window: t.engine.config.ctx,
        parameters_name: t.engine.model.model.config.name.clone(),
        pricing: api::ModelPricing {
            unit: "USD per 1M tokens".into(),
            input: p.input,
            cached_input: p.cached_input,
            output: p.output,
        },
        input_modalities,
        vision: state.seer.as_ref().map(|s| s.describes()),
        aliases: {
            let mut a: Vec<String> = (state.config.aliases.iter())
                .filter(|(_, tier)| **tier == t.name || **tier == t.id)
                .map(|(alias, _)| alias.clone())
                .collect();
            a.sort();
            a
        },
    }
}

async fn list_models(State(state): State<Arc<AppState>>) -> Json<api::List<api::Model>> {
    let tiers = state.tiers.iter().map(|t| model_object(&state, t));
    let embedder = state.embedder.iter().map(|e| e.model_object());
    let speech = state.speech.iter().map(|s| s.model_object());
    let speaker = state.speaker.iter().map(|s| s.model_object());
    Json(api::List::new(
        tiers.chain(embedder).chain(speech).chain(speaker).collect(),
    ))
}

async fn get_model(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<api::Model>, ApiError> {
    if let Some(e) = state.embedder.as_ref().filter(|e| e.answers_to(&id)) {
        return Ok(Json(e.model_object()));
    }
    if crate::audio::Speech::answers_to(&id) {
        return Ok(Json(crate::audio::resolve(&state, &id)?.model_object()));
    }
    if let Some(sp) = state
        .speaker
        .as_ref()
        .filter(|_| crate::speech::Speaker::answers_to(&id))
    {
        return Ok(Json(sp.model_object()));
    }
    Ok(Json(model_object(&state, state.tier(&id)?)))
}

/// `{"model", "prompt"}` (plain text) or `{"model", "messages"}` (rendered with the chat template) →
/// `{"tokens", "count"}`.
async fn tokenize(
    State(state): State<Arc<AppState>>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<api::Tokenized>, ApiError> {
    let b = body(b, state.config.max_body_bytes)?;
    let v = Fields::parse(&b)?;
    let f = Fields::new(&v);
    f.check_known(&["model", "prompt", "messages", "add_generation_prompt"], false)?;
    let model = f.string("model")?.unwrap_or(state.tiers[0].name.as_str());
    let lm = &state.tier(model)?.engine.model;
    let tokens = match (f.string("prompt")?, f.get("messages")) {
        (Some(p), None) => lm.tokenizer.encode(p, SpecialMode::None),
        (None, Some(m)) => {
            let messages: Vec<tandem_text::ChatMessage> = serde_json::from_value(m.clone())
                .map_err(|e| ApiError::invalid("messages", "invalid_value", e.to_string()))?;
            // What the model sees, the operator's prompt included.
            let messages = crate::hierarchy::with_operator(
                messages,
                state.config.operator_prompt.as_deref(),
                state.config.tools_as_data,
            );
            let agp = f.bool("add_generation_prompt")?.unwrap_or(true);
            let pieces = lm
                .template
                .render(&messages, None, agp)
                .map_err(|e| ApiError::invalid("messages", "invalid_value", e.to_string()))?;
            chat::tokenize_pieces(&lm.tokenizer, &pieces)
        }
        _ => return Err(ApiError::bad_request("Give exactly one of 'prompt' or 'messages'.")),
    };
    let count = tokens.len();
    Ok(Json(api::Tokenized { tokens, count }))
}

async fn detokenize(
    State(state): State<Arc<AppState>>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<api::Detokenized>, ApiError> {
    let b = body(b, state.config.max_body_bytes)?;
    let v = Fields::parse(&b)?;
    let f = Fields::new(&v);
    f.check_known(&["model", "tokens"], false)?;
    let model = f.string("model")?.unwrap_or(state.tiers[0].name.as_str());
    let lm = &state.tier(model)?.engine.model;
    let vocab = lm.model.config.vocab;
    let toks = f.get("tokens").ok_or_else(|| ApiError::missing("tokens"))?;
    let Value::Array(a) = toks else {
        return Err(wrong_type("tokens", "an array of token ids", toks));
    };
    let ids: Vec<u32> = a
        .iter()
        .map(|x| x.as_u64().filter(|&t| (t as usize) < vocab).map(|t| t as u32))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            ApiError::invalid(
                "tokens",
                "invalid_value",
                format!("Token ids must be integers below {vocab}."),
            )
        })?;
    Ok(Json(api::Detokenized {
        prompt: String::from_utf8_lossy(&lm.tokenizer.decode_bytes(&ids)).into_owned(),
    }))
}

async fn health(State(state): State<Arc<AppState>>) -> Json<api::Health> {
    Json(api::Health {
        status: "ok".into(),
        models: state.tiers.iter().map(|t| t.id.clone()).collect(),
    })
}

/// Liveness for orchestrators: the process answers (restart it when this stops).
async fn livez() -> Json<Value> {
    Json(serde_json::json!({"status": "alive"}))
}

/// Readiness: the tiers are loaded (they are before the port opens), the store answers, and the
/// server is not draining. 503 otherwise, saying which, so a load balancer sends work elsewhere.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        let body = serde_json::json!({"status": "draining", "store": "unchecked"});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    match state.db(|s| s.has_keys()).await {
        Ok(_) => Json(serde_json::json!({"status": "ready", "store": "ok",
            "models": state.tiers.iter().map(|t| t.id.clone()).collect::<Vec<_>>()}))
        .into_response(),
        Err(e) => {
            let body = serde_json::json!({"status": "unavailable", "store": e.message});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(&state.tiers),
    )
        .into_response()
}

async fn unknown_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "Unknown request URL: {method} {}. Please check the URL for typos.",
        uri.path()
    ))
}

async fn wrong_method(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        ..ApiError::bad_request(format!("Method {method} is not allowed for {}.", uri.path()))
    }
}
