//! Who is calling: API keys, checked on every request but `/health`, `/livez`, `/readyz`, `/metrics`
//! and the playground's page and assets (the page then sends a key like any client).
//!
//! With no key in the store the server runs open (the CLI refuses to bind a non-loopback address
//! that way unless told `--insecure-no-auth`); once a key exists — even a revoked one, so revoking
//! every key locks the server rather than opening it — every request needs
//! `Authorization: Bearer tdm-…`. The key is looked up by its id part and its HMAC digest compared
//! in constant time; the key itself is never stored or logged.
//!
//! Every key belongs to a project (`Caller::project`): what a request reads or stores is scoped
//! to it, and another project's object answers 404 as if it did not exist. A caller of a server
//! running open has no project and sees only the objects of no project.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tandem_store::{KeyRecord, ProjectRecord};

use crate::error::ApiError;
use crate::limits::{duration_text, Limits};
use crate::state::AppState;

/// The authenticated caller, in the request's extensions.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// `None`: the server runs open.
    pub key: Option<KeyRecord>,
    /// The key's project (always there with a key).
    pub project: Option<ProjectRecord>,
}

impl Caller {
    pub fn key_id(&self) -> Option<String> {
        self.key.as_ref().map(|k| k.id.clone())
    }

    pub fn project_id(&self) -> Option<String> {
        self.project.as_ref().map(|p| p.id.clone())
    }

    /// Whether an object owned by `owner` is the caller's to see.
    pub fn owns(&self, owner: Option<&str>) -> bool {
        tandem_store::owned_by(owner, self.project.as_ref().map(|p| p.id.as_str()))
    }

    /// Who pays, for the request's records (no rate-limit charge: see `admit`).
    pub fn account(&self) -> crate::request::Account {
        crate::request::Account {
            key_id: self.key_id(),
            project_id: self.project_id(),
            charge: None,
        }
    }

    /// The engine's fair-queuing tenant: a hash of the project id (0 when the server runs open),
    /// so a customer with many keys gets one share.
    pub fn tenant(&self) -> u64 {
        tenant_of(self.project.as_ref().map(|p| p.id.as_str()))
    }

    pub fn limits(&self) -> Option<Limits> {
        let k = self.key.as_ref()?;
        (k.rpm.is_some() || k.tpm.is_some()).then_some(Limits { rpm: k.rpm, tpm: k.tpm })
    }

    /// The project's limits over all of its keys.
    pub fn project_limits(&self) -> Option<Limits> {
        let p = self.project.as_ref()?;
        (p.rpm.is_some() || p.tpm.is_some()).then_some(Limits { rpm: p.rpm, tpm: p.tpm })
    }

    /// 429 `insufficient_quota` once the key's or the project's recorded spend reaches its budget.
    pub fn check_budget(&self) -> Result<(), ApiError> {
        if let Some(k) = &self.key {
            if let Some(b) = k.budget.filter(|&b| k.spent >= b) {
                return Err(ApiError::insufficient_quota("key", b, k.spent));
            }
        }
        if let Some(p) = &self.project {
            if let Some(b) = p.budget.filter(|&b| p.spent >= b) {
                return Err(ApiError::insufficient_quota("project", b, p.spent));
            }
        }
        Ok(())
    }

    /// Admits a request estimated at `tokens` under the key's and then the project's per-minute
    /// limits: the charge to settle when it ends (`None` when no limit applies). A refusal by
    /// either takes back the other's charge.
    pub fn admit(
        &self,
        limiter: &Arc<crate::limits::RateLimiter>,
        tokens: u64,
    ) -> Result<Option<Arc<crate::limits::Charge>>, ApiError> {
        let scopes = [
            self.key.as_ref().map(|k| k.id.clone()).zip(self.limits()),
            self.project.as_ref().map(|p| p.id.clone()).zip(self.project_limits()),
        ];
        let mut tickets = Vec::new();
        for (scope, limits) in scopes.into_iter().flatten() {
            match limiter.admit(&scope, limits, tokens) {
                Ok(t) => tickets.push(t),
                Err(d) => {
                    tickets.iter().for_each(|t| limiter.release(t));
                    return Err(ApiError::rate_limited(&d));
                }
            }
        }
        Ok((!tickets.is_empty()).then(|| Arc::new(crate::limits::Charge::new(limiter.clone(), tickets))))
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
    // The key and its project in one store call: this runs on every request.
    let found = state
        .db(move |s| {
            let Some((rec, digest)) = s.key(&id)? else {
                return Ok(None);
            };
            let project = match &rec.project_id {
                Some(p) => s.project(p)?,
                None => None,
            };
            Ok(Some((rec, digest, project)))
        })
        .await?;
    let Some((rec, digest, project)) = found else {
        return Err(wrong());
    };
    if !state.keyring.verify(&key, &digest) {
        return Err(wrong());
    }
    if rec.revoked_at.is_some() {
        return Err(unauthorized(format!("The API key {} has been revoked.", masked(&key))));
    }
    if rec.project_id.is_none() {
        return Err(unauthorized(format!(
            "The API key {} belongs to no project.",
            masked(&key)
        )));
    }
    match project {
        Some(p) if p.archived_at.is_none() => Ok(Caller {
            key: Some(rec),
            project: Some(p),
        }),
        _ => Err(unauthorized(format!(
            "The project of the API key {} has been archived.",
            masked(&key)
        ))),
    }
}

/// Middleware: identifies the caller, then adds the `x-ratelimit-*` headers to the response.
pub async fn authenticate(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if matches!(path, "/health" | "/metrics" | "/livez" | "/readyz")
        || crate::web::is_public(path)
        || req.method() == axum::http::Method::OPTIONS
    {
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
