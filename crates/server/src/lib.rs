//! The OpenAI-compatible HTTP server. It sees the engine only through `EngineHandle`.
//!
//! Layout
//! - `state`: the served tiers, settings, ids.
//! - `error`: `ApiError`, the one error → status/JSON mapping.
//! - `params`: typed reads of request fields with OpenAI's messages.
//! - `request`: validation of chat and completion requests into `ValidRequest`.
//! - `respond`: engine events → a JSON response or an SSE stream; usage counted once there.
//! - `metrics`: Prometheus text exposition.
//! - `routes`: the router and the small endpoints.

mod error;
mod metrics;
mod params;
mod request;
mod respond;
mod routes;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

pub use error::ApiError;
pub use routes::router;
pub use state::{AppState, ServerConfig, Tier};

/// Serves until SIGTERM or Ctrl-C, then stops accepting and lets in-flight requests finish, for at
/// most `drain`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    drain: std::time::Duration,
) -> std::io::Result<()> {
    let app = router(state);
    let (sig_tx, sig_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
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
