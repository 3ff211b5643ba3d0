//! The one request pipeline under every front door (HTTP chat and completions, batch lines):
//!
//! parse (the JSON object, once) → hear and see (audio and image parts become text) → bind to a tier (`request::bind`: validate, tokenise) →
//! route (`model: "auto"`: the router may bind again on its tier) → admit (budgets, rate-limit
//! charge released on drop, the key's moderation policy) → input guard (a `Decision`) → spend hold
//! (budgets, until the usage record) → submit (or the cascade, which binds the same object on the
//! large tier) → output filter → `Outcome`.
//!
//! Front doors only render the `Outcome` (JSON, SSE, a batch line). Policy never builds a
//! response here; usage is recorded where the response is rendered (`respond`), once.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::Value;
use tandem_engine::{EngineError, Event, Priority};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::guard::Decision;
use crate::params::Fields;
use crate::request::{bind, Api, ValidRequest};
use crate::state::AppState;

/// How a request came in.
pub struct Request<'a> {
    pub api: Api,
    /// The request body (JSON text).
    pub body: &'a [u8],
    /// HTTP headers (`x-tandem-quality` for routing); `None` for a batch line.
    pub headers: Option<&'a HeaderMap>,
    /// A batch line: batch priority, no streaming, no per-minute limits, no routing, and an
    /// overloaded engine is waited for instead of refused.
    pub batch: bool,
    /// A background response: batch priority and waiting while overloaded, like a batch line, but
    /// under the caller's per-minute limits.
    pub background: bool,
}

/// What the pipeline produced, for a front door to render.
pub enum Outcome {
    /// The input guard refused the request: nothing was generated. `moderation` is the
    /// `x-tandem-moderation` value.
    Refused { v: ValidRequest, moderation: String },
    /// The engine's events (output-filtered) for the request as finally bound.
    Generated {
        v: ValidRequest,
        rx: UnboundedReceiver<Event>,
        /// The `x-tandem-route` value of a `model: "auto"` request.
        route: Option<String>,
        /// The `x-tandem-moderation` value of an input flagged and let through.
        moderation: Option<String>,
    },
}

/// Runs one request from its body to an `Outcome`.
pub async fn run(state: &Arc<AppState>, caller: &Caller, req: Request<'_>) -> Result<Outcome, ApiError> {
    let body = Fields::parse(req.body)?;
    let body = crate::hearing::hear(state, caller, req.api, body).await?;
    let (body, image_blocks) = match req.api {
        Api::Chat => crate::seeing::see(state, caller, body).await?,
        _ => (body, Vec::new()),
    };
    let mut v = bind(state, req.api, &body, None)?;
    if req.batch && v.stream {
        return Err(ApiError::invalid(
            "stream",
            "invalid_value",
            "Streaming is not available in a batch.",
        ));
    }
    caller.check_budget()?;
    let route = match (v.auto && !req.batch, req.headers) {
        (true, Some(headers)) => Some(route(state, &mut v, &body, headers).await?),
        _ => None,
    };
    admit(state, caller, &mut v, req.batch)?;
    // Text read from images is data, like tool output: the attack detector reads it as such.
    v.tool_text.extend(image_blocks);
    if req.background {
        v.gen.priority = Priority::Batch;
    }
    let moderation = match crate::guard::check_input(state, &v).await? {
        Decision::Clear => None,
        Decision::Flagged(h) => Some(h),
        Decision::Blocked(h) => return Ok(Outcome::Refused { v, moderation: h }),
    };
    let held = hold_spend(state, caller, &v, req.batch).await?;
    let started = match route {
        Some(Routed { large: Some(large), .. }) => {
            crate::router::cascade(state, v, large, &body)
                .await
                .map(|(big, rx, out)| {
                    let header = crate::router::header(state, out.tier, out.reason, Some(out.detail));
                    (big, rx, Some(header))
                })
        }
        r => submit(state, &v, req.batch || req.background)
            .await
            .map(|rx| (v, rx, r.map(|r| r.header))),
    };
    let (v, rx, route) = match started {
        Ok(s) => s,
        Err(e) => {
            // Nothing ran, so no usage will end the hold: end it here.
            if let Some(id) = held {
                let _ = state.db(move |s| s.release_spend(&id)).await;
            }
            return Err(e);
        }
    };
    let rx = if v.moderation.output || v.moderation.redact {
        crate::output_guard::filter(state.clone(), &v, rx)
    } else {
        rx
    };
    Ok(Outcome::Generated {
        v,
        rx,
        route,
        moderation,
    })
}

