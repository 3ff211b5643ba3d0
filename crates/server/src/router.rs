//! `model: "auto"`: the server picks the tier per request.
//!
//! - `x-tandem-quality: high` → the large tier; `low` → the small tier (reason `quality-high` /
//!   `quality-low`).
//! - `balanced` (the default), policy `head` (the default): before anything is generated, the
//!   small tier embeds the request's routing text (`router_head::routing_text`: tool names and
//!   the user's text) and the router head predicts whether each tier's answer would pass; the
//!   request goes to the large tier when the predicted gain is above the head's threshold
//!   (`head`, with the probabilities in the header). Streams and `n` > 1 are routed the same
//!   way. A request without user text goes to the small tier (`no-text`). The head reads the
//!   mini's embeddings: with another small tier the cascade decides instead.
//! - `balanced`, policy `cascade` (`--auto-policy cascade`), one non-streamed choice: the small
//!   tier answers, and the answer is kept when the small model was confident in it — the mean
//!   over its tokens of the log-probability of the most likely token at least
//!   `ServerConfig::auto_threshold` — or else the large tier answers instead (`confident` /
//!   `low-confidence`); streams and `n` > 1 go to the small tier (`stream`).
//! - Only one tier served → that tier (`only-tier`).
//!
//! "Small" and "large" are the served tiers with the lowest and highest output price. The response's
//! `model` is the tier that answered, and `x-tandem-route` says which and why. `tandem eval route`
//! measures both policies on held-out items.

use axum::http::HeaderMap;
use tandem_engine::Event;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::error::ApiError;
use crate::request::{bind, ValidRequest};
use crate::router_head::{routing_text, RouterHead};
use crate::state::AppState;

/// The model name that asks for routing.
pub const AUTO: &str = "auto";

/// Default escalation threshold on the small tier's mean token log-probability (see
/// `tandem eval route`).
pub const DEFAULT_THRESHOLD: f64 = -0.068;

/// How `balanced` requests are routed (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoPolicy {
    #[default]
    Head,
    Cascade,
}

impl std::str::FromStr for AutoPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "head" => Ok(Self::Head),
            "cascade" => Ok(Self::Cascade),
            _ => Err(format!("{s:?}: expected head or cascade")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quality {
    High,
    Balanced,
    Low,
}

/// The `x-tandem-quality` header (absent: balanced); a bad value is a 400 naming the header.
pub fn quality(headers: &HeaderMap) -> Result<Quality, ApiError> {
    let Some(h) = headers.get("x-tandem-quality") else {
        return Ok(Quality::Balanced);
    };
    match h.to_str().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Ok("high") => Ok(Quality::High),
        Ok("balanced") => Ok(Quality::Balanced),
        Ok("low") => Ok(Quality::Low),
        _ => Err(ApiError::invalid(
            "x-tandem-quality",
            "invalid_value",
            format!(
                "Invalid value for header 'x-tandem-quality': {:?}. Supported values are: 'high', 'balanced' and 'low'.",
                String::from_utf8_lossy(h.as_bytes())
            ),
        )),
    }
}

/// The served tiers with the lowest and the highest output price (small, large).
pub fn small_and_large(state: &AppState) -> (usize, usize) {
    let by_price = |a: &usize, b: &usize| {
        let (pa, pb) = (&state.tiers[*a].pricing, &state.tiers[*b].pricing);
        pa.output.total_cmp(&pb.output).then(pa.input.total_cmp(&pb.input))
    };
    let idx = 0..state.tiers.len();
    let small = idx.clone().min_by(by_price).expect("at least one tier");
    let large = idx.max_by(by_price).expect("at least one tier");
    (small, large)
}

/// Where a request goes first.
#[derive(Debug, Clone)]
pub struct Route {
    pub tier: usize,
    pub reason: &'static str,
    /// Answer with `tier` (the small one), then escalate to `large` if it was not confident.
    pub cascade: Option<usize>,
    /// Ask the router head whether to send the request to `large` instead of `tier` (the small one).
    pub head: Option<(&'static RouterHead, usize)>,
}

/// The routing decision before generation (see the module docs).
pub fn choose(state: &AppState, quality: Quality, stream: bool, n: usize) -> Route {
    let (small, large) = small_and_large(state);
    let to = |tier, reason| Route {
        tier,
        reason,
        cascade: None,
        head: None,
    };
    if small == large {
        return to(small, "only-tier");
    }
    let asked_head = (state.config.auto_policy == AutoPolicy::Head)
        .then(|| head(state))
        .flatten();
    match quality {
        Quality::High => to(large, "quality-high"),
        Quality::Low => to(small, "quality-low"),
        // Without a head for the small tier, the cascade decides.
        Quality::Balanced if asked_head.is_some() => Route {
            head: asked_head.map(|h| (h, large)),
            ..to(small, "head")
        },
        Quality::Balanced if stream || n > 1 => to(small, "stream"),
        Quality::Balanced => Route {
            cascade: Some(large),
            ..to(small, "cascade")
        },
    }
}

/// The router head, when it reads the small tier's embeddings.
fn head(state: &AppState) -> Option<&'static RouterHead> {
    let small = &state.tiers[small_and_large(state).0];
    let head = RouterHead::builtin().ok()?;
    head.fits(&small.id, small.engine.model.model.config.dim)
        .then_some(head)
}

