//! The prompt-attack head: one logistic regression over the mini's text embedding that tells
//! jailbreak prompts and prompt injections (instruction overrides, persona jailbreaks, system-prompt
//! extraction, injected tool output) from ordinary text, whatever the text asks for — whether the
//! request itself is harmful is the moderation head's question. Trained by
//! `tools/safety/train_attack_head.py` on `data/attack_train.jsonl`, measured on
//! `data/attack_heldout.jsonl` (`tools/safety/make_sets.py` builds both).

use std::sync::OnceLock;

use crate::probe::{HeadError, Probes};

/// The head trained for the mini tier, compiled in.
const BUILTIN: &str = include_str!("../data/attack_head.json");

/// The one head the file holds.
const NAME: &str = "attack";

#[derive(Debug)]
pub struct AttackHead {
    probes: Probes,
}

/// Whether a text is a prompt attack.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttackVerdict {
    pub flagged: bool,
    /// The head's probability.
    pub score: f32,
}

impl AttackVerdict {
    /// Two parts of one text: flagged if either is.
    pub fn merge(self, other: AttackVerdict) -> AttackVerdict {
        AttackVerdict {
            flagged: self.flagged || other.flagged,
            score: self.score.max(other.score),
        }
    }
}

impl AttackHead {
    /// The head shipped with tandem (for the mini tier).
    pub fn builtin() -> Result<&'static AttackHead, &'static HeadError> {
        static HEAD: OnceLock<Result<AttackHead, HeadError>> = OnceLock::new();
        HEAD.get_or_init(|| AttackHead::parse(BUILTIN)).as_ref()
    }

    pub fn parse(json: &str) -> Result<AttackHead, HeadError> {
        Ok(AttackHead {
            probes: Probes::parse(json, [NAME])?,
        })
    }

    /// Refuses a model whose embeddings this head was not trained on (`model_dim`: its hidden size).
    pub fn check_model(&self, model_id: &str, model_dim: usize) -> Result<(), HeadError> {
        self.probes.check_model(model_id, model_dim)
    }

    /// The verdict on one embedding: [2 · model dim].
    pub fn classify(&self, embedding: &[f32]) -> AttackVerdict {
        let h = &self.probes.heads[NAME];
        let score = h.score(&self.probes.features(embedding));
        AttackVerdict {
            flagged: score >= h.threshold,
            score,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_against_the_threshold_and_refuses_a_file_without_the_head() {
        let json = serde_json::json!({"model": "m", "features": "final", "dim": 1, "mean": [1.0], "std": [2.0],
            "heads": {"attack": {"w": [3.0], "b": -1.0, "threshold": 0.5}}});
        let h = AttackHead::parse(&json.to_string()).unwrap();
        // Only the final half is read: z = (x − 1) / 2; t = 3z − 1.
        let v = h.classify(&[100.0, 3.0]);
        assert!(v.flagged && (v.score - 1.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-6);
        let v = h.classify(&[100.0, 1.0]);
        assert!(!v.flagged && v.score < 0.5);
        assert!(h.check_model("m", 1).is_ok() && h.check_model("m", 2).is_err());
        let other = serde_json::json!({"model": "m", "features": "final", "dim": 1, "mean": [0.0], "std": [1.0],
            "heads": {"flagged": {"w": [1.0], "b": 0.0, "threshold": 0.5}}});
        assert!(AttackHead::parse(&other.to_string())
            .unwrap_err()
            .to_string()
            .contains("attack"));
    }

    #[test]
    fn the_builtin_head_parses() {
        let h = AttackHead::builtin().expect("the shipped attack head");
        assert!(h.check_model("qwen2.5-coder-0.5b-instruct", 896).is_ok());
    }
}
