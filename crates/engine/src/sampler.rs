//! The sampler chain: logit bias → penalties → (greedy | temperature → top-k → top-p → min-p → draw).

use std::collections::HashMap;

use crate::{EngineError, Result, Rng};

/// Per-request sampling parameters (validated by `validate`).
#[derive(Debug, Clone)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// 0 means off.
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: f32,
    /// HF-style: divides positive logits (multiplies negative) of tokens seen in prompt or output. 1 = off.
    pub repetition_penalty: f32,
    /// OpenAI: subtracted once from tokens that appeared in the output so far.
    pub presence_penalty: f32,
    /// OpenAI: subtracted per occurrence in the output so far.
    pub frequency_penalty: f32,
    /// Added to the logit of a token id.
    pub logit_bias: Vec<(u32, f32)>,
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            logit_bias: Vec::new(),
            seed: None,
        }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// Checks ranges (OpenAI's where it has them) against a vocabulary of `vocab` tokens.
    pub fn validate(&self, vocab: usize) -> Result<()> {
        let bad = |param, problem: String| Err(EngineError::BadParam { param, problem });
        if !(0.0..=2.0).contains(&self.temperature) {
            return bad("temperature", format!("{} is not in [0, 2]", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", format!("{} is not in (0, 1]", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p", format!("{} is not in [0, 1]", self.min_p));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty <= 10.0) {
            return bad(
                "repetition_penalty",
                format!("{} is not in (0, 10]", self.repetition_penalty),
            );
        }
        if !(-2.0..=2.0).contains(&self.presence_penalty) {
            return bad(
                "presence_penalty",
                format!("{} is not in [-2, 2]", self.presence_penalty),
            );
        }
        if !(-2.0..=2.0).contains(&self.frequency_penalty) {
            return bad(
                "frequency_penalty",
                format!("{} is not in [-2, 2]", self.frequency_penalty),
            );
        }
        for &(id, b) in &self.logit_bias {
            if id as usize >= vocab {
                return bad(
                    "logit_bias",
                    format!("token id {id} is outside the vocabulary of {vocab}"),
                );
            }
            if !(-100.0..=100.0).contains(&b) {
                return bad("logit_bias", format!("bias {b} for token {id} is not in [-100, 100]"));
            }
        }
        Ok(())
    }
}

pub struct Sampler {
    params: SamplingParams,
    rng: Rng,
    /// Occurrences of each token in the output so far (presence/frequency penalties).
    output_counts: HashMap<u32, u32>,
    /// Tokens of prompt and output (repetition penalty).
    seen: HashMap<u32, ()>,
    /// Candidate buffer reused across steps: (token, logit or probability).
    cand: Vec<(u32, f32)>,
}

impl Sampler {
    pub fn new(params: SamplingParams, prompt: &[u32]) -> Self {
        let rng = params.seed.map(Rng::new).unwrap_or_else(Rng::from_entropy);
        let seen = if params.repetition_penalty != 1.0 {
            prompt.iter().map(|&t| (t, ())).collect()
        } else {
            HashMap::new()
        };
        Self {
            params,
            rng,
            output_counts: HashMap::new(),
            seen,
            cand: Vec::new(),
        }
    }

    /// Records a generated token (for the penalties).
    pub fn accept(&mut self, tok: u32) {
        *self.output_counts.entry(tok).or_insert(0) += 1;
        if self.params.repetition_penalty != 1.0 {
            self.seen.insert(tok, ());
        }
    }

    /// Applies bias and penalties to `logits` in place, then picks a token.
    pub fn sample(&mut self, logits: &mut [f32]) -> u32 {
        self.adjust(logits);
        if self.params.temperature == 0.0 {
            return argmax(logits);
        }
        self.candidates(logits);
        let (sorted, len) = self.truncate();
        self.draw(sorted, len)
    }

    /// Logit bias, then the repetition, presence and frequency penalties, in place.
    fn adjust(&self, logits: &mut [f32]) {
        let p = &self.params;
        for &(id, b) in &p.logit_bias {
            logits[id as usize] += b;
        }
        if p.repetition_penalty != 1.0 {
            for &t in self.seen.keys() {
                let l = &mut logits[t as usize];
                *l = if *l > 0.0 {
                    *l / p.repetition_penalty
                } else {
                    *l * p.repetition_penalty
                };
            }
        }
        if p.presence_penalty != 0.0 || p.frequency_penalty != 0.0 {
            for (&t, &n) in &self.output_counts {
                logits[t as usize] -= p.presence_penalty + p.frequency_penalty * n as f32;
            }
        }
    }

