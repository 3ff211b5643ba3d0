//! What one step runs: every decoding sequence feeds its next token (and any draft tokens to
//! verify); prefilling sequences share what is left of the token budget, interactive ones first,
//! oldest first (chunked prefill keeps long prompts from stalling decodes). A step that prefills
//! an interactive prompt carries no batch work at all (its time is that request's time to first
//! token); batch prompts run in small chunks otherwise.

use super::{Phase, Scheduler, Seq};
use crate::Priority;

/// One sequence's part of a step.
pub(super) struct Item {
    /// Index into the scheduler's active sequences.
    pub seq: usize,
    pub work: Work,
}

/// What a sequence runs in a step.
pub(super) enum Work {
    /// Its next token, then draft tokens to verify.
    Decode { feed: Vec<u32> },
    /// Prompt positions `from..to`.
    Prefill { from: usize, to: usize },
}

/// A step's work, in the order of the step's sequences (the k-th item's logit rows are the
/// model's k-th sequence's).
#[derive(Default)]
pub(super) struct Plan {
    pub items: Vec<Item>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Tokens the step runs.
    pub fn tokens(&self) -> usize {
        self.items
            .iter()
            .map(|w| match &w.work {
                Work::Decode { feed } => feed.len(),
                Work::Prefill { from, to } => to - from,
            })
            .sum()
    }
}

fn prefilling(s: &Seq, p: Priority) -> bool {
    matches!(s.phase, Phase::Prefill) && s.priority == p
}

impl Scheduler {
    /// The next step's plan (empty: nothing can run).
    pub(super) fn schedule(&mut self) -> Plan {
        let interactive_prefill = self.active.iter().any(|s| prefilling(s, Priority::Interactive));
        let decoders: Vec<usize> = (0..self.active.len())
            .filter(|&i| {
                let s = &self.active[i];
                matches!(s.phase, Phase::Decode(_)) && !(interactive_prefill && s.priority == Priority::Batch)
            })
            .collect();
        let mut plan = Plan::default();
        for (&i, draft) in decoders.iter().zip(self.drafts(&decoders)) {
            let Phase::Decode(t) = self.active[i].phase else {
                unreachable!("decoders decode")
            };
            let mut feed = Vec::with_capacity(1 + draft.len());
            feed.push(t);
            feed.extend(draft);
            plan.items.push(Item {
                seq: i,
                work: Work::Decode { feed },
            });
        }
        let mut budget = self.model.max_batch() - plan.tokens();
        let mut batch_budget = if interactive_prefill {
            0
        } else {
            self.cfg.batch_prefill_chunk.max(1)
        };
        for p in [Priority::Interactive, Priority::Batch] {
            for (i, s) in self.active.iter().enumerate() {
                if !prefilling(s, p) {
                    continue;
                }
                let cap = match p {
                    Priority::Batch => budget.min(batch_budget),
                    Priority::Interactive => budget,
                };
                if cap == 0 {
                    break;
                }
                let from = self.slots[s.slot].table.len;
                let to = (from + cap).min(s.prompt.len());
                plan.items.push(Item {
                    seq: i,
                    work: Work::Prefill { from, to },
                });
                budget -= to - from;
                if p == Priority::Batch {
                    batch_budget -= to - from;
                }
            }
        }
        plan
    }
}
