//! The input guard of chat and completion requests: before any generation the user's text is
//! moderated, and the user's text and the tool results are read by the prompt-attack head
//! (jailbreaks, injections; category `prompt-attack`). A flagged input is refused (`block`: OpenAI's
//! `message.refusal`, no tokens generated or charged) or let through with an `x-tandem-moderation`
//! header (`flag`). Either way the decision is recorded in the store with its categories — the text
//! only when the operator asks for it.

use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tandem_safety::Verdict;

use crate::error::ApiError;
use crate::request::{Api, ValidRequest};
use crate::state::{unix_now, AppState};

/// What a refused request gets as the assistant's refusal.
pub const REFUSAL: &str = "I can't help with that request.";

/// What the chat and completion routes do with a request's moderation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModerationPolicy {
    /// Moderate the user's text before generating.
    pub input: bool,
    /// Moderate the generated text, window by window (`output_guard`).
    pub output: bool,
    /// Look for jailbreaks and prompt injections in the user's messages.
    pub attack_user: bool,
    /// Look for prompt injections in tool results.
    pub attack_tool: bool,
    /// Refuse flagged requests (else only flag them).
    pub block: bool,
    /// Keep the flagged text in the store's moderation record.
    pub log_text: bool,
    /// Replace secrets and personal data in generated text (`output_guard`).
    pub redact: bool,
}

impl ModerationPolicy {
    /// This policy with a key's override: `none`, `input`, `output` or `both`, optionally with
    /// `+attacks` (prompt-attack detection on the user's messages and tool results; without it the
    /// server's setting stays), optionally followed by `:block` or `:flag` (text logging and
    /// redaction stay the server's). E.g. `both+attacks:block`.
    pub fn overridden(self, spec: &str) -> Result<Self, String> {
        let (mode, action) = match spec.split_once(':') {
            Some((m, a)) => (m, Some(a)),
            None => (spec, None),
        };
        let (mode, attacks) = match mode.strip_suffix("+attacks") {
            Some(m) => (m, true),
            None => (mode, false),
        };
        let (input, output) = match mode {
            "none" => (false, false),
            "input" => (true, false),
            "output" => (false, true),
            "both" => (true, true),
            _ => {
                return Err(format!(
                    "moderation {spec:?}: expected none, input, output or both, optionally +attacks, \
                     optionally :block or :flag"
                ))
            }
        };
        let block = match action {
            None => self.block,
            Some("block") => true,
            Some("flag") => false,
            Some(_) => return Err(format!("moderation {spec:?}: the action is :block or :flag")),
        };
        Ok(Self {
            input,
            output,
            block,
            attack_user: self.attack_user || attacks,
            attack_tool: self.attack_tool || attacks,
            ..self
        })
    }
}

/// The outcome of the input guard.
pub enum InputCheck {
    /// Not moderated, or nothing found.
    Clear,
    /// Flagged and let through: the header value to add.
    Flagged(String),
    /// Flagged and refused: the response to send instead.
    Blocked(Response),
}

/// The category a detected prompt attack is recorded and reported under.
pub const ATTACK_CATEGORY: &str = "prompt-attack";

/// Moderates the request's user text and looks for prompt attacks in it and in tool results, as
/// the policy says.
pub async fn check_input(state: &Arc<AppState>, v: &ValidRequest) -> Result<InputCheck, ApiError> {
    let policy = v.moderation;
    if !(policy.input || policy.attack_user || policy.attack_tool) {
        return Ok(InputCheck::Clear);
    }
    let moderator = state.moderator.as_ref().ok_or_else(|| {
        ApiError::overloaded(
            "This key's policy needs moderation, which needs the mini tier, and this server does not serve it.",
        )
    })?;
    let failed = |e: tandem_safety::ModerationError| ApiError::internal(format!("moderation: {e}"));
    let mut categories: Vec<&'static str> = Vec::new();
    let mut flagged_text = Vec::new();
    if policy.input {
        let mut verdict: Option<Verdict> = None;
        for text in &v.user_text {
            let r = moderator.classify(text).await.map_err(failed)?;
            if r.flagged {
                flagged_text.push(text.as_str());
            }
            verdict = Some(match verdict {
                None => r,
                Some(acc) => acc.merge(r),
            });
        }
        if let Some(verdict) = verdict.filter(|v| v.flagged) {
            categories = verdict.flagged_categories();
        }
    }
    let attack_texts = v
        .user_text
        .iter()
        .filter(|_| policy.attack_user)
        .chain(v.tool_text.iter().filter(|_| policy.attack_tool));
    let mut attacked = false;
    for text in attack_texts {
        if moderator
            .detect_attack(text)
            .await
            .map_err(failed)?
            .is_some_and(|a| a.flagged)
        {
            attacked = true;
            if !flagged_text.contains(&text.as_str()) {
                flagged_text.push(text.as_str());
            }
        }
    }
    if attacked {
        categories.push(ATTACK_CATEGORY);
    }
    if categories.is_empty() {
        return Ok(InputCheck::Clear);
    }
    let action = if policy.block { "blocked" } else { "flagged" };
    let request_id = v.id.clone();
    let event = tandem_store::ModerationEvent {
        created_at: unix_now(),
        request_id: request_id.clone(),
        key_id: v.account.key_id.clone(),
        project_id: v.account.project_id.clone(),
        model: state.tiers[v.tier].id.clone(),
        direction: "input".into(),
        action: action.into(),
        categories: categories.iter().map(|c| c.to_string()).collect(),
        text: policy.log_text.then(|| flagged_text.join("\n")),
    };
    state.db(move |s| s.insert_moderation(&event)).await?;
    state.metrics.moderation(action);
    let header = format!("{action}; direction=input; categories={}", categories.join(","));
    if !policy.block {
        return Ok(InputCheck::Flagged(header));
    }
    let mut resp = refusal(state, v, request_id);
    if let Ok(h) = axum::http::HeaderValue::from_str(&header) {
        resp.headers_mut().insert("x-tandem-moderation", h);
    }
    Ok(InputCheck::Blocked(resp))
}

