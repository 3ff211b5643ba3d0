//! Greedy decoding of one 30-s window as openai-whisper's `DecodingTask` (and CTranslate2's
//! `generate`) does it at temperature 0: the prompt (`<|startoftranscript|>`, language, task,
//! maybe `<|notimestamps|>`), then the most likely token under the logit filters — suppressed
//! tokens always, a blank or end of text never first, and with timestamps the timestamp rules.

use crate::vocab::Vocab;
use crate::whisper::{DecoderState, Whisper};

/// The latest first timestamp allowed (1.0 s), in 20-ms steps.
const MAX_INITIAL_TIMESTAMP: u32 = 50;

pub struct Filters<'a> {
    pub vocab: &'a Vocab,
    /// Never sampled (the model's `suppress_ids`).
    pub suppress: &'a [u32],
    /// Never sampled first (`suppress_ids_begin`: the blank and end of text).
    pub suppress_begin: &'a [u32],
    pub timestamps: bool,
}

/// One decoded window: its tokens after the prompt (end of text excluded), the sum of their
/// log-probabilities, whether it ended (rather than hitting the length cap), and the probability
/// of the no-speech token after the prompt.
pub struct Decoded {
    pub tokens: Vec<u32>,
    pub sum_logprob: f32,
    pub ended: bool,
    pub no_speech_prob: f32,
}

impl Filters<'_> {
    /// Masks `logits` (set to −∞) for the step after `generated` tokens.
    fn apply(&self, logits: &mut [f32], generated: &[u32]) {
        let neg = f32::NEG_INFINITY;
        let mut ban = |t: u32| {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = neg;
            }
        };
        if generated.is_empty() {
            self.suppress_begin.iter().for_each(|&t| ban(t));
        }
        self.suppress.iter().for_each(|&t| ban(t));
        if self.timestamps {
            self.timestamp_rules(logits, generated);
        }
    }

    /// openai-whisper's `ApplyTimestampRules`: timestamps come in pairs (a lone one is followed
    /// by text or end; after a pair, text), never go backwards, the first is at most 1.0 s, and a
    /// timestamp is forced when all timestamps together are likelier than any text token.
    fn timestamp_rules(&self, logits: &mut [f32], generated: &[u32]) {
        let (tb, eot) = (self.vocab.timestamp_begin as usize, self.vocab.eot as usize);
        let (neg, n) = (f32::NEG_INFINITY, logits.len());
        logits[self.vocab.no_timestamps as usize] = neg;
        let is_ts = |t: &u32| *t as usize >= tb;
        let last = generated.last().is_some_and(is_ts);
        let penultimate = generated.len() < 2 || is_ts(&generated[generated.len() - 2]);
        if last {
            if penultimate {
                logits[tb..].iter_mut().for_each(|l| *l = neg);
            } else {
                logits[..eot].iter_mut().for_each(|l| *l = neg);
            }
        }
        if let Some(&t) = generated.iter().rev().find(|t| is_ts(t)) {
            let floor = if last && !penultimate {
                t as usize
            } else {
                t as usize + 1
            };
            logits[tb..floor.min(n)].iter_mut().for_each(|l| *l = neg);
        }
        if generated.is_empty() {
            logits[..tb].iter_mut().for_each(|l| *l = neg);
            let last_allowed = tb + MAX_INITIAL_TIMESTAMP as usize;
            logits[(last_allowed + 1).min(n)..].iter_mut().for_each(|l| *l = neg);
        }
        let lp = log_softmax(logits);
        let ts_mass = log_sum_exp(&lp[tb..]);
        let text_max = lp[..tb].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if ts_mass > text_max {
            logits[..tb].iter_mut().for_each(|l| *l = neg);
        }
    }
}

/// The probability of the no-speech token in `logits` (those at `<|startoftranscript|>`).
pub fn no_speech_prob(vocab: &Vocab, logits: &[f32]) -> f32 {
    vocab.no_speech.map_or(0.0, |t| log_softmax(logits)[t as usize].exp())
}

/// The language token likeliest in `logits` (at `<|startoftranscript|>`), as openai-whisper's
/// `detect_language` picks it.
pub fn detect_language(vocab: &Vocab, logits: &[f32]) -> Option<String> {
    vocab
        .languages
        .iter()
        .max_by(|a, b| logits[a.1 as usize].total_cmp(&logits[b.1 as usize]))
        .map(|l| l.0.clone())
}

/// Decodes one window greedily from a state fed with the prompt and the logits after it, at most
/// `max_tokens` new tokens.
pub fn decode(
    model: &Whisper,
    mut st: DecoderState,
    mut logits: Vec<f32>,
    f: &Filters,
    max_tokens: usize,
    no_speech_prob: f32,
) -> Decoded {
    let mut out = Decoded {
        tokens: Vec::new(),
        sum_logprob: 0.0,
        ended: false,
        no_speech_prob,
    };
    while out.tokens.len() < max_tokens {
        f.apply(&mut logits, &out.tokens);
        let (tok, _) = logits.iter().enumerate().fold(
            (0, f32::NEG_INFINITY),
            |best, (i, &l)| if l > best.1 { (i, l) } else { best },
        );
        out.sum_logprob += logits[tok] - log_sum_exp(&logits);
        if tok as u32 == f.vocab.eot {
            out.ended = true;
            break;
        }
        out.tokens.push(tok as u32);
        if st.len >= model.cfg.text_ctx {
            break;
        }
        logits = model.step(&mut st, &[tok as u32]);
    }
    out
}

fn log_sum_exp(x: &[f32]) -> f32 {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if m == f32::NEG_INFINITY {
        return m;
    }
    m + x.iter().map(|v| (v - m).exp()).sum::<f32>().ln()
}

fn log_softmax(x: &[f32]) -> Vec<f32> {
    let z = log_sum_exp(x);
    x.iter().map(|v| v - z).collect()
}
