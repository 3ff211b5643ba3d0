//! The OpenAI-compatible HTTP server. It sees the engine only through `EngineHandle`.
//!
//! Layout
//! - `state`: the served tiers, settings, ids.
//! - `hierarchy`: the operator's system prompt first, the request's system/developer text framed below it.
//! - `error`: `ApiError`, the one error → status/JSON mapping.
//! - `params`: typed reads of request fields with OpenAI's messages.
//! - `pipeline`: the one path of a chat or completion request, from any front door (HTTP, batch
//!   line) to an `Outcome` the front door renders.
//! - `request`: validation of chat and completion requests into `ValidRequest`, bound to a tier;
//!   `messages`: chat messages and their content parts.
//! - `structured`: `response_format` → a grammar the engine enforces; `tools`: function calling
//!   (the request, its grammar, the engine's `EndCheck`); `tool_calls`: the calls read out of an
//!   answer, whole or as it streams (tags, and the tiers' own forms under `auto`).
//! - `responses`: the Responses API, a front door on the pipeline (chat messages in, output items
//!   out, stored per project); `responses_request`: a request → the chat request it asks for.
//! - `respond`: an `Outcome` → a JSON response, an SSE stream or a refusal, in `tandem_api`'s wire
//!   types; usage counted once there.
//! - `metrics`: Prometheus text exposition.
//! - `routes`: the router and the small endpoints.
//! - `auth`: API keys (the `Caller` of each request, with its project: the scope of everything it
//!   reads and stores) and the rate-limit headers; `limits`: the per-key and per-project
//!   sliding-window rate limiter.
//! - `admin`: keys over HTTP and usage aggregates (admin keys); `projects`: projects over HTTP.
//! - `files`: the Files API (uploads streamed to the blob directory).
//! - `batches`: the Batch API routes; `batch_worker`: the task that runs batches.
//! - `moderation`: `/v1/moderations` (the classifier is `tandem_safety::Moderator`); `guard`: the
//!   input moderation of chat and completion requests (refuse or flag, recorded); `output_guard`:
//!   output moderation, a filter over the engine's events that cuts a choice at a flagged window.
//! - `audio`: `/v1/audio/transcriptions` and `/translations` on Whisper (`tandem_audio`).
//! - `hearing`: chat `input_audio` parts transcribed into text before binding.
//! - `speech`: `/v1/audio/speech` on the Piper voice (`tandem_voice`).
//! - `seeing`: chat `image_url` parts seen by the perception stage (`tandem_vision`) and replaced
//!   by their blocks before binding; `image_fetch`: image URLs, only public addresses, pinned.
//! - `embeddings`: `/v1/embeddings` on the sentence encoder (`tandem_embed::Encoder`).
//! - `web`: the playground page at `/` and its embedded assets, with their security headers.

mod admin;
mod audio;
mod auth;
mod batch_worker;
mod batches;
mod embeddings;
mod error;
mod files;
mod guard;
mod hearing;
mod hierarchy;
mod image_fetch;
mod limits;
mod messages;
mod metrics;
mod moderation;
mod output_guard;
mod params;
mod pipeline;
mod projects;
mod request;
mod respond;
mod responses;
mod responses_background;
mod responses_request;
mod responses_stream;
mod router;
pub mod router_head;
mod routes;
mod seeing;
mod speech;
mod state;
mod structured;
mod tool_calls;
mod tools;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;

pub use admin::{key_object, usage_json};
pub use audio::{Speech, BASE_ID as SPEECH_BASE_ID, MODEL_ID as SPEECH_MODEL_ID};
pub use embeddings::{Embedder, MODEL_ID as EMBEDDING_MODEL_ID};
pub use guard::{ModerationPolicy, REFUSAL};
pub use image_fetch::ImageUrls;
pub use projects::project_object;
pub use router::AutoPolicy;
use routes::router;
pub use seeing::Seer;
pub use speech::{Speaker, VOICE_ID};
pub use state::{unix_now, AppState, Pricing, ServerConfig, Tier, DEFAULT_ALIASES};
pub use tools::ToolCalls;

/// Resolves when SIGTERM or Ctrl-C arrives.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Serves until SIGTERM or Ctrl-C, then stops accepting and lets in-flight requests finish, for at
/// most `drain`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    drain: std::time::Duration,
) -> std::io::Result<()> {
    batch_worker::spawn(state.clone());
    responses::spawn_sweeper(state.clone());
    let app = router(state.clone());
    let (sig_tx, sig_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown_signal().await;
        state.draining.store(true, std::sync::atomic::Ordering::SeqCst);
        eprintln!(
            "tandem: shutting down: no new requests; finishing those in flight (at most {}s)",
            drain.as_secs()
        );
        let _ = sig_tx.send(());
    };
    let server =
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(shutdown);
    let mut handle = tokio::spawn(async move { server.await });
    tokio::select! {
        r = &mut handle => r.unwrap_or_else(|e| Err(std::io::Error::other(e))),
        _ = async { if sig_rx.await.is_ok() { tokio::time::sleep(drain).await } else { std::future::pending::<()>().await } } => {
            eprintln!("tandem: requests still running after {}s; exiting", drain.as_secs());
            Ok(())
        }
    }
}

/// Makes ring rustls's process-wide crypto provider (TLS serving, image URLs, and every reqwest
/// client of the binary: features unify, so the CLI's clients need it too). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// As `serve`, over TLS (rustls) with a PEM certificate chain and private key.
pub async fn serve_tls(
    listener: std::net::TcpListener,
    cert: &std::path::Path,
    key: &std::path::Path,
    state: Arc<AppState>,
    drain: std::time::Duration,
) -> std::io::Result<()> {
    install_crypto_provider();
    batch_worker::spawn(state.clone());
    responses::spawn_sweeper(state.clone());
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await?;
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    let st = state.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        st.draining.store(true, std::sync::atomic::Ordering::SeqCst);
        eprintln!(
            "tandem: shutting down: no new requests; finishing those in flight (at most {}s)",
            drain.as_secs()
        );
        h.graceful_shutdown(Some(drain));
    });
    axum_server::from_tcp_rustls(listener, config)
        .handle(handle)
        .serve(router(state).into_make_service_with_connect_info::<SocketAddr>())
        .await
}