/// The head's choice for `v` (bound on the small tier): the tier, the reason and the header's
/// detail. The small tier embeds the routing text between two engine steps; if it cannot, the
/// small tier answers (`head-error`), as it would have without a router.
pub async fn ask_head(
    state: &AppState,
    v: &ValidRequest,
    (head, large): (&'static RouterHead, usize),
) -> (usize, &'static str, Option<String>) {
    let names: Vec<&str> = v.tools.as_ref().map(|d| d.names().collect()).unwrap_or_default();
    let text = routing_text(names, &v.user_text);
    let engine = &state.tiers[v.tier].engine;
    let tokens = engine.model.tokenizer.encode(&text, tandem_text::SpecialMode::None);
    if tokens.is_empty() {
        return (v.tier, "no-text", None);
    }
    let embedding = match engine.embed(tokens) {
        Ok(rx) => rx.await.ok().and_then(Result::ok),
        Err(_) => None,
    };
    let Some(embedding) = embedding else {
        return (v.tier, "head-error", None);
    };
    let p = head.predict(&embedding);
    let detail = format!("p_small={:.3}; p_large={:.3}", p.small, p.large);
    (if p.escalate { large } else { v.tier }, "head", Some(detail))
}

/// The `x-tandem-route` header value: `TIER; reason=WHY` (plus the cascade's numbers).
pub fn header(state: &AppState, tier: usize, reason: &str, detail: Option<String>) -> String {
    match detail {
        Some(d) => format!("{}; reason={reason}; {d}", state.tiers[tier].name),
        None => format!("{}; reason={reason}", state.tiers[tier].name),
    }
}

/// What the cascade did, for the `x-tandem-route` header.
pub struct CascadeOutcome {
    pub tier: usize,
    pub reason: &'static str,
    pub detail: String,
}

/// Runs the cascade: the small tier (`v.tier`) answers in full; if the mean log-probability of its
/// tokens is at least the threshold its events are replayed as the answer, else its attempt is
/// recorded as usage (it was paid for) and the large tier answers the same request (bound again
/// on it, with the same id, account and moderation). Returns the request and the events the
/// response is built from.
pub async fn cascade(
    state: &std::sync::Arc<AppState>,
    v: ValidRequest,
    large: usize,
    body: &serde_json::Value,
) -> Result<(ValidRequest, UnboundedReceiver<Event>, CascadeOutcome), ApiError> {
    let threshold = state.config.auto_threshold;
    let wanted = v.gen.top_logprobs;
    let mut gen = v.gen.clone();
    // The signal is the log-probability of the most likely token at each step — the chosen one
    // when decoding greedily (what `tandem eval route` tuned on), and independent of sampling
    // luck at temperature > 0.
    gen.top_logprobs = Some(wanted.unwrap_or(0).max(1));
    let start = std::time::Instant::now();
    let mut rx = state.tiers[v.tier].engine.submit(gen)?;
    let (mut events, mut sum, mut n) = (Vec::new(), 0f64, 0usize);
    let (mut cached, mut completion, mut ended) = (0, 0, false);
    while let Some(mut e) = rx.recv().await {
        match &mut e {
            Event::Token { logprobs, .. } => {
                if let Some(l) = logprobs.as_mut() {
                    sum += l.top.first().map_or(l.chosen.logprob, |t| t.logprob) as f64;
                    n += 1;
                    l.top.truncate(wanted.unwrap_or(0));
                }
                if wanted.is_none() {
                    *logprobs = None;
                }
            }
            Event::Prefilled { cached_tokens, .. } => cached = *cached_tokens,
            Event::Finished { completion_tokens, .. } => {
                completion = *completion_tokens;
                ended = true;
            }
            Event::TimedOut | Event::Failed(_) => ended = false,
        }
        let last = matches!(e, Event::Finished { .. } | Event::TimedOut | Event::Failed(_));
        events.push(e);
        if last {
            break;
        }
    }
    let mean = if n > 0 { sum / n as f64 } else { 0.0 };
    let detail = format!("mean_logprob={mean:.4}; threshold={threshold}");
    if !ended || mean >= threshold {
        let (tx, replay) = tokio::sync::mpsc::unbounded_channel();
        for e in events {
            let _ = tx.send(e);
        }
        let tier = v.tier;
        let reason = if ended { "confident" } else { "small-tier-failed" };
        return Ok((v, replay, CascadeOutcome { tier, reason, detail }));
    }
    crate::respond::record_attempt(state, &v, start, cached, completion);
    let mut big = bind(state, v.api, body, Some(large))?;
    big.id = v.id.clone();
    big.account = v.account.clone();
    big.moderation = v.moderation;
    big.gen.tenant = v.gen.tenant;
    big.gen.priority = v.gen.priority;
    let rx = state.tiers[large].engine.submit(big.gen.clone())?;
    Ok((
        big,
        rx,
        CascadeOutcome {
            tier: large,
            reason: "low-confidence",
            detail,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_header_values() {
        let mut h = HeaderMap::new();
        assert_eq!(quality(&h).unwrap(), Quality::Balanced);
        h.insert("x-tandem-quality", "HIGH".parse().unwrap());
        assert_eq!(quality(&h).unwrap(), Quality::High);
        h.insert("x-tandem-quality", "low".parse().unwrap());
        assert_eq!(quality(&h).unwrap(), Quality::Low);
        h.insert("x-tandem-quality", "best".parse().unwrap());
        let e = quality(&h).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("x-tandem-quality"));
    }
}
