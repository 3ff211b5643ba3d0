//! The moderation head: logistic regressions over a text's embedding (the mini's mean final hidden
//! state, `EngineHandle::embed`), trained by `tools/moderation/train_head.py` on
//! `data/moderation_train.jsonl` and measured on the held-out `data/moderation_heldout.jsonl`.
//!
//! One head scores "harmful at all" (`flagged`), one per category. A text is flagged when the
//! flagged head passes its threshold; then each category whose own head passes its threshold is
//! set, the most confident category is set if none passed, and a set subcategory sets its parent.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::categories::{parent, CATEGORIES};

/// The head trained for the mini tier, compiled in.
const BUILTIN: &str = include_str!("../data/moderation_head.json");

#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("moderation head: {0}")]
    Format(String),
    #[error("the moderation head was trained on {trained}'s embeddings ({dim} wide), not {model}'s ({got} wide)")]
    WrongModel {
        trained: String,
        dim: usize,
        model: String,
        got: usize,
    },
}

#[derive(Deserialize)]
struct Logistic {
    w: Vec<f32>,
    b: f32,
    threshold: f32,
}

impl Logistic {
    /// sigmoid(w · z + b) for the standardised features z: [dim].
    fn score(&self, z: &[f32]) -> f32 {
        let t: f32 = self.w.iter().zip(z).map(|(w, x)| w * x).sum::<f32>() + self.b;
        1.0 / (1.0 + (-t).exp())
    }
}

/// Which part of `Model::embed`'s [middle | final] embedding the head reads.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum Features {
    Mid,
    Final,
    Both,
}

#[derive(Deserialize)]
struct HeadFile {
    /// Canonical id of the model whose embeddings the head reads.
    model: String,
    features: Features,
    /// Width of the features the head reads.
    dim: usize,
    mean: Vec<f32>,
    std: Vec<f32>,
    heads: BTreeMap<String, Logistic>,
}

pub struct Head {
    file: HeadFile,
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Head({}, {:?}, {} wide)",
            self.file.model, self.file.features, self.file.dim
        )
    }
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
        let file: HeadFile = serde_json::from_str(json).map_err(|e| HeadError::Format(e.to_string()))?;
        let d = file.dim;
        if file.mean.len() != d || file.std.len() != d {
            return Err(HeadError::Format(format!("mean/std are not {d} wide")));
        }
        for name in std::iter::once("flagged").chain(CATEGORIES) {
            match file.heads.get(name) {
                Some(h) if h.w.len() == d => {}
                Some(_) => return Err(HeadError::Format(format!("head {name:?} is not {d} wide"))),
                None => return Err(HeadError::Format(format!("no head {name:?}"))),
            }
        }
        Ok(Head { file })
    }

    /// The model (canonical id) whose embeddings this head reads.
    pub fn model(&self) -> &str {
        &self.file.model
    }

    /// Width of the embeddings this head reads (`Model::embed` of a model `dim` wide: 2 · dim).
    pub fn embedding_width(&self) -> usize {
        match self.file.features {
            Features::Both => self.file.dim,
            Features::Mid | Features::Final => 2 * self.file.dim,
        }
    }

    /// Refuses a model whose embeddings this head was not trained on (`model_dim`: its hidden size).
    pub fn check_model(&self, model_id: &str, model_dim: usize) -> Result<(), HeadError> {
        if model_id != self.file.model || 2 * model_dim != self.embedding_width() {
            return Err(HeadError::WrongModel {
                trained: self.file.model.clone(),
                dim: self.embedding_width() / 2,
                model: model_id.to_string(),
                got: model_dim,
            });
        }
        Ok(())
    }

    /// The verdict on one embedding: [embedding_width()].
    pub fn classify(&self, embedding: &[f32]) -> Verdict {
        let f = &self.file;
        let half = embedding.len() / 2;
        let embedding = match f.features {
            Features::Both => embedding,
            Features::Mid => &embedding[..half],
            Features::Final => &embedding[half..],
        };
        let z: Vec<f32> = embedding
            .iter()
            .zip(f.mean.iter().zip(&f.std))
            .map(|(x, (m, s))| (x - m) / s)
            .collect();
        let any = &f.heads["flagged"];
        let harmful_score = any.score(&z);
        let flagged = harmful_score >= any.threshold;
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

    /// A 2-wide head: feature 0 drives "flagged" and "hate/threatening", feature 1 "illicit".
    fn toy() -> Head {
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
        Head::parse(&json.to_string()).unwrap()
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
