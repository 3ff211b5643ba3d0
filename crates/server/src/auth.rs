//! Who is calling: API keys, checked on every request but `/health` and `/metrics`.
//!
//! With no key in the store the server runs open (the CLI refuses to bind a non-loopback address
//! that way unless told `--insecure-no-auth`); once a key exists — even a revoked one, so revoking
//! every key locks the server rather than opening it — every request needs
//! `Authorization: Bearer tdm-…`. The key is looked up by its id part and its HMAC digest compared
//! in constant time; the key itself is never stored or logged.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tandem_store::KeyRecord;

use crate::error::ApiError;
use crate::limits::{duration_text, Limits};
use crate::state::AppState;

/// The authenticated caller, in the request's extensions.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// `None`: the server runs open.
    pub key: Option<KeyRecord>,
}

impl Caller {
    pub fn key_id(&self) -> Option<String> {
        self.key.as_ref().map(|k| k.id.clone())
    }

    /// The engine's fair-queuing tenant: a hash of the key id (0 when the server runs open).
    pub fn tenant(&self) -> u64 {
        tenant_of(self.key.as_ref().map(|k| k.id.as_str()))
    }

    pub fn limits(&self) -> Option<Limits> {
        let k = self.key.as_ref()?;
        (k.rpm.is_some() || k.tpm.is_some()).then_some(Limits { rpm: k.rpm, tpm: k.tpm })
    }

    /// 429 `insufficient_quota` once the key's recorded spend reaches its budget.
    pub fn check_budget(&self) -> Result<(), ApiError> {
        match &self.key {
            Some(k) if k.budget.is_some_and(|b| k.spent >= b) => {
                Err(ApiError::insufficient_quota(k.budget.unwrap_or(0.0), k.spent))
            }
            _ => Ok(()),
        }
    }

    /// Key management and usage reports need an admin key (or an open server).
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match &self.key {
            Some(k) if !k.admin => Err(ApiError {
                status: StatusCode::FORBIDDEN,
                code: Some("insufficient_permissions"),
                ..ApiError::bad_request("This endpoint needs an admin key (tandem keys create --admin).")
            }),
            _ => Ok(()),
        }
    }
}

fn unauthorized(message: String) -> ApiError {
    ApiError {
        status: StatusCode::UNAUTHORIZED,
        code: Some("invalid_api_key"),
        ..ApiError::bad_request(message)
    }
}

/// What a log or an error may show of a presented key.
fn masked(key: &str) -> String {
    let n = key.chars().count();
    if n <= 12 {
        return "****".into();
    }
    let head: String = key.chars().take(8).collect();
    let tail: String = key.chars().skip(n - 4).collect();
    format!("{head}****{tail}")
}

async fn identify(state: &Arc<AppState>, bearer: Option<String>) -> Result<Caller, ApiError> {
    if !state.db(|s| s.has_keys()).await? {
        return Ok(Caller::default());
    }
    let Some(key) = bearer else {
        return Err(unauthorized(
            "You didn't provide an API key. You need to provide your API key in an Authorization header using \
             Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                .into(),
        ));
    };
    let wrong = || unauthorized(format!("Incorrect API key provided: {}.", masked(&key)));
    let Some(id) = tandem_store::key_id(&key) else {
        return Err(wrong());
    };
    let Some((rec, digest)) = state.db(move |s| s.key(&id)).await? else {
        return Err(wrong());
    };
    if !state.keyring.verify(&key, &digest) {
        return Err(wrong());
    }
    if rec.revoked_at.is_some() {
        return Err(unauthorized(format!("The API key {} has been revoked.", masked(&key))));
    }
    Ok(Caller { key: Some(rec) })
}

/// Middleware: identifies the caller, then adds the `x-ratelimit-*` headers to the response.
pub async fn authenticate(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/health" || path == "/metrics" || req.method() == axum::http::Method::OPTIONS {
        return next.run(req).await;
    }
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .map(|k| k.trim().to_string());
    let caller = match identify(&state, bearer).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let limited = caller.key.as_ref().zip(caller.limits()).map(|(k, l)| (k.id.clone(), l));
    req.extensions_mut().insert(caller);
    let mut resp = next.run(req).await;
    if let Some((id, l)) = limited {
        let s = state.limiter.snapshot(&id, l);
        let h = resp.headers_mut();
        let mut put = |name: &'static str, v: String| {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(name, v);
            }
        };
        if let Some(rpm) = l.rpm {
            put("x-ratelimit-limit-requests", rpm.to_string());
            put("x-ratelimit-remaining-requests", s.requests_remaining.to_string());
            put("x-ratelimit-reset-requests", duration_text(s.requests_reset));
        }
        if let Some(tpm) = l.tpm {
            put("x-ratelimit-limit-tokens", tpm.to_string());
            put("x-ratelimit-remaining-tokens", s.tokens_remaining.to_string());
            put("x-ratelimit-reset-tokens", duration_text(s.tokens_reset));
        }
    }
    resp
}

/// FNV-1a of a key id; 0 for none.
pub fn tenant_of(key_id: Option<&str>) -> u64 {
    key_id.map_or(0, |id| {
        id.bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
            })
            .max(1)
    })
}
