//! The input guard of chat and completion requests: before any generation the user's text is
//! moderated, and the user's text and the tool results are read by the prompt-attack head
//! (jailbreaks, injections; category `prompt-attack`). A flagged input is refused (`block`: OpenAI's
//! `message.refusal`, no tokens generated or charged) or let through with an `x-tandem-moderation`
//! header (`flag`). Either way the decision is recorded in the store with its categories — the text
//! only when the operator asks for it.

use std::sync::Arc;

use tandem_safety::Verdict;

use crate::error::ApiError;
use crate::request::ValidRequest;
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

/// The input guard's decision; each front door renders it (a refusal in its own shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not moderated, or nothing found.
    Clear,
    /// Flagged and let through: the `x-tandem-moderation` value.
    Flagged(String),
    /// Flagged and refused: the `x-tandem-moderation` value; no tokens are generated.
    Blocked(String),
}

/// Who a moderation record names: the request, its caller and the model.
#[derive(Debug, Clone)]
pub struct Subject {
    request_id: String,
    key_id: Option<String>,
    project_id: Option<String>,
    model: String,
}

impl Subject {
    pub fn of(state: &AppState, v: &ValidRequest) -> Self {
        Self {
            request_id: v.id.clone(),
            key_id: v.account.key_id.clone(),
            project_id: v.account.project_id.clone(),
            model: state.tiers[v.tier].id.clone(),
        }
    }

    /// Stores a moderation decision (`direction` input or output, `action` flagged or blocked) with
    /// its categories (and the text, when the operator asks for it), and counts it.
    pub async fn record(
        &self,
        state: &Arc<AppState>,
        direction: &'static str,
        action: &'static str,
        categories: Vec<String>,
        text: Option<String>,
    ) -> Result<(), ApiError> {
        let event = tandem_store::ModerationEvent {
            created_at: unix_now(),
            request_id: self.request_id.clone(),
            key_id: self.key_id.clone(),
            project_id: self.project_id.clone(),
            model: self.model.clone(),
            direction: direction.into(),
            action: action.into(),
            categories,
            text,
        };
        // Counted as decided, whether or not the record can be written.
        state.metrics.moderation(direction, action);
        state.db(move |s| s.insert_moderation(&event)).await?;
        Ok(())
    }
}

/// The category a detected prompt attack is recorded and reported under.
pub const ATTACK_CATEGORY: &str = "prompt-attack";

/// Moderates the request's user text and looks for prompt attacks in it and in tool results, as
/// the policy says.
pub async fn check_input(state: &Arc<AppState>, v: &ValidRequest) -> Result<Decision, ApiError> {
    let policy = v.moderation;
    if !(policy.input || policy.attack_user || policy.attack_tool) {
        return Ok(Decision::Clear);
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
        return Ok(Decision::Clear);
    }
    let action = if policy.block { "blocked" } else { "flagged" };
    let categories_text = categories.iter().map(|c| c.to_string()).collect();
    let text = policy.log_text.then(|| flagged_text.join("\n"));
    Subject::of(state, v)
        .record(state, "input", action, categories_text, text)
        .await?;
    let header = format!("{action}; direction=input; categories={}", categories.join(","));
    Ok(if policy.block {
        Decision::Blocked(header)
    } else {
        Decision::Flagged(header)
    })
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
