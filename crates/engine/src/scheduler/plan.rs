//! What one step runs: every decoding sequence feeds its next token (and any draft tokens to
//! verify); prefilling sequences share what is left of the token budget, interactive ones first,
//! least prompt left first (chunked prefill keeps long prompts from stalling decodes and short
//! prompts). A step that prefills
//! an interactive prompt carries no batch work at all (its time is that request's time to first
//! token); batch prompts run in small chunks otherwise.
//!
//! Deep in a long context a prompt token costs far more than a shallow one (its attention reads
//! every cached position): prompt chunks are sized by cost — a chunk of c tokens from depth d costs
//! c · (1 + (d + c/2) / depth_unit) shallow tokens — so a step takes about as long as a shallow
//! step of `max_batch` tokens, also when a long prompt prefills alone (a request arriving meanwhile
//! waits for the step in flight), and the decoders and short prompts beside a 64k prefill keep
//! their pace — about: every prefilling prompt still advances `MIN_CHUNK` tokens a step, which deep
//! in a long context can cost more.

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
        self.plan_prefills(&mut plan, interactive_prefill);
        plan
    }

    /// Adds the prefilling sequences' prompt chunks to `plan` within the step's token budget:
    /// interactive before batch, and within each the least prompt left first (a short request
    /// arriving during a long prefill gets its first token after a step, not after the long
    /// prompt). Each chunk is sized by its cost (`tokens_within`).
    fn plan_prefills(&self, plan: &mut Plan, interactive_prefill: bool) {
        let unit = self.model.depth_unit().max(1) as f64;
        let mut cost_used: f64 = plan.items.iter().map(|w| self.cost_of(w, unit)).sum();
        let mut budget = self.model.max_batch() - plan.tokens();
        let mut batch_budget = if interactive_prefill {
            0
        } else {
            self.cfg.batch_prefill_chunk.max(1)
        };
        for p in [Priority::Interactive, Priority::Batch] {
            // `active` is oldest first.
            let mut order: Vec<usize> = (0..self.active.len())
                .filter(|&i| prefilling(&self.active[i], p))
                .collect();
            let oldest = order.first().copied();
            // Least left first; ties oldest first (the sort is stable).
            order.sort_by_key(|&i| {
                self.active[i]
                    .prompt
                    .len()
                    .saturating_sub(self.slots[self.active[i].slot].table.len)
            });
            // Kept for the oldest until its turn, so short prompts arriving one after another
            // never starve it.
            let own = |b: usize, batch: usize| match p {
                Priority::Batch => b.min(batch),
                Priority::Interactive => b,
            };
            let mut reserve = if order.len() > 1 {
                MIN_CHUNK.min(own(budget, batch_budget))
            } else {
                0
            };
            for i in order {
                if Some(i) == oldest {
                    reserve = 0;
                }
                let cap = own(budget, batch_budget).saturating_sub(reserve);
                if cap == 0 {
                    continue;
                }
                let s = &self.active[i];
                let from = self.slots[s.slot].table.len;
                let left = self.model.max_batch() as f64 - cost_used;
                let cap = tokens_within(left, from, unit).clamp(MIN_CHUNK.min(cap), cap);
                let to = (from + cap).min(s.prompt.len());
                cost_used += chunk_cost(from, to - from, unit);
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
    }

    /// What an item costs in shallow tokens (`chunk_cost` of its tokens at its depth).
    fn cost_of(&self, item: &Item, unit: f64) -> f64 {
        let depth = self.slots[self.active[item.seq].slot].table.len;
        let n = match &item.work {
            Work::Decode { feed } => feed.len(),
            Work::Prefill { from, to } => to - from,
        };
        chunk_cost(depth, n, unit)
    }
}

/// Prompt tokens a step gives a prefilling sequence whatever the cost, so it always advances.
const MIN_CHUNK: usize = 8;

/// Shallow-token cost of `n` tokens at positions `depth..depth + n`: each costs its matmuls (1)
/// plus attention over the positions before it (its depth / `unit`).
fn chunk_cost(depth: usize, n: usize, unit: f64) -> f64 {
    n as f64 * (1.0 + (depth as f64 + n as f64 / 2.0) / unit)
}

/// Tokens from `depth` on whose `chunk_cost` is `cost`, to the nearest token (0 when none fits):
/// the positive root of n²/(2·unit) + n·(1 + depth/unit) = cost. Shallow, about the token
/// budget (245 of 256 at depth 0 for the mini).
fn tokens_within(cost: f64, depth: usize, unit: f64) -> usize {
    if cost <= 0.0 {
        return 0;
    }
    let b = 1.0 + depth as f64 / unit;
    let n = unit * ((b * b + 2.0 * cost / unit).sqrt() - b);
    n.round().max(0.0) as usize
}

#[cfg(test)]
mod tests {
    use super::{chunk_cost, tokens_within};

    #[test]
    fn chunks_shrink_with_depth_and_fit_their_cost() {
        let unit = 2775.0;
        let shallow = tokens_within(256.0, 0, unit);
        assert!(
            (240..=256).contains(&shallow),
            "shallow: about the token budget ({shallow})"
        );
        assert_eq!(tokens_within(7.0, 5, 1e9), 7, "shallow costs are token counts");
        let deep = tokens_within(256.0, 60_000, unit);
        assert!((10..=12).contains(&deep), "at 60k a chunk of {deep}");
        for depth in [0, 1_000, 32_768, 131_071] {
            let n = tokens_within(256.0, depth, unit);
            // Nearest: within half a token's cost at that depth.
            let one = chunk_cost(depth + n, 1, unit);
            assert!(
                (chunk_cost(depth, n, unit) - 256.0).abs() <= one / 2.0 + 1e-9,
                "depth {depth}: {n}"
            );
        }
        assert_eq!(tokens_within(-3.0, 10, unit), 0);
    }
}
