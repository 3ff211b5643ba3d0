//! Short-answer questions (arithmetic, word problems, counting, dates, strings, kinship) from
//! reasoning-gym's generators, committed in `data/qa/items.jsonl` by `tools/make_qa_items.py`.
//! Each tier answers greedily; the reply's final answer is compared with the generator's.
//!
//! They are the third kind of generative item the `auto` router learns from (beside HumanEval and
//! BFCL): many are easy for both tiers, some only for the flagship.

use serde::{Deserialize, Serialize};

const ITEMS: &str = include_str!("../data/qa/items.jsonl");

#[derive(Debug, Clone, Deserialize)]
pub struct Item {
    pub id: String,
    /// The reasoning-gym generator.
    pub source: String,
    pub question: String,
    pub answer: String,
}

/// One tier's result on one item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scored {
    pub id: String,
    pub source: String,
    pub passed: bool,
    /// What `final_answer` read from the reply.
    pub given: String,
    pub reply: String,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

/// The committed items, in file order.
pub fn items() -> Vec<Item> {
    ITEMS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("data/qa/items.jsonl is valid"))
        .collect()
}

/// The user message: the question and where the answer goes.
pub fn instruction(item: &Item) -> String {
    format!(
        "{}\n\nEnd your reply with a last line of the form `Answer: <your answer>`.",
        item.question.trim()
    )
}

/// The final answer in a reply: what follows the last `Answer:` (else the last non-empty line),
/// without Markdown emphasis, code ticks, `\boxed{}`, quotes or a final full stop.
pub fn final_answer(reply: &str) -> String {
    let lower = reply.to_lowercase();
    let tail = match lower.rfind("answer:") {
        Some(at) => &reply[at + "answer:".len()..],
        None => reply.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(""),
    };
    let tail = tail.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut s: String = tail.chars().filter(|c| !matches!(c, '*' | '`' | '$')).collect();
    if let Some(inner) = s.trim().strip_prefix("\\boxed{").and_then(|r| r.strip_suffix('}')) {
        s = inner.to_string();
    }
    s.trim()
        .trim_end_matches('.')
        .trim_matches(|c| c == '"' || c == '\'')
        .trim()
        .to_string()
}

/// Whether the final answer `given` is the expected `answer`: the same number (the last number in
/// `given`, commas between digit groups allowed), or the same text ignoring case and spaces, or
/// a sentence ending in it ("The weekday is Sunday").
pub fn matches(given: &str, answer: &str) -> bool {
    if let Ok(want) = answer.trim().parse::<f64>() {
        return last_number(given).is_some_and(|got| (got - want).abs() <= 1e-9 * want.abs().max(1.0));
    }
    let norm = |s: &str| s.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ");
    let (g, a) = (norm(given), norm(answer));
    if g == a {
        return true;
    }
    g.strip_suffix(&a)
        .is_some_and(|head| head.ends_with(|c: char| !c.is_alphanumeric() && c != '-' && c != ':'))
}

/// The last number written in `s` (sign, digits with optional `,` groups, decimals).
fn last_number(s: &str) -> Option<f64> {
    let chars: Vec<char> = s.chars().collect();
    let mut end = chars.len();
    while end > 0 && !chars[end - 1].is_ascii_digit() {
        end -= 1;
    }
    if end == 0 {
        return None;
    }
    let mut start = end;
    while start > 0 {
        let c = chars[start - 1];
        let grouping = c == ',' && start >= 2 && chars[start - 2].is_ascii_digit();
        if c.is_ascii_digit() || c == '.' || grouping {
            start -= 1;
        } else {
            break;
        }
    }
    if start > 0 && chars[start - 1] == '-' {
        start -= 1;
    }
    let text: String = chars[start..end].iter().filter(|&&c| c != ',').collect();
    text.trim_start_matches('.').parse().ok()
}

/// Scores one reply.
pub fn score(item: &Item, reply: String, prompt_tokens: usize, completion_tokens: usize) -> Scored {
    let given = final_answer(&reply);
    Scored {
        id: item.id.clone(),
        source: item.source.clone(),
        passed: matches(&given, &item.answer),
        given,
        reply,
        prompt_tokens,
        completion_tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_items_load_with_unique_ids() {
        let all = items();
        assert_eq!(all.len(), 300);
        let ids: std::collections::HashSet<_> = all.iter().map(|i| &i.id).collect();
        assert_eq!(ids.len(), all.len());
    }

    #[test]
    fn final_answers_are_read_from_the_last_answer_line() {
        assert_eq!(final_answer("2 + 2 = 4.\nAnswer: **4**"), "4");
        assert_eq!(final_answer("Answer: 3\nwait, no.\n\nAnswer: `5`."), "5");
        assert_eq!(final_answer("The result is\n\n\\boxed{12}"), "12");
        assert_eq!(final_answer("Answer:\n\"larohc\""), "larohc");
        assert_eq!(final_answer(""), "");
    }

    #[test]
    fn numbers_match_by_value_and_text_by_its_end() {
        assert!(matches("-2", "-2"));
        assert!(matches("-2.0", "-2"));
        assert!(matches("The total is 1,786 legs", "1786"));
        assert!(!matches("-2", "2"));
        assert!(!matches("12", "1"));
        assert!(!matches("none", "3"));
        assert!(matches("Sunday", "sunday"));
        assert!(matches("It was a Sunday", "Sunday"));
        assert!(!matches("grandson", "son"));
        assert!(matches("09:33:21.480", "09:33:21.480"));
        assert!(!matches("19:33:21.480", "09:33:21.480"));
        assert!(matches("138/583", "138/583"));
    }
}
