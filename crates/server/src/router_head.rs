//! The `auto` router's head: two logistic regressions over the small tier's embedding of a
//! request's routing text, one predicting whether the small tier's answer will pass, one whether
//! the large tier's will. A request goes to the large tier when the predicted gain
//! P(large passes) − P(small passes) is above the head's threshold.
//!
//! Trained by `tools/router/train_head.py` on half of the tiers' own results (HumanEval, BFCL,
//! short QA; `tandem eval route --dump`) and measured on the other half by `tandem eval route`.
//! The head reads the mini's embeddings (`Model::embed`); with another small tier it is not used.

use std::sync::OnceLock;

use serde::Deserialize;
use tandem_safety::probe::{sigmoid, HeadError, Probes};

/// The head trained for the mini tier, compiled in.
const BUILTIN: &str = include_str!("../data/router_head.json");

/// What the head predicts for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// P(the small tier's answer passes).
    pub small: f32,
    /// P(the large tier's answer passes).
    pub large: f32,
    /// Route to the large tier.
    pub escalate: bool,
}

#[derive(Debug)]
pub struct RouterHead {
    probes: Probes,
    /// Escalate when P(large) − P(small) is above this.
    gain_threshold: f32,
}

#[derive(Deserialize)]
struct Extra {
    gain_threshold: f32,
}

impl RouterHead {
    /// The head shipped with tandem (for the mini tier).
    pub fn builtin() -> Result<&'static RouterHead, &'static HeadError> {
        static HEAD: OnceLock<Result<RouterHead, HeadError>> = OnceLock::new();
        HEAD.get_or_init(|| RouterHead::parse(BUILTIN)).as_ref()
    }

    pub fn parse(json: &str) -> Result<RouterHead, HeadError> {
        let probes = Probes::parse(json, ["small_passes", "large_passes"])?;
        let extra: Extra = serde_json::from_str(json).map_err(|e| HeadError::Format(e.to_string()))?;
        Ok(RouterHead {
            probes,
            gain_threshold: extra.gain_threshold,
        })
    }

    /// Whether this head reads the embeddings of `model_id` (a model `model_dim` wide).
    pub fn fits(&self, model_id: &str, model_dim: usize) -> bool {
        self.probes.check_model(model_id, model_dim).is_ok()
    }

    /// The prediction for one routing text's embedding ([2 · dim], `Model::embed`).
    pub fn predict(&self, embedding: &[f32]) -> Prediction {
        let z = self.probes.features(embedding);
        let small = sigmoid(self.probes.heads["small_passes"].logit(&z));
        let large = sigmoid(self.probes.heads["large_passes"].logit(&z));
        Prediction {
            small,
            large,
            escalate: large - small > self.gain_threshold,
        }
    }
}

/// What the head reads of a request: the declared tools' names (when tools are on), then the last
/// user message's text — what is asked now (the training items are single questions; in a long
/// conversation the first turns would fill the embedding's `EMBED_MAX_TOKENS`). The same function
/// builds the training texts (`tandem eval route`), so what is measured is what is served.
pub fn routing_text<'a>(tools: impl IntoIterator<Item = &'a str>, user_text: &[String]) -> String {
    let names: Vec<&str> = tools.into_iter().collect();
    let mut out = String::new();
    if !names.is_empty() {
        out.push_str("Tools: ");
        out.push_str(&names.join(", "));
        out.push_str("\n\n");
    }
    out.push_str(user_text.last().map_or("", String::as_str));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_text_names_the_tools_then_the_user_text() {
        assert_eq!(
            routing_text(["get_weather", "add"], &["Weather in Lyon?".into()]),
            "Tools: get_weather, add\n\nWeather in Lyon?"
        );
        assert_eq!(routing_text([], &["earlier".into(), "now".into()]), "now");
    }

    #[test]
    fn the_builtin_head_reads_the_minis_embeddings() {
        let head = RouterHead::builtin().expect("the head parses");
        assert!(head.fits("qwen2.5-coder-0.5b-instruct", 896));
        assert!(!head.fits("qwen2.5-coder-1.5b-instruct", 1536));
        let p = head.predict(&vec![0.0; 2 * 896]);
        assert!((0.0..=1.0).contains(&p.small) && (0.0..=1.0).contains(&p.large));
    }
}
