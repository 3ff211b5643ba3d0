//! Multiple-choice suites scored by log-likelihood, as lm-evaluation-harness scores BIG-bench:
//! each choice's log p(choice | prompt) under the model; the item is right when the correct choice
//! scores highest (`acc`) — and, reported beside it, highest per byte of the choice (`acc_norm`).
//!
//! The items are committed samples of BIG-bench JSON tasks (`data/mc/`, built by
//! `tools/make_mc_sample.py`; source, licence and canary in `data/mc/README.md`), compiled into the
//! binary so a run needs neither the 358 MB archive nor the network.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A suite's name and its items as JSONL.
pub const SUITES: [(&str, &str); 2] = [
    ("understanding", include_str!("../data/mc/understanding.jsonl")),
    ("multilingual", include_str!("../data/mc/multilingual.jsonl")),
];

#[derive(Debug, Clone, Deserialize)]
pub struct Item {
    /// `task/index of the example in the task`.
    pub id: String,
    pub task: String,
    /// The prompt, formatted as BIG-bench formats it (ends with the answer prefix).
    pub context: String,
    pub choices: Vec<String>,
    /// Index of the correct choice.
    pub answer: usize,
}

/// The items of a suite, in file order.
pub fn suite(name: &str) -> Result<Vec<Item>, String> {
    let (_, text) = SUITES.iter().find(|(n, _)| *n == name).ok_or_else(|| {
        let names: Vec<&str> = SUITES.iter().map(|(n, _)| *n).collect();
        format!("unknown suite {name:?}: expected one of {}", names.join(", "))
    })?;
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let item: Item = serde_json::from_str(l).map_err(|e| format!("{name} line {}: {e}", i + 1))?;
            if item.answer >= item.choices.len() || item.choices.iter().any(|c| c.is_empty()) {
                return Err(format!("{name} line {}: bad choices or answer", i + 1));
            }
            Ok(item)
        })
        .collect()
}

/// The (context, continuation) strings scored for one choice. As lm-evaluation-harness does, a
/// context's trailing spaces move to the start of the continuation ("A: " + "Yes" is scored as
/// "A:" + " Yes", the way the words are tokenised in running text); a context that ends in neither
/// space nor newline gets a space between it and the choice.
pub fn request(context: &str, choice: &str) -> (String, String) {
    let trimmed = context.trim_end_matches(' ');
    let spaces = &context[trimmed.len()..];
    if !spaces.is_empty() {
        (trimmed.to_string(), format!("{spaces}{choice}"))
    } else if context.ends_with('\n') || choice.starts_with(' ') {
        (context.to_string(), choice.to_string())
    } else {
        (context.to_string(), format!(" {choice}"))
    }
}

/// One scored item, as stored in the resumable results file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemResult {
    pub id: String,
    pub task: String,
    /// log p of each choice (natural log), in the item's choice order.
    pub logprobs: Vec<f64>,
    /// Byte length of each choice's continuation (for `acc_norm`).
    pub bytes: Vec<usize>,
    pub answer: usize,
}

impl ItemResult {
    /// The chosen index by total log-likelihood.
    pub fn pick(&self) -> usize {
        argmax(self.logprobs.iter().copied())
    }

    /// The chosen index by log-likelihood per byte.
    pub fn pick_norm(&self) -> usize {
        argmax(self.logprobs.iter().zip(&self.bytes).map(|(l, &b)| l / b.max(1) as f64))
    }
}

/// First index of the largest value (ties go to the earlier choice).
fn argmax(v: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, x) in v.enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best.0
}

/// Accuracy over a set of items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Accuracy {
    pub n: usize,
    pub correct: usize,
    pub correct_norm: usize,
}

impl Accuracy {
    pub fn add(&mut self, r: &ItemResult) {
        self.n += 1;
        self.correct += usize::from(r.pick() == r.answer);
        self.correct_norm += usize::from(r.pick_norm() == r.answer);
    }
    pub fn acc(&self) -> f64 {
        self.correct as f64 / self.n.max(1) as f64
    }
    pub fn acc_norm(&self) -> f64 {
        self.correct_norm as f64 / self.n.max(1) as f64
    }
}

