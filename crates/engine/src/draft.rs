//! Speculative decoding: a drafter proposes the next few tokens of a decoding sequence, the target
//! model runs them all in one step (`Logits::Every`), and the scheduler keeps the longest prefix
//! its own sampling agrees with, plus the token it sampled after that prefix.
//!
//! Exactness. The drafters here are deterministic: a draft is a point mass q = δ_d. The scheduler
//! samples every verification row exactly as plain decoding would (same sampler chain, same RNG
//! draws in the same order) and keeps d while its sample equals d. For a point-mass draft that is
//! the standard speculative rejection rule: d is accepted with probability p(d) = min(1, p(d)/q(d)),
//! and a rejection leaves a sample of p restricted to tokens ≠ d, i.e. of norm(max(0, p − q)). So
//! the output distribution is the target's; and because a verification row is bit-identical to the
//! plain decode row (the kernels' batch invariance) and the RNG is consumed the same way, the
//! output is token for token the one decoding without speculation gives — greedy or seeded.
//! (A drafter that samples from its own q could be accepted more often at temperature > 0, but
//! would lose that identity.)
//!
//! Drafters: `ngram` (prompt lookup: the continuation of the latest earlier occurrence of the
//! sequence's last few tokens — free, and strong when the answer repeats the prompt, as code
//! edits do) and `draft` (a smaller model of the same family, greedy, with its own KV cache per
//! slot).

use std::sync::Arc;

use tandem_model::{BlockTable, KvPool, Logits, RunState, SeqStep, TokenPath};

use crate::{argmax, LoadedModel};

/// Which drafter a scheduler uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecMode {
    Off,
    /// Prompt lookup over the sequence's own tokens.
    NGram,
    /// A smaller model of the same tokenizer (given to `EngineHandle::spawn_with_draft`).
    Draft,
}

