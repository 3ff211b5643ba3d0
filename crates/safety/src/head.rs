//! The moderation head: logistic regressions over a text's embedding (the mini's mean final hidden
//! state, `EngineHandle::embed`), trained by `tools/moderation/train_head.py` on
//! `data/moderation_train.jsonl` and measured on the held-out `data/moderation_heldout.jsonl`.
//!
//! One head scores "harmful at all" (`flagged`), one per category. A text is flagged when the
//! flagged head passes its threshold; then each category whose own head passes its threshold is
//! set, the most confident category is set if none passed, and a set subcategory sets its parent.

use std::sync::OnceLock;

use crate::categories::{parent, CATEGORIES};
pub use crate::probe::HeadError;
use crate::probe::{sigmoid, Probes};

/// The head trained for the mini tier, compiled in.
const BUILTIN: &str = include_str!("../data/moderation_head.json");

#[derive(Debug)]
pub struct Head {
    probes: Probes,
    /// The `flagged` logit generated text must reach to be cut (`classify_output`); calibrated on
    /// both tiers' answers to harmless training prompts by `tools/moderation/calibrate_output.py`.
    /// Never below the input threshold's.
    output_logit: f32,
}

/// The fields of the head file beyond the probes.
#[derive(serde::Deserialize)]
struct Extra {
    output_threshold_logit: Option<f32>,
}

/// A moderation result in OpenAI's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub flagged: bool,
    /// Every category of `CATEGORIES`, in that order.
    pub categories: Vec<(&'static str, bool)>,
    /// Each category head's probability, in `CATEGORIES` order.
    pub category_scores: Vec<(&'static str, f32)>,
    /// The `flagged` head's probability.
    pub harmful_score: f32,
}

impl Verdict {
    /// The categories that are set.
    pub fn flagged_categories(&self) -> Vec<&'static str> {
        self.categories.iter().filter(|(_, on)| *on).map(|(c, _)| *c).collect()
    }
}

impl Head {
    /// The head shipped with tandem (for the mini tier).
    pub fn builtin() -> Result<&'static Head, &'static HeadError> {
        static HEAD: OnceLock<Result<Head, HeadError>> = OnceLock::new();
        HEAD.get_or_init(|| Head::parse(BUILTIN)).as_ref()
    }

    pub fn parse(json: &str) -> Result<Head, HeadError> {
        let probes = Probes::parse(json, std::iter::once("flagged").chain(CATEGORIES))?;
        let extra: Extra = serde_json::from_str(json).map_err(|e| HeadError::Format(e.to_string()))?;
        let input = probes.heads["flagged"].threshold_logit();
        let output_logit = extra.output_threshold_logit.unwrap_or(input).max(input);
        Ok(Head { probes, output_logit })
    }

    /// The model (canonical id) whose embeddings this head reads.
    pub fn model(&self) -> &str {
        self.probes.model()
    }

    /// Width of the embeddings this head reads (`Model::embed` of a model `dim` wide: 2 · dim).
    pub fn embedding_width(&self) -> usize {
        self.probes.embedding_width()
    }

    /// Refuses a model whose embeddings this head was not trained on (`model_dim`: its hidden size).
    pub fn check_model(&self, model_id: &str, model_dim: usize) -> Result<(), HeadError> {
        self.probes.check_model(model_id, model_dim)
    }

    /// The verdict on one embedding of a request (input): [embedding_width()].
    pub fn classify(&self, embedding: &[f32]) -> Verdict {
        self.classify_at(embedding, self.probes.heads["flagged"].threshold_logit())
    }

    /// The verdict on one embedding of generated text (a window of an answer), flagged only past
    /// the output threshold.
    pub fn classify_output(&self, embedding: &[f32]) -> Verdict {
        self.classify_at(embedding, self.output_logit)
    }

