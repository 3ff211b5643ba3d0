//! Output moderation (`--moderate output`) and redaction (`--redact`): the engine's events pass
//! through a filter that holds each choice's new text until a sentence ends (or `HOLD_TOKENS`
//! tokens pile up), moderates that window, and only then lets it through. Windows are judged
//! against the head's output threshold (`Head::classify_output`: calibrated on the tiers' answers
//! to harmless prompts, since answers are not requests). A flagged window under `block` is never
//! sent: the choice ends there with `finish_reason: "content_filter"` (and when every choice has
//! ended the engine's receiver is dropped, which stops generation). Under `flag` the text goes out
//! and the decision is recorded. With redaction on, secrets and personal data in a released window
//! are replaced (`tandem_safety::redact`). Both the JSON and the streaming responses read the
//! filtered events, so the rules are the same for both; streaming text arrives a sentence at a time.

use std::sync::Arc;

use tandem_engine::{Event, FinishReason};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::request::ValidRequest;
use crate::state::AppState;

/// Most tokens held back before a window is moderated without waiting for a sentence to end.
pub const HOLD_TOKENS: usize = 64;

/// Where the first sentence `text` has finished ends: the byte offset past its line's `\n`, or
/// past a `.`/`!`/`?` that whitespace follows.
fn sentence_end(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    b.iter().enumerate().find_map(|(i, &c)| {
        let ends =
            c == b'\n' || (matches!(c, b'.' | b'!' | b'?') && b.get(i + 1).is_some_and(|n| n.is_ascii_whitespace()));
        ends.then_some(i + 1)
    })
}

#[derive(Default)]
struct Held {
    events: Vec<Event>,
    text: String,
    /// Tokens generated for this choice so far (held or sent).
    tokens: usize,
    done: bool,
}

/// With secrets or personal data in the held window, its tokens go out as one piece of redacted
/// text (their per-token logprobs would name what was removed).
fn redact_window(h: &mut Held, choice: usize) {
    if let std::borrow::Cow::Owned(clean) = tandem_safety::redact::redact(&h.text) {
        let finished = h.events.pop().filter(|e| matches!(e, Event::Finished { .. }));
        h.events.clear();
        h.events.push(Event::Token {
            choice,
            text: clean,
            logprobs: None,
        });
        h.events.extend(finished);
    }
}

/// The engine's events for `v`, filtered by output moderation.
pub fn filter(state: Arc<AppState>, v: &ValidRequest, mut rx: UnboundedReceiver<Event>) -> UnboundedReceiver<Event> {
    let (tx, out) = unbounded_channel();
    let n = v.gen.n;
    let subject = crate::guard::Subject::of(&state, v);
    let policy = v.moderation;
    tokio::spawn(async move {
        let mut held: Vec<Held> = (0..n).map(|_| Held::default()).collect();
        let mut recorded = false;
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = tx.closed() => return,
            };
            let Some(ev) = ev else { return };
            let (choice, last) = match &ev {
                Event::Token { choice, .. } => (*choice, false),
                Event::Finished { choice, .. } => (*choice, true),
                _ => {
                    if tx.send(ev).is_err() {
                        return;
                    }
                    continue;
                }
            };
            let h = &mut held[choice];
            if h.done {
                continue; // cut already: the rest of this choice is dropped
            }
            if let Event::Token { text, .. } = &ev {
                h.tokens += 1;
                h.text.push_str(text);
            }
            h.events.push(ev);
            let pending = h.events.len();
            if !(last || sentence_end(&h.text).is_some() || pending >= HOLD_TOKENS) {
                continue;
            }
            let carry = if last { None } else { next_sentence_start(h) };
            let verdict = match state.moderator.as_ref() {
                Some(m) if policy.output && !h.text.trim().is_empty() => m.classify_output(&h.text).await.ok(),
                _ => None,
            };
            let flagged = verdict.as_ref().filter(|v| v.flagged);
            if let Some(verdict) = flagged {
                if !recorded {
                    recorded = true;
                    let action = if policy.block { "blocked" } else { "flagged" };
                    let categories = verdict.flagged_categories().iter().map(|c| c.to_string()).collect();
                    let text = policy.log_text.then(|| h.text.clone());
                    // The answer goes on (or is cut) whether or not the record could be written.
                    let _ = subject.record(&state, "output", action, categories, text).await;
                }
                if policy.block {
                    h.done = true;
                    h.events.clear();
                    let cut = Event::Finished {
                        choice,
                        reason: FinishReason::ContentFilter,
                        completion_tokens: h.tokens,
                        prediction: None,
                    };
                    if tx.send(cut).is_err() {
                        return;
                    }
                    if held.iter().all(|h| h.done) {
                        return; // drops the engine's receiver: generation stops
                    }
                    continue;
                }
            }
            if policy.redact {
                redact_window(h, choice);
            }
            h.text.clear();
            h.done = last;
            if !forward(&tx, &mut h.events) {
                return;
            }
            if let Some((ev, text)) = carry {
                h.events.push(ev);
                h.text = text;
            }
            if held.iter().all(|h| h.done) {
                return;
            }
        }
    });
    out
}

/// Takes back the held window's last token when it starts the next sentence: a sentence is only
/// seen to end when the token after its full stop arrives, and that token (" Give" after "Hello
/// there.") begins the next window, as in the windows the output threshold was calibrated on
/// (`tools/moderation/calibrate_output.py`: a window ends at the punctuation). The token is carried
/// when the held text's first sentence ends exactly where it begins (`sentence_end`, the rule
/// that closed the window). Returns the token's event and text.
fn next_sentence_start(h: &mut Held) -> Option<(Event, String)> {
    let end = sentence_end(&h.text)?;
    let Some(Event::Token { text, .. }) = h.events.last() else {
        return None;
    };
    let start = h.text.len() - text.len();
    if start != end || h.events.len() < 2 {
        return None;
    }
    let text = h.text.split_off(start);
    Some((h.events.pop().expect("a last event"), text))
}

fn forward(tx: &UnboundedSender<Event>, events: &mut Vec<Event>) -> bool {
    events.drain(..).all(|e| tx.send(e).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(tokens: &[&str]) -> Held {
        let mut h = Held::default();
        for t in tokens {
            h.text.push_str(t);
            h.tokens += 1;
            h.events.push(Event::Token {
                choice: 0,
                text: t.to_string(),
                logprobs: None,
            });
        }
        h
    }

    #[test]
    fn the_token_that_starts_the_next_sentence_goes_to_the_next_window() {
        let mut h = held(&["Hello", " there", ".", " Give"]);
        assert_eq!(sentence_end(&h.text), Some(12));
        let (_, text) = next_sentence_start(&mut h).expect("carried");
        assert_eq!(
            (h.text.as_str(), text.as_str(), h.events.len()),
            ("Hello there.", " Give", 3)
        );

        // A token that holds the sentence's end itself stays in its window.
        let mut h = held(&["Hello", " there", ". ", "Give"]);
        assert!(next_sentence_start(&mut h).is_none());
        let mut h = held(&["one", "\n"]);
        assert!(next_sentence_start(&mut h).is_none() && h.text == "one\n");
        // A window is never left empty.
        let mut h = held(&[" Give"]);
        assert!(next_sentence_start(&mut h).is_none());
    }

    #[test]
    fn sentence_ends() {
        assert_eq!(sentence_end("Hello. "), Some(6));
        assert_eq!(sentence_end("line\n"), Some(5));
        assert_eq!(sentence_end("version 1.2"), None);
        assert_eq!(
            sentence_end("Hello."),
            None,
            "the full stop may still be a decimal point"
        );
    }
}