    /// `cand` ← the tokens within reach of the best, top-k applied, with their probabilities
    /// (softmax at the temperature over the candidates).
    fn candidates(&mut self, logits: &[f32]) {
        let p = &self.params;
        // Tokens more than 30 nats below the best have probability < 1e-13 relative to it: dropping
        // them before sorting changes nothing measurable and saves sorting 150k entries.
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let floor = max - 30.0 * p.temperature;
        self.cand.clear();
        self.cand.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, &l)| l >= floor)
                .map(|(i, &l)| (i as u32, l / p.temperature)),
        );
        // The candidates are walked in order of probability (ties: lower id first), but only as
        // far as the walk goes: that prefix is sorted on demand (`sort_prefix`), so a confident
        // step sorts a few dozen entries instead of tens of thousands.
        let n = self.cand.len();
        if p.top_k > 0 && p.top_k < n {
            self.cand.select_nth_unstable_by(p.top_k - 1, by_prob);
            self.cand.truncate(p.top_k);
        }
        // softmax over the candidates (the best is max / temperature)
        let m = max / p.temperature;
        let mut sum = 0f64;
        for c in self.cand.iter_mut() {
            c.1 = (c.1 - m).exp();
            sum += c.1 as f64;
        }
        for c in self.cand.iter_mut() {
            c.1 = (c.1 as f64 / sum) as f32;
        }
    }

    /// Top-p and min-p over `cand`: (sorted, len) — `cand[..sorted]` is in final order and
    /// `cand[..len]` still in play.
    fn truncate(&mut self) -> (usize, usize) {
        let p = &self.params;
        let (mut sorted, mut len) = (0, self.cand.len());
        if p.top_p < 1.0 {
            let mut acc = 0f32;
            let mut i = 0;
            while i < len {
                if i == sorted {
                    sorted = sort_prefix(&mut self.cand[..len], sorted);
                }
                acc += self.cand[i].1;
                i += 1;
                if acc >= p.top_p {
                    len = i;
                    break;
                }
            }
        }
        if p.min_p > 0.0 {
            if sorted == 0 {
                sorted = sort_prefix(&mut self.cand[..len], sorted);
            }
            let cut = self.cand[0].1 * p.min_p;
            let mut i = 0;
            while i < len {
                if i == sorted {
                    sorted = sort_prefix(&mut self.cand[..len], sorted);
                }
                if self.cand[i].1 < cut {
                    break;
                }
                i += 1;
            }
            len = i.max(1);
        }
        (sorted, len)
    }

    /// Draws from `cand[..len]` by probability, sorting further than `sorted` only as the walk
    /// needs.
    fn draw(&mut self, mut sorted: usize, len: usize) -> u32 {
        let total: f64 = self.cand[..len].iter().map(|c| c.1 as f64).sum();
        let mut r = self.rng.next_f64() * total;
        for i in 0..len {
            if i == sorted {
                sorted = sort_prefix(&mut self.cand[..len], sorted);
            }
            r -= self.cand[i].1 as f64;
            if r < 0.0 {
                return self.cand[i].0;
            }
        }
        self.cand[len - 1].0
    }
}