    /// The verdict with `flagged` set when the flagged head's logit reaches `min_logit`.
    fn classify_at(&self, embedding: &[f32], min_logit: f32) -> Verdict {
        let f = &self.probes;
        let z = f.features(embedding);
        let logit = f.heads["flagged"].logit(&z);
        let harmful_score = sigmoid(logit);
        let flagged = logit >= min_logit;
        let scored: Vec<(&'static str, f32, f32)> = CATEGORIES
            .iter()
            .map(|&c| {
                let h = &f.heads[c];
                (c, h.score(&z), h.threshold)
            })
            .collect();
        let mut on: Vec<bool> = scored.iter().map(|&(_, s, t)| flagged && s >= t).collect();
        if flagged && !on.iter().any(|&x| x) {
            // Harmful, but no category head is sure: the one closest to (or past) its threshold.
            let best = (0..scored.len())
                .max_by(|&a, &b| {
                    let r = |i: usize| scored[i].1 / scored[i].2.max(1e-6);
                    r(a).total_cmp(&r(b))
                })
                .expect("13 categories");
            on[best] = true;
        }
        for i in 0..CATEGORIES.len() {
            if on[i] {
                if let Some(p) = parent(CATEGORIES[i]) {
                    let j = CATEGORIES.iter().position(|c| *c == p).expect("parent listed");
                    on[j] = true;
                }
            }
        }
        Verdict {
            flagged,
            categories: CATEGORIES.iter().copied().zip(on).collect(),
            category_scores: scored.iter().map(|&(c, s, _)| (c, s)).collect(),
            harmful_score,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Head {
        Head::parse(&toy_json()).unwrap()
    }

    /// A 2-wide head: feature 0 drives "flagged" and "hate/threatening", feature 1 "illicit".
    fn toy_json() -> String {
        let mut heads = serde_json::Map::new();
        let h = |w: [f32; 2], t: f32| serde_json::json!({"w": w, "b": 0.0, "threshold": t});
        heads.insert("flagged".into(), h([4.0, 4.0], 0.5));
        for c in CATEGORIES {
            let w = match c {
                "hate/threatening" => [4.0, 0.0],
                "illicit" => [0.0, 4.0],
                _ => [-4.0, -4.0],
            };
            heads.insert(c.into(), h(w, 0.9));
        }
        let json = serde_json::json!({"model": "m", "features": "both", "dim": 2, "mean": [0.0, 0.0], "std": [1.0, 1.0], "heads": heads});
        json.to_string()
    }

    #[test]
    fn subcategories_set_their_parent_and_nothing_is_set_when_not_flagged() {
        let head = toy();
        let v = head.classify(&[2.0, -1.0]);
        assert!(v.flagged);
        assert_eq!(v.flagged_categories(), vec!["hate", "hate/threatening"]);
        let v = head.classify(&[-2.0, -2.0]);
        assert!(!v.flagged);
        assert!(v.flagged_categories().is_empty());
        assert_eq!(v.category_scores.len(), 13);
    }

    #[test]
    fn outputs_are_flagged_only_past_their_own_threshold() {
        let mut json: serde_json::Value = serde_json::from_str(&toy_json()).unwrap();
        json["output_threshold_logit"] = serde_json::json!(4.6); // p ≈ 0.99
        let head = Head::parse(&json.to_string()).unwrap();
        let e = [0.3, 0.0]; // flagged logit 1.2, score ≈ 0.77
        assert!(head.classify(&e).flagged);
        let out = head.classify_output(&e);
        assert!(!out.flagged && out.flagged_categories().is_empty());
        assert!(head.classify_output(&[2.0, 0.0]).flagged);
        // An output threshold below the input's is raised to it.
        json["output_threshold_logit"] = serde_json::json!(-2.2); // p ≈ 0.1
        let head = Head::parse(&json.to_string()).unwrap();
        assert!(!head.classify_output(&[-0.05, 0.0]).flagged);
        assert!(
            !toy().classify_output(&[-0.05, 0.0]).flagged,
            "without one, the input threshold"
        );
    }

    #[test]
    fn a_flagged_text_gets_its_most_likely_category_when_none_passes() {
        let head = toy();
        // flagged (8·0.1+4·0.3 > 0) but illicit's 0.77 < 0.9: the closest category is set.
        let v = head.classify(&[0.1, 0.3]);
        assert!(v.flagged);
        assert_eq!(v.flagged_categories(), vec!["illicit"]);
    }

    #[test]
    fn a_head_for_another_model_or_a_broken_file_is_refused() {
        let head = toy();
        assert!(head.check_model("m", 1).is_ok());
        assert!(head.check_model("m", 2).is_err());
        assert!(head
            .check_model("other", 1)
            .unwrap_err()
            .to_string()
            .contains("not other's"));
        assert!(Head::parse("{}").is_err());
        let missing =
            serde_json::json!({"model": "m", "features": "final", "dim": 1, "mean": [0.0], "std": [1.0], "heads": {}});
        assert!(Head::parse(&missing.to_string())
            .unwrap_err()
            .to_string()
            .contains("flagged"));
    }
}
