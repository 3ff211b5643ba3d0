//! Safety: the moderation classifier, the prompt-attack detector and redaction. The policies that apply them to requests (the
//! input and output guards, per-key overrides, the operator's prompt) live in the server (`guard`,
//! `output_guard`, `hierarchy`), beside the HTTP types they shape.
//!
//! Layout
//! - `probe`: the file format of the trained heads (standardised logistic regressions over an
//!   embedding).
//! - `attack`: the prompt-attack head (jailbreaks and injections, `data/attack_head.json`).
//! - `categories`: OpenAI's 13 moderation categories and their parents.
//! - `head`: the trained moderation head — logistic regressions over the mini's text embeddings
//!   (`data/moderation_head.json`, made by `tools/moderation/train_head.py`).
//! - `moderator`: text → embedding (through the engine's `Backend`) → scores → a verdict.
//! - `redact`: secrets and personal data in generated text replaced by `[REDACTED:kind]`.

pub mod attack;
pub mod categories;
pub mod head;
pub mod moderator;
pub mod probe;
pub mod redact;

pub use attack::{AttackHead, AttackVerdict};
pub use categories::{parent, CATEGORIES};
pub use head::{Head, HeadError, Verdict};
pub use moderator::{ModerationError, Moderator};

/// The hand-labelled held-out moderation set (JSONL: `text`, `categories`, `kind` harmful |
/// lookalike | benign). Never used to fit or tune the head.
pub const HELDOUT: &str = include_str!("../data/moderation_heldout.jsonl");
