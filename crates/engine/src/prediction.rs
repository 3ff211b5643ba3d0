//! Predicted Outputs: the caller sends the text it expects most of the answer to repeat (a file
//! being edited), and the scheduler verifies it as a speculative draft — many tokens per forward
//! step where the answer follows it, plain decoding where it does not. The output is exactly what
//! decoding without a prediction gives (see `draft` for why verification is exact).
//!
//! The answer leaves the prediction where the edit is and comes back to it after: a `Prediction`
//! follows the answer token by token, and once they differ it finds its place again by looking up
//! the answer's last few tokens in the prediction (nearest occurrence after where it left first:
//! an insertion resumes there, a deletion a little further on).

use crate::SpecState;

/// Most prediction tokens one sequence verifies in a step.
pub const PREDICTION_MAX_DRAFT: usize = 16;

/// Lengths of the answer's suffix looked up to re-align (longest first). One token matches too
/// many places: re-aligning on a single token (even only just after where the answer left)
/// turned 14 of 27 accepted drafts into 0 of 13 in `model_speculation`.
const ALIGN_MIN: usize = 2;
const ALIGN_MAX: usize = 6;

/// A prediction's tokens against the answer so far.
#[derive(Debug, Clone)]
pub struct Prediction {
    tokens: Vec<u32>,
    /// The prediction token the answer is expected to produce next; `None` while it has left.
    cursor: Option<usize>,
    /// Where the answer last followed the prediction (the re-alignment search starts there).
    last: usize,
    /// The answer's latest tokens, at most `ALIGN_MAX`.
    tail: Vec<u32>,
    /// Answer tokens since it left the prediction (not counted as matched yet).
    astray: usize,
    /// Prediction tokens that appeared in the answer.
    matched: usize,
    /// Draft tokens of the verification in flight (0: none).
    pub(crate) pending: usize,
    /// Acceptance of this prediction's drafts, for the draft length.
    pub(crate) spec: SpecState,
}

/// What a finished choice made of its prediction, as OpenAI's usage reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PredictionUsage {
    /// Prediction tokens that appeared in the answer.
    pub accepted: usize,
    /// Prediction tokens that did not.
    pub rejected: usize,
}

impl Prediction {
    pub fn new(tokens: Vec<u32>) -> Self {
        Self {
            tokens,
            cursor: Some(0),
            last: 0,
            tail: Vec::with_capacity(ALIGN_MAX + 1),
            astray: 0,
            matched: 0,
            pending: 0,
            // A prediction is the caller's claim that the answer repeats it: start trusting it.
            spec: SpecState::with_prior(0.9),
        }
    }

    /// Up to `k` tokens the answer is expected to produce next (none while it has left).
    pub fn draft(&self, k: usize) -> Vec<u32> {
        match self.cursor {
            Some(c) => self.tokens[c.min(self.tokens.len())..(c + k).min(self.tokens.len())].to_vec(),
            None => Vec::new(),
        }
    }

    /// Follows one more answer token.
    pub fn observe(&mut self, tok: u32) {
        if self.tail.len() == ALIGN_MAX {
            self.tail.remove(0);
        }
        self.tail.push(tok);
        match self.cursor {
            Some(c) if self.tokens.get(c) == Some(&tok) => {
                self.matched += 1;
                self.cursor = Some(c + 1);
                self.last = c + 1;
            }
            _ => {
                self.cursor = None;
                self.astray += 1;
                self.realign();
            }
        }
    }

    /// Finds the answer's latest tokens in the prediction: nearest after `last`, else the latest
    /// before it.
    fn realign(&mut self) {
        let len = self.tokens.len();
        for n in (ALIGN_MIN..=self.tail.len().min(ALIGN_MAX)).rev() {
            if n > len {
                continue;
            }
            let suffix = &self.tail[self.tail.len() - n..];
            let at = |p: &usize| &self.tokens[*p..*p + n] == suffix;
            let found = (self.last.min(len - n + 1)..=len - n)
                .find(at)
                .or_else(|| (0..self.last.min(len - n + 1)).rev().find(at));
            if let Some(p) = found {
                return self.resume(p + n, n);
            }
        }
    }