/// The router's choice for a `model: "auto"` request.
struct Routed {
    /// The `x-tandem-route` value when no cascade runs.
    header: String,
    /// Run a cascade up to this (large) tier.
    large: Option<usize>,
}

/// Picks the tier of a `model: "auto"` request (asking the router head where the policy says
/// so), binding it again there when it is not the one it was validated on.
async fn route(state: &AppState, v: &mut ValidRequest, body: &Value, headers: &HeaderMap) -> Result<Routed, ApiError> {
    let q = crate::router::quality(headers)?;
    let r = crate::router::choose(state, q, v.stream, v.gen.n);
    if r.tier != v.tier {
        *v = bind(state, v.api, body, Some(r.tier))?;
    }
    let (tier, reason, detail) = match r.head {
        Some(head) => crate::router::ask_head(state, v, head).await,
        None => (r.tier, r.reason, None),
    };
    if tier != v.tier {
        *v = bind(state, v.api, body, Some(tier))?;
    }
    Ok(Routed {
        header: crate::router::header(state, tier, reason, detail),
        large: r.cascade,
    })
}

/// Who pays and under which rules: the account, fair-queuing tenant, priority, the key's
/// moderation policy, and (interactive requests) the per-minute charge, estimated as the prompt
/// plus the most the answer may take and settled when the response ends.
fn admit(state: &AppState, caller: &Caller, v: &mut ValidRequest, batch: bool) -> Result<(), ApiError> {
    v.account = caller.account();
    v.gen.tenant = caller.tenant();
    if batch || v.flex {
        v.gen.priority = Priority::Batch;
    }
    if let Some(spec) = caller.key.as_ref().and_then(|k| k.moderation.as_deref()) {
        // Validated when the key was set; a bad value left in the store falls back to the server's.
        v.moderation = v.moderation.overridden(spec).unwrap_or(v.moderation);
    }
    if !batch {
        let estimate = (v.gen.prompt.len() + v.gen.max_tokens * v.gen.n) as u64;
        v.account.charge = caller.admit(&state.limiter, estimate)?;
    }
    Ok(())
}

/// Holds the request's largest possible cost (its prompt and all of `max_tokens` for each
/// choice) against its key's and project's budgets, where they have one, until its usage is
/// recorded under the same id — so requests of one key running at once overspend a budget by at
/// most one request's cost, on one server or many. Batch lines are checked when their batch is
/// created. `Some(id)` when a hold was taken.
async fn hold_spend(
    state: &Arc<AppState>,
    caller: &Caller,
    v: &ValidRequest,
    batch: bool,
) -> Result<Option<String>, ApiError> {
    let budgeted = caller.key.as_ref().is_some_and(|k| k.budget.is_some())
        || caller.project.as_ref().is_some_and(|p| p.budget.is_some());
    if batch || !budgeted {
        return Ok(None);
    }
    let (.., amount) = crate::respond::price(state, v).cost(v.gen.prompt.len(), 0, v.gen.max_tokens * v.gen.n);
    let h = tandem_store::SpendHold {
        id: v.id.clone(),
        key_id: caller.key_id(),
        project_id: caller.project_id(),
        amount,
        created_at: crate::state::unix_now(),
    };
    match state.db(move |s| s.hold_spend(&h)).await? {
        None => Ok(Some(v.id.clone())),
        Some(r) => Err(ApiError::insufficient_quota(r.scope, r.budget, r.committed)),
    }
}

/// Hands the request to its tier's engine. A batch line waits while the engine is overloaded (not
/// the line's fault); an interactive request gets the 429 at once.
async fn submit(state: &AppState, v: &ValidRequest, batch: bool) -> Result<UnboundedReceiver<Event>, ApiError> {
    loop {
        match state.tiers[v.tier].engine.submit(v.gen.clone()) {
            Ok(rx) => return Ok(rx),
            Err(EngineError::Overloaded { .. }) if batch => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => return Err(e.into()),
        }
    }
}
