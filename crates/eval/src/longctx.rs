//! Long-context recall: needles planted in real text (source files found on the machine, never
//! repeated filler), asked about at the end. A baseline, `value` (the number assigned to a named
//! constant: plain retrieval), and three tasks whose answers are not the question's words:
//! - `lookup`: which function returns a given string (one planted function);
//! - `sum`: the sum of two constants planted apart (the answer appears nowhere in the text);
//! - `multi`: the values of three constants planted at three depths, in a given order.
//!
//! A case is (task, length, depth); its needles and values come from a seed of those, so every run
//! and every server gets the same prompts.

use serde::{Deserialize, Serialize};

pub const TASKS: [&str; 4] = ["lookup", "sum", "multi", "value"];

/// One prompt to ask.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub id: String,
    pub task: &'static str,
    /// Target prompt length in tokens, and where the (first) needle sits, 0..1.
    pub length: usize,
    pub depth: f64,
    /// The haystack with the needles in it, then the question.
    pub prompt: String,
    /// What a correct answer contains (every part, for `multi`).
    pub answers: Vec<String>,
}

/// What one case scored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scored {
    pub id: String,
    pub task: String,
    pub length: usize,
    pub depth: f64,
    pub prompt_tokens: usize,
    pub reply: String,
    /// Fraction of the answers found in the reply (0 or 1 except for `multi`).
    pub score: f64,
    pub seconds: f64,
}

/// The share of `answers` present in `reply`, digits compared without separators.
pub fn score(reply: &str, answers: &[String]) -> f64 {
    let plain: String = reply.chars().filter(|c| !matches!(c, ',' | '_' | '`')).collect();
    let found = answers
        .iter()
        .filter(|a| reply.contains(a.as_str()) || plain.contains(a.as_str()))
        .count();
    found as f64 / answers.len().max(1) as f64
}

/// A small deterministic generator (64-bit LCG, high bits).
struct Lcg(u64);

impl Lcg {
    fn new(seed: u64) -> Self {
        Self(
            seed.wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407),
        )
    }
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

const WORDS: [&str; 16] = [
    "amber", "cobalt", "falcon", "granite", "harbor", "juniper", "lantern", "meadow", "nickel", "orchid", "pepper",
    "quartz", "raven", "saffron", "tundra", "willow",
];

/// Needles (text, depth) and the question with its answers for `task`, from `rng`.
fn needles(task: &str, depth: f64, rng: &mut Lcg) -> (Vec<(String, f64)>, String, Vec<String>) {
    let word = |rng: &mut Lcg| WORDS[rng.next(16) as usize];
    match task {
        "value" => {
            let name = format!("{}_{}_LIMIT", word(rng).to_uppercase(), word(rng).to_uppercase());
            let value = 1000 + rng.next(9000);
            let q = format!("What value is assigned to {name} in the text above? Answer with the number only.");
            (vec![(format!("{name} = {value}\n"), depth)], q, vec![value.to_string()])
        }
        "lookup" => {
            let name = format!("_{}_{}_{}", word(rng), word(rng), 100 + rng.next(900));
            let value = format!("{}-{}-{}", word(rng), word(rng), 1000 + rng.next(9000));
            let text = format!("def {name}():\n    return \"{value}\"\n");
            let q = format!("Which function defined in the text above returns the string \"{value}\"? Answer with the function name only.");
            (vec![(text, depth)], q, vec![name])
        }
        "sum" => {
            let (a, b) = (1000 + rng.next(9000), 1000 + rng.next(9000));
            let (na, nb) = (word(rng).to_uppercase(), word(rng).to_uppercase());
            let (na, nb) = (format!("{na}_OFFSET_A"), format!("{nb}_OFFSET_B"));
            let q = format!("What is {na} + {nb}, using the values assigned to them in the text above? Answer with the number only.");
            let far = (depth + 0.5) % 1.0;
            (
                vec![(format!("{na} = {a}\n"), depth), (format!("{nb} = {b}\n"), far)],
                q,
                vec![(a + b).to_string()],
            )
        }
        _ => {
            let names = ["CODE_RED", "CODE_BLUE", "CODE_GREEN"];
            let values: Vec<u64> = (0..3).map(|_| 1000 + rng.next(9000)).collect();
            let planted = (0..3)
                .map(|i| {
                    (
                        format!("{} = {}\n", names[i], values[i]),
                        (depth + 0.3 * i as f64) % 1.0,
                    )
                })
                .collect();
            let q = "List the values assigned to CODE_RED, CODE_BLUE and CODE_GREEN in the text above, in that order, separated by commas.".to_string();
            (planted, q, values.iter().map(u64::to_string).collect())
        }
    }
}

