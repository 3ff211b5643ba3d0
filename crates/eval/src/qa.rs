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

/// The user message: the question and where the answer goes. Asked only for an `Answer:` line,
/// both tiers answer at once without working and get 7–13% (measured on 300 and 61 items): the
/// request to think first is what a person would get by asking plainly.
pub fn instruction(item: &Item) -> String {
    format!(
        "{}\n\nThink it through step by step, then give the final answer on the last line in the form \
         `Answer: <answer>`.",
        item.question.trim()
    )
}

/// The final answer in a reply: what follows the last `Answer:` (else the last non-empty line),
/// without Markdown emphasis, code ticks, `\boxed{}`, quotes or a final full stop.
pub fn final_answer(reply: &str) -> String {
    // ASCII lower-casing keeps byte offsets, so the match indexes the reply itself.
    let tail = match reply.to_ascii_lowercase().rfind("answer:") {
        Some(at) => &reply[at + "answer:".len()..],
        None => reply.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(""),
    };
    let tail = tail.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let tail = boxed(tail).unwrap_or(tail);
    let s: String = ["\\(", "\\)", "\\[", "\\]"]
        .iter()
        .fold(tail.to_string(), |t, delimiter| t.replace(delimiter, ""))
        .chars()
        .filter(|c| !matches!(c, '*' | '`' | '$'))
        .collect();
    s.trim()
        .trim_end_matches('.')
        .trim_matches(|c| c == '"' || c == '\'')
        .trim()
        .to_string()
}

/// The content of the last `\boxed{…}` in `line` (braces balanced), if any.
fn boxed(line: &str) -> Option<&str> {
    let start = line.rfind("\\boxed{")? + "\\boxed{".len();
    let mut depth = 1;
    for (i, c) in line[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            return Some(&line[start..start + i]);
        }
    }
    None
}

/// Whether the final answer `given` is the expected `answer`.
/// - A number: the first number after the last `=` of `given`, asides in parentheses left out,
///   has its value, so "79 (check: 481 − 83·79 = −6076)" and "1 - 0 + -9 = -8" read as the
///   answer the line gives, and a hedge ("2 or 3") counts as its first choice.
/// - Yes/no: the first word.
/// - Other text: the same words ignoring case, after a lead-in ending in " is " / " was "
///   ("The weekday is Sunday"); a time's hours may drop their leading zero.
pub fn matches(given: &str, answer: &str) -> bool {
    let answer = answer.trim();
    if let Ok(want) = answer.parse::<f64>() {
        let bare = without_parentheses(given).replace('\u{2212}', "-");
        let got = first_number(bare.rsplit('=').next().unwrap_or(&bare));
        return got.is_some_and(|got| (got - want).abs() <= 1e-9 * want.abs().max(1.0));
    }
    let norm = |s: &str| s.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ");
    let (g, a) = (norm(given), norm(answer));
    if a == "yes" || a == "no" {
        return g.split(|c: char| !c.is_alphanumeric()).next() == Some(a.as_str());
    }
    let g = [" is ", " was "]
        .iter()
        .filter_map(|lead| g.rfind(lead).map(|at| &g[at + lead.len()..]))
        .next()
        .map_or(g.as_str(), |rest| rest);
    let unpad = |s: &str| {
        s.strip_prefix('0')
            .filter(|r| r.len() > 1 && r.as_bytes()[1] == b':')
            .unwrap_or(s)
            .to_string()
    };
    g == a || unpad(g) == unpad(&a)
}

/// `s` without its parenthesised asides.
fn without_parentheses(s: &str) -> String {
    let mut depth = 0usize;
    s.chars()
        .filter(|&c| {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ => return depth == 0,
            }
            false
        })
        .collect()
}

/// The first number written in `s` (sign, digits with optional `,` groups, decimals).
fn first_number(s: &str) -> Option<f64> {
    let chars: Vec<char> = s.chars().collect();
    let start = chars.iter().position(|c| c.is_ascii_digit())?;
    let mut end = start;
    while end < chars.len() {
        let c = chars[end];
        let grouping = c == ',' && chars.get(end + 1).is_some_and(|d| d.is_ascii_digit());
        let decimal = c == '.' && chars.get(end + 1).is_some_and(|d| d.is_ascii_digit());
        if c.is_ascii_digit() || grouping || decimal {
            end += 1;
        } else {
            break;
        }
    }
    let negative = start > 0 && chars[start - 1] == '-';
    let text: String = chars[start..end].iter().filter(|&&c| c != ',').collect();
    text.parse::<f64>().ok().map(|v| if negative { -v } else { v })
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
        assert_eq!(all.len(), 350);
        let ids: std::collections::HashSet<_> = all.iter().map(|i| &i.id).collect();
        assert_eq!(ids.len(), all.len());
    }

    #[test]
    fn final_answers_are_read_from_the_last_answer_line() {
        assert_eq!(final_answer("2 + 2 = 4.\nAnswer: **4**"), "4");
        assert_eq!(final_answer("Answer: 3\nwait, no.\n\nAnswer: `5`."), "5");
        assert_eq!(final_answer("The result is\n\n\\boxed{12}"), "12");
        assert_eq!(final_answer("Therefore, \\( j \\) is \\(\\boxed{16}\\)."), "16");
        assert_eq!(final_answer("\\[ \\boxed{\\frac{13}{12}} \\]"), "\\frac{13}{12}");
        assert_eq!(final_answer("Answer:\n\"larohc\""), "larohc");
        assert_eq!(final_answer(""), "");
    }

    #[test]
    fn numbers_match_by_the_value_the_line_gives() {
        assert!(matches("-2", "-2"));
        assert!(matches("-2.0", "-2"));
        assert!(matches("\u{2212}2", "-2"));
        assert!(matches("The total is 1,786 legs", "1786"));
        assert!(matches("1 - 0 + -9 = -8", "-8"));
        assert!(matches("79 (check: 481 - 83*79 = -6076)", "79"));
        assert!(matches("34 days", "34"));
        assert!(!matches("-2", "2"));
        assert!(!matches("12", "1"));
        assert!(!matches("2 or 3", "3"));
        assert!(!matches("none", "3"));
    }

    #[test]
    fn text_matches_whole_after_a_lead_in() {
        assert!(matches("Sunday", "sunday"));
        assert!(matches("The weekday is Sunday", "Sunday"));
        assert!(!matches("Monday through Sunday", "Sunday"));
        assert!(!matches("grandson", "son"));
        assert!(!matches("not Emily's son", "son"));
        assert!(!matches("husband or son", "son"));
        assert!(matches("09:33:21.480", "09:33:21.480"));
        assert!(matches("9:37", "09:37"));
        assert!(!matches("19:33:21.480", "09:33:21.480"));
        assert!(!matches("1 day, 00:29", "00:29"));
        assert!(matches("138/583", "138/583"));
        assert!(matches("No, it is not.", "No"));
        assert!(!matches("Not sure", "No"));
    }

    #[test]
    fn final_answer_survives_case_changing_letters() {
        assert_eq!(final_answer("\u{130}stanbul. Answer: 42"), "42");
    }
}