/// Overall accuracy, and per task. The suite's headline figure is the mean of the task accuracies
/// (every task weighs the same, as BIG-bench aggregates), which equals the pooled accuracy when the
/// tasks have equal item counts.
pub fn summarise<'a>(results: impl IntoIterator<Item = &'a ItemResult>) -> (Accuracy, BTreeMap<String, Accuracy>) {
    let mut all = Accuracy::default();
    let mut by_task: BTreeMap<String, Accuracy> = BTreeMap::new();
    for r in results {
        all.add(r);
        by_task.entry(r.task.clone()).or_default().add(r);
    }
    (all, by_task)
}

/// The accuracy of guessing, on the same footing as `macro_average`: the mean over tasks of the
/// mean of 1 / (number of choices).
pub fn chance(items: &[Item]) -> f64 {
    let mut by_task: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for it in items {
        let e = by_task.entry(&it.task).or_default();
        e.0 += 1.0 / it.choices.len() as f64;
        e.1 += 1;
    }
    by_task.values().map(|(s, n)| s / *n as f64).sum::<f64>() / by_task.len().max(1) as f64
}

/// Mean of the per-task accuracies (acc, acc_norm).
pub fn macro_average(by_task: &BTreeMap<String, Accuracy>) -> (f64, f64) {
    let k = by_task.len().max(1) as f64;
    (
        by_task.values().map(Accuracy::acc).sum::<f64>() / k,
        by_task.values().map(Accuracy::acc_norm).sum::<f64>() / k,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_suites_load_with_sixty_items_per_task() {
        for (name, _) in SUITES {
            let items = suite(name).unwrap();
            let mut per_task: BTreeMap<&str, usize> = BTreeMap::new();
            for it in &items {
                *per_task.entry(&it.task).or_default() += 1;
                assert!(it.id.starts_with(&it.task), "{}", it.id);
                assert!(it.choices.len() >= 2, "{}", it.id);
            }
            assert!(per_task.len() >= 5, "{name}: {per_task:?}");
            assert!(per_task.values().all(|&n| n == 60), "{name}: {per_task:?}");
            let ids: std::collections::HashSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
            assert_eq!(ids.len(), items.len(), "{name}: duplicate ids");
        }
        assert!(suite("glue").unwrap_err().contains("understanding, multilingual"));
    }

    #[test]
    fn trailing_spaces_move_to_the_continuation() {
        assert_eq!(request("Q: x\nA: ", "Yes"), ("Q: x\nA:".into(), " Yes".into()));
        assert_eq!(request("idiom:\n", "x"), ("idiom:\n".into(), "x".into()));
        assert_eq!(request("the box. ", "The"), ("the box.".into(), " The".into()));
        assert_eq!(request("A:", "5"), ("A:".into(), " 5".into()));
    }

    #[test]
    fn accuracy_counts_raw_and_per_byte_picks() {
        let r = |task: &str, logprobs: Vec<f64>, bytes: Vec<usize>, answer| ItemResult {
            id: format!("{task}/0"),
            task: task.into(),
            logprobs,
            bytes,
            answer,
        };
        // Raw picks the short choice 0; per byte the long choice 1 (−6/12 > −2/2).
        let a = r("t1", vec![-2.0, -6.0], vec![2, 12], 1);
        assert_eq!((a.pick(), a.pick_norm()), (0, 1));
        let b = r("t2", vec![-1.0, -1.0, -3.0], vec![1, 1, 1], 0);
        assert_eq!(b.pick(), 0, "ties go to the earlier choice");
        let (all, by_task) = summarise([&a, &b]);
        assert_eq!(
            all,
            Accuracy {
                n: 2,
                correct: 1,
                correct_norm: 2
            }
        );
        assert_eq!(macro_average(&by_task), (0.5, 1.0));
    }
}