    /// The answer follows the prediction again from `cursor`, its last `n` tokens matching.
    fn resume(&mut self, cursor: usize, n: usize) {
        self.matched += n.min(self.astray);
        self.astray = 0;
        self.cursor = Some(cursor);
        self.last = cursor;
    }

    pub fn usage(&self) -> PredictionUsage {
        let accepted = self.matched.min(self.tokens.len());
        PredictionUsage {
            accepted,
            rejected: self.tokens.len() - accepted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn follow(pred: &[u32], answer: &[u32]) -> Prediction {
        let mut p = Prediction::new(pred.to_vec());
        for &t in answer {
            p.observe(t);
        }
        p
    }

    #[test]
    fn an_identical_answer_accepts_everything() {
        let p = follow(&[1, 2, 3, 4], &[1, 2, 3, 4]);
        assert_eq!(
            p.usage(),
            PredictionUsage {
                accepted: 4,
                rejected: 0
            }
        );
        assert!(p.draft(3).is_empty(), "nothing is left to draft");
    }

    #[test]
    fn drafts_continue_from_the_answer() {
        let p = follow(&[1, 2, 3, 4, 5], &[1, 2]);
        assert_eq!(p.draft(2), vec![3, 4]);
        assert_eq!(p.draft(10), vec![3, 4, 5]);
    }

    #[test]
    fn an_insertion_resumes_where_the_answer_left() {
        // Prediction 1..=8; the answer inserts 90 91 after 3 and carries on with 4 5.
        let pred: Vec<u32> = (1..=8).collect();
        let p = follow(&pred, &[1, 2, 3, 90, 91, 3, 4]);
        assert_eq!(p.draft(2), vec![5, 6]);
        let p = follow(&pred, &[1, 2, 3, 90, 91, 3, 4, 5, 6, 7, 8]);
        assert_eq!(p.usage().accepted, 8);
    }

    #[test]
    fn a_deletion_skips_ahead() {
        let pred: Vec<u32> = (1..=10).collect();
        // The answer drops 4 5 6.
        let p = follow(&pred, &[1, 2, 3, 7, 8]);
        assert_eq!(p.draft(2), vec![9, 10]);
        let p = follow(&pred, &[1, 2, 3, 7, 8, 9, 10]);
        assert_eq!(
            p.usage(),
            PredictionUsage {
                accepted: 7,
                rejected: 3
            }
        );
    }

    #[test]
    fn a_replaced_token_resumes_two_tokens_on() {
        // 3 becomes 30 and the line goes on: two matching tokens (4 5) re-align it.
        let p = follow(&(1..=8).collect::<Vec<u32>>(), &[1, 2, 30, 4]);
        assert!(p.draft(2).is_empty(), "one token is not enough");
        let p = follow(&(1..=8).collect::<Vec<u32>>(), &[1, 2, 30, 4, 5]);
        assert_eq!(p.draft(2), vec![6, 7]);
    }

    #[test]
    fn an_unrelated_answer_rejects_everything() {
        let p = follow(&[1, 2, 3], &[7, 8, 9, 7, 8]);
        assert_eq!(
            p.usage(),
            PredictionUsage {
                accepted: 0,
                rejected: 3
            }
        );
        assert!(p.draft(4).is_empty());
    }

    #[test]
    fn a_repeated_section_never_counts_past_the_prediction() {
        let p = follow(&[1, 2, 3], &[1, 2, 3, 1, 2, 3, 1, 2, 3]);
        assert_eq!(
            p.usage(),
            PredictionUsage {
                accepted: 3,
                rejected: 0
            }
        );
    }

    #[test]
    fn an_empty_prediction_drafts_nothing() {
        let p = follow(&[], &[1, 2, 3]);
        assert!(p.draft(4).is_empty());
        assert_eq!(p.usage(), PredictionUsage::default());
    }
}
