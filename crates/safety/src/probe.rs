//! Linear probes over a text embedding: the file format both trained heads share (moderation,
//! `head`; prompt attacks, `attack`). A file names the model whose embeddings it reads, which half
//! of `Model::embed`'s [middle | final] embedding (or both), the standardisation (mean, std: [dim]),
//! and one logistic regression per named head with its decision threshold.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("head file: {0}")]
    Format(String),
    #[error("the head was trained on {trained}'s embeddings ({dim} wide), not {model}'s ({got} wide)")]
    WrongModel {
        trained: String,
        dim: usize,
        model: String,
        got: usize,
    },
}

pub fn sigmoid(t: f32) -> f32 {
    1.0 / (1.0 + (-t).exp())
}

#[derive(Deserialize)]
pub struct Logistic {
    w: Vec<f32>,
    b: f32,
    pub threshold: f32,
}

impl Logistic {
    /// w · z + b for the standardised features z: [dim].
    pub fn logit(&self, z: &[f32]) -> f32 {
        self.w.iter().zip(z).map(|(w, x)| w * x).sum::<f32>() + self.b
    }

    /// sigmoid(w · z + b).
    pub fn score(&self, z: &[f32]) -> f32 {
        sigmoid(self.logit(z))
    }

    /// The threshold as a logit (scores near 1 lose their precision in f32; logits do not).
    pub fn threshold_logit(&self) -> f32 {
        let p = f64::from(self.threshold);
        (p / (1.0 - p)).ln() as f32
    }
}

/// Which part of `Model::embed`'s [middle | final] embedding a probe reads.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum Features {
    Mid,
    Final,
    Both,
}

#[derive(Deserialize)]
pub struct Probes {
    /// Canonical id of the model whose embeddings the probes read.
    model: String,
    features: Features,
    /// Width of the features the probes read.
    dim: usize,
    mean: Vec<f32>,
    std: Vec<f32>,
    pub heads: BTreeMap<String, Logistic>,
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Probes({}, {:?}, {} wide)", self.model, self.features, self.dim)
    }
}

impl Probes {
    /// Parses a probe file that must hold every head of `required`, each `dim` wide.
    pub fn parse<'a>(json: &str, required: impl IntoIterator<Item = &'a str>) -> Result<Probes, HeadError> {
        let p: Probes = serde_json::from_str(json).map_err(|e| HeadError::Format(e.to_string()))?;
        let d = p.dim;
        if p.mean.len() != d || p.std.len() != d {
            return Err(HeadError::Format(format!("mean/std are not {d} wide")));
        }
        for name in required {
            match p.heads.get(name) {
                Some(h) if h.w.len() == d => {}
                Some(_) => return Err(HeadError::Format(format!("head {name:?} is not {d} wide"))),
                None => return Err(HeadError::Format(format!("no head {name:?}"))),
            }
        }
        Ok(p)
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// Width of the embeddings the probes read (`Model::embed` of a model `dim` wide: 2 · dim).
    pub fn embedding_width(&self) -> usize {
        match self.features {
            Features::Both => self.dim,
            Features::Mid | Features::Final => 2 * self.dim,
        }
    }

    /// Refuses a model whose embeddings these probes were not trained on (`model_dim`: its hidden size).
    pub fn check_model(&self, model_id: &str, model_dim: usize) -> Result<(), HeadError> {
        if model_id != self.model || 2 * model_dim != self.embedding_width() {
            return Err(HeadError::WrongModel {
                trained: self.model.clone(),
                dim: self.embedding_width() / 2,
                model: model_id.to_string(),
                got: model_dim,
            });
        }
        Ok(())
    }

    /// The standardised features of one embedding: [embedding_width()] → [dim].
    pub fn features(&self, embedding: &[f32]) -> Vec<f32> {
        let half = embedding.len() / 2;
        let embedding = match self.features {
            Features::Both => embedding,
            Features::Mid => &embedding[..half],
            Features::Final => &embedding[half..],
        };
        embedding
            .iter()
            .zip(self.mean.iter().zip(&self.std))
            .map(|(x, (m, s))| (x - m) / s)
            .collect()
    }
}
