//! The scheduler's side of speculative decoding: which draft tokens each decoding sequence feeds
//! this step, and how its rows are checked afterwards (the drafters themselves are in `draft`).

use std::sync::atomic::Ordering;

use super::output::sample;
use super::{Phase, Scheduler};
use crate::{ngram_draft, SpecMode};

impl Scheduler {
    /// Draft tokens for each of `decoders` (empty: decode plainly): a request's prediction where
    /// it has one and the answer follows it, else the configured drafter. Extra rows stay within
    /// the logit rows kept for them; the configured drafter's within `spec.max_rows` too.
    pub(super) fn drafts(&mut self, decoders: &[usize]) -> Vec<Vec<u32>> {
        let n = decoders.len();
        let mut out = vec![Vec::new(); n];
        let extra = self.model.logit_capacity().saturating_sub(self.cfg.slots);
        let mut room = extra.min(self.model.max_batch().saturating_sub(n));
        let predicted: Vec<usize> = (0..n)
            .filter(|&j| self.active[decoders[j]].prediction.is_some())
            .collect();
        for (m, &j) in predicted.iter().enumerate() {
            let i = decoders[j];
            let cap = self.draft_cap(i, (room / (predicted.len() - m)).min(crate::PREDICTION_MAX_DRAFT));
            let p = self.active[i].prediction.as_mut().expect("filtered");
            let k = p.spec.draft_len(crate::VERIFY_ROW_COST, cap);
            out[j] = p.draft(k);
            p.pending = out[j].len();
            room -= out[j].len();
        }
        let rest: Vec<usize> = (0..n).filter(|&j| out[j].is_empty()).map(|j| decoders[j]).collect();
        let room = room.min(self.cfg.spec.max_rows.saturating_sub(n));
        let mut got = self.mode_drafts(&rest, room).into_iter();
        for d in out.iter_mut().filter(|d| d.is_empty()) {
            *d = got.next().unwrap_or_default();
        }
        out
    }

    /// At most `per` draft tokens for sequence `i`, within its `max_tokens` and the context
    /// (k drafts make up to k + 1 tokens and need k + 1 positions).
    fn draft_cap(&self, i: usize, per: usize) -> usize {
        let s = &self.active[i];
        let kv_len = self.slots[s.slot].table.len;
        per.min(s.max_tokens.saturating_sub(s.generated + 1))
            .min(self.cfg.ctx.saturating_sub(kv_len + 1))
    }

    /// The configured drafter's tokens for each of `decoders`, `room` rows among them; each
    /// sequence's draft length follows its acceptance (`SpecState::draft_len`) unless the
    /// configuration forces it.
    fn mode_drafts(&mut self, decoders: &[usize], room: usize) -> Vec<Vec<u32>> {
        let spec = self.cfg.spec.clone();
        let none = vec![Vec::new(); decoders.len()];
        let cost = match (spec.mode, &self.drafter) {
            (SpecMode::NGram, _) => crate::VERIFY_ROW_COST,
            (SpecMode::Draft, Some(d)) => crate::VERIFY_ROW_COST + d.cost,
            _ => return none,
        };
        let n = decoders.len();
        if n == 0 || room == 0 {
            return none;
        }
        let per = (room / n).min(spec.max_draft);
        // (slot, history: the slot's cached tokens then the token about to be fed, length).
        let mut wants: Vec<(usize, Vec<u32>, usize)> = Vec::with_capacity(n);
        for &i in decoders {
            let cap = self.draft_cap(i, per);
            let s = &mut self.active[i];
            let Phase::Decode(t) = s.phase else {
                unreachable!("decoders decode")
            };
            let k = if spec.forced { cap } else { s.spec.draft_len(cost, cap) };
            let mut hist = Vec::new();
            if k > 0 {
                hist.reserve(self.slots[s.slot].cached.len() + 1);
                hist.extend_from_slice(&self.slots[s.slot].cached);
                hist.push(t);
            }
            wants.push((s.slot, hist, k));
        }
        match &mut self.drafter {
            Some(d) if spec.mode == SpecMode::Draft => {
                let views: Vec<(usize, &[u32], usize)> = wants
                    .iter()
                    .filter(|w| w.2 > 0)
                    .map(|(slot, h, k)| (*slot, &h[..], *k))
                    .collect();
                let mut got = d.draft(&views).into_iter();
                wants
                    .iter()
                    .map(|w| {
                        if w.2 > 0 {
                            got.next().unwrap_or_default()
                        } else {
                            Vec::new()
                        }
                    })
                    .collect()
            }
            _ => wants
                .iter()
                .map(|(_, h, k)| if *k > 0 { ngram_draft(h, *k) } else { Vec::new() })
                .collect(),
        }
    }

    /// Samples a decoding sequence's rows after a step that fed `fed` (its next token, then draft
    /// tokens): row j is sampled exactly as plain decoding would, and the draft token j + 1 is
    /// kept while the sample equals it (see `draft` for why this is exact). The cache keeps the
    /// accepted positions only.
    pub(super) fn verify(&mut self, k: usize, i: usize, fed: &[u32]) {
        let slot = self.active[i].slot;
        let kv = &mut self.slots[slot].table;
        kv.len -= fed.len() - 1; // positions of the draft tokens come back as they are accepted
        self.slots[slot].cached.push(fed[0]);
        let mut kept = 0;
        for j in 0..fed.len() {
            let Some(logits) = self.model.logit_row_mut(k, j) else {
                break;
            };
            let sampled = sample(&mut self.active[i], logits, &*self.text);
            let tok = self.accept(i, sampled);
            if self.active[i].done || j + 1 == fed.len() || tok != fed[j + 1] {
                break;
            }
            kept += 1;
            self.slots[slot].table.len += 1;
            self.slots[slot].cached.push(fed[j + 1]);
        }
        if fed.len() > 1 {
            let s = &mut self.active[i];
            match s.prediction.as_mut().filter(|p| p.pending > 0) {
                Some(p) => {
                    p.spec.record(fed.len() - 1, kept);
                    p.pending = 0;
                }
                None => s.spec.record(fed.len() - 1, kept),
            }
            self.stats.spec_verifications.fetch_add(1, Ordering::Relaxed);
            self.stats
                .spec_proposed
                .fetch_add(fed.len() as u64 - 1, Ordering::Relaxed);
            self.stats.spec_accepted.fetch_add(kept as u64, Ordering::Relaxed);
        }
    }
}