/// The case of `task` at `length` tokens and `depth`: `lines` of real text (with `tokens(line)`
/// their token counts) taken in order until the haystack holds `length` less room for the
/// question, needles inserted between lines at their depths.
pub fn case(task: &'static str, length: usize, depth: f64, lines: &[String], tokens: &dyn Fn(&str) -> usize) -> Case {
    let seed = (length as u64) << 20
        ^ ((depth * 1000.0) as u64) << 4
        ^ TASKS.iter().position(|t| *t == task).unwrap_or(0) as u64;
    let mut rng = Lcg::new(seed);
    let (planted, question, answers) = needles(task, depth, &mut rng);
    let budget = length.saturating_sub(96 + planted.iter().map(|(t, _)| tokens(t)).sum::<usize>());
    let (mut hay, mut used) = (Vec::new(), 0);
    for line in lines.iter().cycle().take(lines.len().max(1) * 64) {
        let n = tokens(line);
        if used + n > budget {
            break;
        }
        hay.push(line.as_str());
        used += n;
    }
    let mut at: Vec<(usize, &str)> = planted
        .iter()
        .map(|(t, d)| ((d * hay.len() as f64) as usize, t.as_str()))
        .collect();
    at.sort_by_key(|(i, _)| *i);
    let mut prompt = String::new();
    let mut next = at.iter().peekable();
    for (i, line) in hay.iter().enumerate() {
        while let Some((_, t)) = next.next_if(|(j, _)| *j <= i) {
            prompt.push_str(t);
        }
        prompt.push_str(line);
    }
    for (_, t) in next {
        prompt.push_str(t);
    }
    prompt.push_str("\n\n");
    prompt.push_str(&question);
    Case {
        id: format!("{task}-{length}-{depth:.2}"),
        task,
        length,
        depth,
        prompt,
        answers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> Vec<String> {
        (0..5000)
            .map(|i| format!("x_{i} = compute({i}, {})\n", i * 7 % 13))
            .collect()
    }

    /// Chars / 4 as a token count: the cases fill their length, plant their needles at their
    /// depths, and are the same every time.
    #[test]
    fn cases_hold_their_needles_at_their_depths() {
        let count = |s: &str| s.len().div_ceil(4);
        for task in TASKS {
            let c = case(task, 8192, 0.25, &lines(), &count);
            assert!(
                (7000..=8192).contains(&count(&c.prompt)),
                "{task}: {}",
                count(&c.prompt)
            );
            assert_eq!(c, case(task, 8192, 0.25, &lines(), &count));
            let at = c.prompt.find(match task {
                "value" => "_LIMIT =",
                "lookup" => "def _",
                "sum" => "_OFFSET_A =",
                _ => "CODE_RED =",
            });
            let frac = at.unwrap() as f64 / c.prompt.len() as f64;
            assert!((0.2..0.3).contains(&frac), "{task}: needle at {frac}");
        }
        let sum = case("sum", 8192, 0.1, &lines(), &count);
        assert!(!sum.prompt.contains(&sum.answers[0]), "the sum appears nowhere");
    }

    #[test]
    fn replies_score_by_the_answers_they_contain() {
        let answers = vec!["4417".to_string(), "2210".into(), "9001".into()];
        assert_eq!(score("4417, 2210, 9001", &answers), 1.0);
        assert_eq!(score("4,417 and 9001", &answers), 2.0 / 3.0);
        assert_eq!(score("I don't know", &answers), 0.0);
    }
}