/// The refused answer, streamed or not: one choice per requested `n`, the refusal in
/// `message.refusal` (chat) or an empty text with `finish_reason: "content_filter"` (completions,
/// which have no refusal field); no tokens generated, none charged.
fn refusal(state: &AppState, v: &ValidRequest, id: String) -> Response {
    let t = &state.tiers[v.tier];
    let created = unix_now();
    let usage = json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0,
                       "prompt_tokens_details": {"cached_tokens": 0},
                       "cost": {"input": 0.0, "cached_input": 0.0, "output": 0.0, "total": 0.0}});
    let chat = v.api == Api::Chat;
    let choice = |i: usize, chunk: bool| -> Value {
        match (chat, chunk) {
            (true, false) => json!({"index": i, "message": {"role": "assistant", "content": null, "refusal": REFUSAL},
                                    "logprobs": null, "finish_reason": "stop"}),
            (true, true) => json!({"index": i, "delta": {"role": "assistant", "content": null, "refusal": REFUSAL},
                                   "logprobs": null, "finish_reason": "stop"}),
            (false, _) => json!({"index": i, "text": "", "logprobs": null, "finish_reason": "content_filter"}),
        }
    };
    let object = match (chat, v.stream) {
        (true, false) => "chat.completion",
        (true, true) => "chat.completion.chunk",
        (false, _) => "text_completion",
    };
    let n = v.gen.n;
    let base = json!({"id": id, "object": object, "created": created, "model": t.id,
                      "system_fingerprint": t.fingerprint});
    if !v.stream {
        let mut body = base;
        body["choices"] = Value::Array((0..n).map(|i| choice(i, false)).collect());
        body["usage"] = usage;
        let mut resp = axum::Json(body).into_response();
        resp.headers_mut()
            .insert("x-tandem-cost", axum::http::HeaderValue::from_static("0"));
        return resp;
    }
    let mut events: Vec<Result<SseEvent, Infallible>> = Vec::new();
    for i in 0..n {
        let mut c = base.clone();
        c["choices"] = json!([choice(i, true)]);
        events.push(Ok(SseEvent::default().data(c.to_string())));
    }
    if v.include_usage {
        let mut c = base.clone();
        c["choices"] = json!([]);
        c["usage"] = usage;
        events.push(Ok(SseEvent::default().data(c.to_string())));
    }
    events.push(Ok(SseEvent::default().data("[DONE]")));
    Sse::new(tokio_stream::iter(events)).into_response()
}

#[cfg(test)]
mod tests {
    use super::ModerationPolicy;

    #[test]
    fn a_keys_policy_overrides_moderation_and_can_add_attack_detection() {
        let server = ModerationPolicy {
            output: true,
            redact: true,
            ..Default::default()
        };
        let p = server.overridden("input:block").unwrap();
        assert!(p.input && !p.output && p.block && p.redact && !p.attack_user && !p.attack_tool);
        let p = server.overridden("both+attacks:flag").unwrap();
        assert!(p.input && p.output && !p.block && p.attack_user && p.attack_tool);
        let p = server.overridden("none+attacks").unwrap();
        assert!(!p.input && !p.output && p.attack_user && p.attack_tool);
        let with_attacks = ModerationPolicy {
            attack_user: true,
            ..server
        };
        assert!(
            with_attacks.overridden("none").unwrap().attack_user,
            "the server's setting stays"
        );
        for bad in ["sideways", "both+attack", "+attacks", "input:drop"] {
            assert!(server.overridden(bad).is_err(), "{bad}");
        }
    }
}
