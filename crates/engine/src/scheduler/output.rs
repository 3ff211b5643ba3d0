//! The output side of a sequence: a step's logits become a token (grammar mask, sampler,
//! logprobs), and a token becomes text — detokenised, held back while a stop string may be
//! starting, advancing the grammar — or the end of the choice (end of generation, a stop string,
//! the grammar complete, the request's early end, `max_tokens` or the context).

use std::sync::atomic::Ordering;

use tandem_text::Detokenizer;

use super::forward::TextSide;
use super::{Phase, Scheduler, Seq};
use crate::logprobs::{logprobs, Logprobs};
use crate::request::{Event, FinishReason};
use crate::stop::{StopMatcher, StopOutcome};
use crate::Prediction;

impl Scheduler {
    /// Takes a sampled token of sequence `i`: emits its text, checks the end conditions, or queues
    /// it for decoding. Returns the token taken (`EndCheck::go_on` may take another in place of an
    /// end).
    pub(super) fn accept(&mut self, i: usize, sampled: (u32, Option<Logprobs>)) -> u32 {
        let at_ctx = self.slots[self.active[i].slot].table.len >= self.cfg.ctx;
        self.stats.generated_tokens.fetch_add(1, Ordering::Relaxed);
        self.active[i].take(&*self.text, sampled, at_ctx)
    }
}

/// Samples the next token of `s` from `logits` (modified in place by the grammar mask, bias and
/// penalties); with logprobs requested they are computed from the raw logits first.
pub(super) fn sample(s: &mut Seq, logits: &mut [f32], text: &dyn TextSide) -> (u32, Option<Logprobs>) {
    let raw = s.top_logprobs.map(|_| logits.to_vec());
    if let Some(m) = s.matcher.as_mut() {
        // The mask comes first: bias and penalties then act only among the allowed tokens.
        if let Ok(g) = text.grammars() {
            if !g.mask(m, logits) {
                s.matcher = None;
            }
        }
    }
    let tok = s.sampler.sample(logits);
    let lp = s
        .top_logprobs
        .zip(raw)
        .map(|(k, raw)| logprobs(text.tokenizer(), &raw, tok, k));
    (tok, lp)
}

impl Seq {
    /// See `Scheduler::accept`; `at_ctx`: the sequence's cache is at the context's end.
    fn take(&mut self, text: &dyn TextSide, sampled: (u32, Option<Logprobs>), at_ctx: bool) -> u32 {
        let tokenizer = text.tokenizer();
        let (mut tok, mut lp) = sampled;
        if let Some((check, so_far)) = self.end_check.as_ref().filter(|_| tokenizer.is_eog(tok)) {
            if let Some((instead, _)) = check.go_on.as_ref().filter(|(_, judge)| judge(so_far)) {
                tok = *instead;
                lp = None; // not what was sampled
            }
        }
        // The end-of-generation token counts as generated (OpenAI counts it too) but has no text.
        self.generated += 1;
        if tokenizer.is_eog(tok) {
            self.finish(FinishReason::Stop);
            return tok;
        }
        self.sampler.accept(tok);
        if let Some(p) = self.prediction.as_mut() {
            p.observe(tok);
        }
        // The grammar is complete after this token: nothing may follow, so the choice ends here.
        let grammar_done = self
            .matcher
            .as_mut()
            .is_some_and(|m| m.consume_token(tok).is_err() || m.is_stopped());
        if let Err(e) = self.arm_grammar(tok, text) {
            let _ = self.tx.send(Event::Failed(format!("grammar: {e}")));
            self.done = true;
            return tok;
        }
        let piece = self.detok.push(tokenizer, tok);
        let ended_early = match self.end_check.as_mut() {
            Some((check, so_far)) => {
                so_far.push_str(&piece);
                tok == check.token && (check.judge)(so_far)
            }
            None => false,
        };
        match self.stop.push(&piece) {
            StopOutcome::Emit(t) => self.emit(t, lp),
            StopOutcome::Stopped(t) => {
                self.emit(t, lp);
                // What was held back for the stop string is dropped with it.
                self.stop = StopMatcher::default();
                self.detok = Detokenizer::new();
                self.finish(FinishReason::Stop);
                return tok;
            }
        }
        if grammar_done || ended_early {
            self.finish(FinishReason::Stop);
        } else if self.generated >= self.max_tokens || at_ctx {
            self.finish(FinishReason::Length);
        } else {
            self.phase = Phase::Decode(tok);
        }
        tok
    }

    /// A grammar waiting for its trigger starts after the trigger token.
    fn arm_grammar(&mut self, tok: u32, text: &dyn TextSide) -> Result<(), String> {
        if self.pending.as_ref().is_some_and(|(t, _)| *t == tok) {
            let (_, g) = self.pending.take().expect("checked");
            self.matcher = Some(text.grammars().and_then(|gs| gs.matcher(&g))?);
        }
        Ok(())
    }

    fn emit(&self, text: String, logprobs: Option<Logprobs>) {
        let _ = self.tx.send(Event::Token {
            choice: self.choice,
            text,
            logprobs,
        });
    }

    /// Ends the choice: what was held back goes out, then `Finished`.
    fn finish(&mut self, reason: FinishReason) {
        let rest = format!("{}{}", self.stop.finish(), self.detok.finish());
        if !rest.is_empty() {
            self.emit(rest, None);
        }
        let _ = self.tx.send(Event::Finished {
            choice: self.choice,
            reason,
            completion_tokens: self.generated,
            prediction: self.prediction.as_ref().map(Prediction::usage),
        });
        self.done = true;
    }
}