/// Higher probability first, then the lower token id.
fn by_prob(a: &(u32, f32), b: &(u32, f32)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// Extends the sorted prefix `cand[..sorted]` to twice its length (at least 64, at most all):
/// the next best entries are selected from the rest, then sorted. Returns the new length.
fn sort_prefix(cand: &mut [(u32, f32)], sorted: usize) -> usize {
    let want = (2 * sorted).max(64).min(cand.len());
    let rest = &mut cand[sorted..];
    let k = want - sorted;
    if k < rest.len() {
        rest.select_nth_unstable_by(k - 1, by_prob);
    }
    rest[..k].sort_unstable_by(by_prob);
    want
}

/// Index of the largest logit (the lowest index on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        // token i has logit i/10: the best is the last one
        (0..100).map(|i| i as f32 / 10.0).collect()
    }

    fn draw(params: SamplingParams, n: usize) -> Vec<u32> {
        let mut s = Sampler::new(params, &[]);
        (0..n).map(|_| s.sample(&mut logits())).collect()
    }

    #[test]
    fn greedy_takes_the_argmax() {
        assert_eq!(draw(SamplingParams::greedy(), 3), vec![99, 99, 99]);
    }

    #[test]
    fn same_seed_same_samples_different_seed_different() {
        let p = |seed| SamplingParams {
            seed: Some(seed),
            temperature: 1.5,
            ..Default::default()
        };
        assert_eq!(draw(p(7), 50), draw(p(7), 50));
        assert_ne!(draw(p(7), 50), draw(p(8), 50));
    }

    /// The on-demand sorted walk picks what a full sort of the candidates would, on a vocabulary
    /// as wide as the tiers' with many candidates in play.
    #[test]
    fn lazy_walk_equals_a_full_sort() {
        let vocab: Vec<f32> = (0..151_936u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) >> 7) % 1000) as f32 / 200.0)
            .collect();
        for (top_k, top_p, min_p) in [
            (0, 1.0, 0.0),
            (0, 0.9, 0.0),
            (40, 0.95, 0.0),
            (0, 1.0, 0.05),
            (5000, 0.5, 0.01),
        ] {
            let params = SamplingParams {
                temperature: 0.8,
                top_k,
                top_p,
                min_p,
                seed: Some(11),
                ..Default::default()
            };
            let mut s = Sampler::new(params.clone(), &[]);
            let mut rng = Rng::new(11);
            for _ in 0..30 {
                let got = s.sample(&mut vocab.clone());
                // Reference: every candidate sorted up front.
                let t = params.temperature;
                let max = vocab.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut c: Vec<(u32, f32)> = vocab
                    .iter()
                    .enumerate()
                    .filter(|(_, &l)| l >= max - 30.0 * t)
                    .map(|(i, &l)| (i as u32, l / t))
                    .collect();
                c.sort_unstable_by(by_prob);
                if top_k > 0 {
                    c.truncate(top_k);
                }
                let sum: f64 = c.iter().map(|x| ((x.1 - max / t).exp()) as f64).sum();
                let probs: Vec<(u32, f32)> = c
                    .iter()
                    .map(|x| (x.0, ((x.1 - max / t).exp() as f64 / sum) as f32))
                    .collect();
                let mut len = probs.len();
                if top_p < 1.0 {
                    let mut acc = 0f32;
                    for (i, x) in probs.iter().enumerate() {
                        acc += x.1;
                        if acc >= top_p {
                            len = i + 1;
                            break;
                        }
                    }
                }
                if min_p > 0.0 {
                    len = probs[..len]
                        .iter()
                        .take_while(|x| x.1 >= probs[0].1 * min_p)
                        .count()
                        .max(1);
                }
                let total: f64 = probs[..len].iter().map(|x| x.1 as f64).sum();
                let mut r = rng.next_f64() * total;
                let want = probs[..len]
                    .iter()
                    .find(|x| {
                        r -= x.1 as f64;
                        r < 0.0
                    })
                    .map_or(probs[len - 1].0, |x| x.0);
                assert_eq!(got, want, "top_k {top_k} top_p {top_p} min_p {min_p}");
            }
        }
    }

    #[test]
    fn top_k_top_p_and_min_p_restrict_the_candidates() {
        let k = draw(
            SamplingParams {
                top_k: 3,
                seed: Some(1),
                ..Default::default()
            },
            200,
        );
        assert!(k.iter().all(|&t| t >= 97), "{k:?}");
        // With logits i/10, the top token has ~9.5% of the mass: top_p 0.05 keeps only it.
        let p = draw(
            SamplingParams {
                top_p: 0.05,
                seed: Some(1),
                ..Default::default()
            },
            50,
        );
        assert!(p.iter().all(|&t| t == 99), "{p:?}");
        // min_p 0.8: only tokens within ln(1/0.8) ≈ 0.22 nats of the best (99, 98, 97).
        let m = draw(
            SamplingParams {
                min_p: 0.8,
                seed: Some(1),
                ..Default::default()
            },
            200,
        );
        assert!(m.iter().all(|&t| t >= 97), "{m:?}");
        assert!(m.iter().any(|&t| t != 99));
    }

    #[test]
    fn logit_bias_and_penalties_move_the_choice() {
        let biased = draw(
            SamplingParams {
                logit_bias: vec![(3, 100.0)],
                ..SamplingParams::greedy()
            },
            1,
        );
        assert_eq!(biased, vec![3]);
        let mut s = Sampler::new(
            SamplingParams {
                presence_penalty: 2.0,
                ..SamplingParams::greedy()
            },
            &[],
        );
        s.accept(99);
        assert_eq!(
            s.sample(&mut logits()),
            98,
            "presence penalty 2 moves 99 (9.9) below 98 (9.8)"
        );
        let mut s = Sampler::new(
            SamplingParams {
                repetition_penalty: 1.5,
                ..SamplingParams::greedy()
            },
            &[99],
        );
        assert_eq!(s.sample(&mut logits()), 98, "a prompt token is penalised too");
    }

    #[test]
    fn out_of_range_parameters_are_named() {
        let bad = [
            (
                SamplingParams {
                    temperature: 3.0,
                    ..Default::default()
                },
                "temperature",
            ),
            (
                SamplingParams {
                    top_p: 0.0,
                    ..Default::default()
                },
                "top_p",
            ),
            (
                SamplingParams {
                    presence_penalty: -2.5,
                    ..Default::default()
                },
                "presence_penalty",
            ),
            (
                SamplingParams {
                    logit_bias: vec![(1000, 1.0)],
                    ..Default::default()
                },
                "logit_bias",
            ),
            (
                SamplingParams {
                    temperature: f32::NAN,
                    ..Default::default()
                },
                "temperature",
            ),
        ];
        for (p, name) in bad {
            let e = p.validate(100).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
    }
}