impl std::str::FromStr for SpecMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "off" => Ok(Self::Off),
            "ngram" => Ok(Self::NGram),
            "draft" => Ok(Self::Draft),
            _ => Err(format!("speculation must be off, ngram or draft, got {s:?}")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SpecConfig {
    pub mode: SpecMode,
    /// Most draft tokens per sequence and step.
    pub max_draft: usize,
    /// Most verification rows (decode tokens plus drafts) in one step over all decoding
    /// sequences. A step of many decoding sequences already shares each weight pass among them;
    /// drafting on top would make it compute-bound, so speculation gives way to batching.
    pub max_rows: usize,
    /// Never adapt: draft `max_draft` tokens whenever the drafter has them (tests, benchmarks).
    pub forced: bool,
}

impl Default for SpecConfig {
    fn default() -> Self {
        Self {
            mode: SpecMode::Off,
            max_draft: 6,
            max_rows: 8,
            forced: false,
        }
    }
}

/// Cost of one more verification row relative to a one-token decode step: the fused row path
/// reads the weights once for all rows, so an extra row costs only its arithmetic. Measured on the
/// flagship (Zen 4, 2 threads, depth 256): 1 row 100 ms, 2 rows 117, 4 rows 154, 6 rows 192.
pub const VERIFY_ROW_COST: f32 = 0.18;

/// Shortest and longest suffix the n-gram drafter looks up.
/// The drafter's catch-ups longer than this take the prompt path (`SeqStep::prompt`).
const DRAFT_PROMPT_PATH_FROM: usize = 8;

const NGRAM_MIN: usize = 2;
const NGRAM_MAX: usize = 4;

/// Proposes up to `k` tokens to follow `hist` (the sequence's tokens, the one about to be fed
/// last): the tokens after the latest earlier occurrence of its last `n` tokens, longest `n` first.
pub fn ngram_draft(hist: &[u32], k: usize) -> Vec<u32> {
    let len = hist.len();
    for n in (NGRAM_MIN..=NGRAM_MAX.min(len.saturating_sub(1))).rev() {
        let suffix = &hist[len - n..];
        // Latest match first: recent text predicts the next tokens best.
        for p in (0..len - n).rev() {
            if &hist[p..p + n] == suffix {
                let from = p + n;
                return hist[from..(from + k).min(len)].to_vec();
            }
        }
    }
    Vec::new()
}

/// Per-sequence acceptance bookkeeping and the draft length it asks for.
#[derive(Debug, Clone)]
pub struct SpecState {
    /// Draft tokens proposed and accepted, decayed so the estimate follows the text.
    proposed: f32,
    accepted: f32,
    /// Decode steps since the last draft (a sequence that stopped drafting probes again).
    idle: u32,
}

/// Decay per verification of the acceptance counts (a memory of ~20 verifications).
const DECAY: f32 = 0.95;
/// A sequence that stopped drafting proposes one token again after this many plain steps.
const PROBE_EVERY: u32 = 16;

impl Default for SpecState {
    fn default() -> Self {
        Self::with_prior(0.5)
    }
}

impl SpecState {
    /// Starts from acceptance `alpha`, worth two observations.
    pub fn with_prior(alpha: f32) -> Self {
        Self {
            proposed: 2.0,
            accepted: 2.0 * alpha,
            idle: 0,
        }
    }

    /// The prior for a drafter: prompt lookup is right about half the time when it finds a match
    /// (21–93% measured); a draft model of the same family far more often (66% on prose, 97% on
    /// code, `tandem bench spec`) — and must start drafting to find out, since its drafts cost
    /// enough that a 0.5 prior would never try.
    pub fn for_mode(mode: SpecMode) -> Self {
        match mode {
            SpecMode::Draft => Self::with_prior(0.8),
            _ => Self::default(),
        }
    }

    /// Estimated probability that a draft token is accepted.
    pub fn acceptance(&self) -> f32 {
        self.accepted / self.proposed
    }

    /// The draft length that maximises expected tokens per unit of step time: with acceptance α
    /// and a cost c per draft token (relative to a plain decode step), k drafts yield
    /// E(k) = 1 + α + … + α^k tokens for 1 + k·c of time. 0 when no k beats plain decoding,
    /// except for an occasional probe so the estimate can recover.
    pub fn draft_len(&mut self, cost: f32, max: usize) -> usize {
        let a = self.acceptance();
        let (mut best, mut best_rate) = (0, 1.0f32);
        let (mut e, mut pow) = (1.0f32, 1.0f32);
        for k in 1..=max {
            pow *= a;
            e += pow;
            let rate = e / (1.0 + k as f32 * cost);
            if rate > best_rate * 1.02 {
                (best, best_rate) = (k, rate);
            }
        }
        if best == 0 {
            self.idle += 1;
            if self.idle >= PROBE_EVERY && max > 0 {
                self.idle = 0;
                return 1;
            }
        }
        best
    }

    /// Records a verification: `accepted` of `proposed` draft tokens kept.
    pub fn record(&mut self, proposed: usize, accepted: usize) {
        self.proposed = self.proposed * DECAY + proposed as f32;
        self.accepted = self.accepted * DECAY + accepted as f32;
        self.idle = 0;
    }
}

/// The draft model's KV element type.
const DRAFT_KV: tandem_model::KvType = tandem_model::KvType::F16;

/// A smaller model drafting greedily, with a KV cache per scheduler slot that follows the slot's
/// sequence (rolled back to the common prefix whenever the target rejected part of a draft): one
/// pool, each slot's table a fixed run of a whole context's blocks.
pub struct ModelDrafter {
    lm: Arc<LoadedModel>,
    st: RunState,
    pool: KvPool,
    kvs: Vec<BlockTable>,
    /// The tokens whose K/V are in `kvs[slot]`.
    fed: Vec<Vec<u32>>,
    /// Relative cost of one draft token against one target decode step (decode is memory-bound:
    /// the ratio of the weight bytes each reads).
    pub cost: f32,
}

impl ModelDrafter {
    /// Refuses a drafter whose tokenizer differs from the target's: its tokens would mean
    /// something else.
    pub fn new(
        draft: Arc<LoadedModel>,
        target: &LoadedModel,
        slots: usize,
        ctx: usize,
        step: usize,
    ) -> Result<Self, String> {
        let (a, b) = (&draft.tokenizer, &target.tokenizer);
        let same = a.vocab_size() == b.vocab_size()
            && draft.model.config.vocab == target.model.config.vocab
            && (0..a.vocab_size() as u32).all(|t| a.token_bytes(t) == b.token_bytes(t) && a.is_eog(t) == b.is_eog(t));
        if !same {
            return Err(format!(
                "the draft model {} does not share the tokenizer of {}",
                draft.model.config.name, target.model.config.name
            ));
        }
        let mc = &draft.model.config;
        let cost = draft.model.weights.decode_bytes() as f32 / target.model.weights.decode_bytes() as f32;
        let (pool, kvs) = KvPool::with_tables(mc, DRAFT_KV, ctx, slots);
        Ok(Self {
            st: RunState::new(mc, step.max(slots), slots, ctx),
            pool,
            kvs,
            fed: vec![Vec::new(); slots],
            lm: draft,
            cost,
        })
    }

    /// Bytes the caches of a drafter of `draft` for `slots` slots of `ctx` positions take (what
    /// `new` allocates), so a server can count them in its KV budget.
    pub fn kv_bytes(draft: &LoadedModel, slots: usize, ctx: usize) -> usize {
        slots * tandem_model::KvCache::bytes_for(&draft.model.config, ctx, DRAFT_KV)
    }

    /// Drafts for several sequences at once: `(slot, history, k)` → up to `k` greedy tokens to
    /// follow `history` (the sequence's tokens, the one about to be fed last). A sequence whose
    /// cache is far behind (a new prompt) catches up by one step's worth of tokens and drafts
    /// nothing this time, so a long prompt never stalls the step.
    pub fn draft(&mut self, wants: &[(usize, &[u32], usize)]) -> Vec<Vec<u32>> {
        let mut out = vec![Vec::new(); wants.len()];
        let mut budget = self.st.max_batch;
        // Round 0: feed what each cache lacks of its history.
        let mut feeds: Vec<(usize, std::ops::Range<usize>, bool)> = Vec::new(); // (want, range of hist, drafts)
        for (w, &(slot, hist, k)) in wants.iter().enumerate() {
            let fed = &mut self.fed[slot];
            let common = fed.iter().zip(hist).take_while(|(a, b)| a == b).count();
            let common = common.min(hist.len() - 1);
            fed.truncate(common);
            self.kvs[slot].truncate(common);
            let behind = hist.len() - common;
            if budget == 0 || k == 0 {
                continue;
            }
            let take = behind.min(budget);
            budget -= take;
            feeds.push((w, common..common + take, take == behind));
        }
        if !self.run(wants, &feeds, |w, r| &wants[w].1[r.clone()], &mut out) {
            return vec![Vec::new(); wants.len()];
        }
        // Rounds 1..: feed each sequence's last draft token until it has its k.
        loop {
            let next: Vec<(usize, std::ops::Range<usize>, bool)> = feeds
                .iter()
                .filter(|&&(w, _, drafts)| drafts && !out[w].is_empty() && out[w].len() < wants[w].2)
                .map(|&(w, _, _)| (w, 0..1, true))
                .collect();
            if next.is_empty() {
                return out;
            }
            let lasts: Vec<u32> = out.iter().map(|d| d.last().copied().unwrap_or(0)).collect();
            if !self.run(wants, &next, |w, _| std::slice::from_ref(&lasts[w]), &mut out) {
                return vec![Vec::new(); wants.len()];
            }
        }
    }

    /// One draft-model step feeding `tokens(w)` for each of `feeds`; pushes the greedy token of
    /// each sequence that drafts. False if the step failed (then nothing is drafted).
    fn run<'t>(
        &mut self,
        wants: &[(usize, &[u32], usize)],
        feeds: &[(usize, std::ops::Range<usize>, bool)],
        tokens: impl Fn(usize, &std::ops::Range<usize>) -> &'t [u32],
        out: &mut [Vec<u32>],
    ) -> bool {
        if feeds.is_empty() {
            return true;
        }
        {
            let mut kvs: Vec<Option<&mut BlockTable>> = self.kvs.iter_mut().map(Some).collect();
            let mut steps: Vec<SeqStep> = feeds
                .iter()
                .map(|(w, r, drafts)| SeqStep {
                    kv: kvs[wants[*w].0].take().expect("one want per slot"),
                    tokens: tokens(*w, r),
                    logits: Logits::last_if(*drafts),
                    // Drafts only steer speed (the target verifies them), so the path may follow
                    // the size: long catch-ups (a new prompt) on the prompt path.
                    path: match r.len() > DRAFT_PROMPT_PATH_FROM {
                        true => TokenPath::Prompt,
                        false => TokenPath::Generated,
                    },
                })
                .collect();
            if self.lm.model.step(&mut self.st, &mut self.pool, &mut steps).is_err() {
                drop(steps);
                for &(w, _, _) in feeds {
                    let slot = wants[w].0;
                    self.fed[slot].clear();
                    self.kvs[slot].truncate(0);
                }
                return false;
            }
        }
        for (i, (w, r, drafts)) in feeds.iter().enumerate() {
            let (w, drafts) = (*w, *drafts);
            self.fed[wants[w].0].extend_from_slice(tokens(w, r));
            if drafts {
                out[w].push(argmax(self.st.logits_of(i).expect("logits requested")));
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ngram_proposes_what_followed_the_latest_match() {
        // "a b c d a b" → after "a b" came "c d" (and later "a b" again: the latest earlier match).
        let h = [1, 2, 3, 4, 1, 2];
        assert_eq!(ngram_draft(&h, 3), vec![3, 4, 1]);
        assert_eq!(ngram_draft(&h, 1), vec![3]);
        // The longest suffix wins: "9 1 2" occurred at the start (then 7 8), a later "1 2" was
        // followed by 5.
        let h = [9, 1, 2, 7, 8, 1, 2, 5, 9, 1, 2];
        assert_eq!(ngram_draft(&h, 2), vec![7, 8]);
        assert!(ngram_draft(&[1, 2, 3, 4], 4).is_empty());
        assert!(ngram_draft(&[1], 4).is_empty());
        assert!(ngram_draft(&[], 4).is_empty());
    }

    #[test]
    fn draft_length_follows_acceptance_and_cost() {
        let mut s = SpecState::default();
        for _ in 0..40 {
            s.record(4, 4);
        }
        assert!(s.acceptance() > 0.9);
        assert!(
            s.draft_len(VERIFY_ROW_COST, 6) >= 5,
            "cheap drafts that are always accepted: draft long"
        );
        let mut bad = SpecState::default();
        for _ in 0..40 {
            bad.record(4, 0);
        }
        assert_eq!(
            bad.draft_len(0.6, 6),
            0,
            "expensive drafts that are never accepted: stop"
        );
        // ...but probe again now and then.
        let probes = (0..PROBE_EVERY * 2).filter(|_| bad.draft_len(0.6, 6) > 0).count();
        assert_eq!(probes, 2);
    }
}
