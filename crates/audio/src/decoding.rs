//! Decoding one 30-s window as openai-whisper's `DecodingTask` does, after the prompt
//! (`<|startoftranscript|>`, language, task, maybe `<|notimestamps|>`): greedy (the most likely
//! token; CTranslate2's `generate` with beam 1 gives the same ids), sampling at a temperature,
//! or beam search (openai's `BeamSearchDecoder`, patience 1, ranked by mean log-probability) —
//! always under the logit filters: suppressed tokens, a blank or end of text never first, and with
//! timestamps the timestamp rules.

use tandem_kernels::rng::Rng;

use crate::vocab::Vocab;
use crate::whisper::{DecoderState, Whisper};

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    Greedy,
    /// From softmax(logits / temperature); the seed makes a window's draw reproducible.
    Sample {
        temperature: f32,
        seed: u64,
    },
    /// `size` hypotheses kept per step, the best finished one by mean log-probability.
    Beam {
        size: usize,
    },
}

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
/// log-probabilities (of the untempered distribution, end of text included), whether it ended
/// (rather than hitting the length cap), the probability of the no-speech token after the
/// prompt, and the temperature it was decoded at.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub tokens: Vec<u32>,
    /// Each token's log-probability (untempered), aligned with `tokens`.
    pub logprobs: Vec<f32>,
    pub sum_logprob: f32,
    pub ended: bool,
    pub no_speech_prob: f32,
    pub temperature: f32,
    /// With word timestamps: when each text token starts (seconds into the window), then the end.
    pub token_starts: Vec<f32>,
}

impl Decoded {
    /// openai-whisper's average: the sum over the tokens plus the end of text.
    pub fn avg_logprob(&self) -> f32 {
        self.sum_logprob / (self.tokens.len() + 1) as f32
    }
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

/// Decodes one window from a state fed with the prompt and the logits after it, at most
/// `max_tokens` new tokens.
pub fn decode(
    model: &Whisper,
    st: DecoderState,
    logits: Vec<f32>,
    f: &Filters,
    max_tokens: usize,
    strategy: Strategy,
) -> Decoded {
    match strategy {
        Strategy::Beam { size } if size > 1 => beam(model, st, logits, f, max_tokens, size),
        Strategy::Sample { temperature, seed } if temperature > 0.0 => {
            let mut rng = Rng::new(seed);
            let mut d = one_path(model, st, logits, f, max_tokens, |l| sample(l, temperature, &mut rng));
            d.temperature = temperature;
            d
        }
        _ => one_path(model, st, logits, f, max_tokens, argmax),
    }
}

/// Greedy or sampled decoding: one hypothesis, `pick` choosing each token from the masked logits.
fn one_path(
    model: &Whisper,
    mut st: DecoderState,
    mut logits: Vec<f32>,
    f: &Filters,
    max_tokens: usize,
    mut pick: impl FnMut(&[f32]) -> usize,
) -> Decoded {
    let mut out = Decoded {
        tokens: Vec::new(),
        logprobs: Vec::new(),
        sum_logprob: 0.0,
        ended: false,
        no_speech_prob: 0.0,
        temperature: 0.0,
        token_starts: Vec::new(),
    };
    while out.tokens.len() < max_tokens {
        f.apply(&mut logits, &out.tokens);
        let tok = pick(&logits);
        let lp = logits[tok] - log_sum_exp(&logits);
        out.sum_logprob += lp;
        if tok as u32 == f.vocab.eot {
            out.ended = true;
            break;
        }
        out.tokens.push(tok as u32);
        out.logprobs.push(lp);
        if st.len >= model.cfg.text_ctx {
            break;
        }
        logits = model.step(&mut st, &[tok as u32]);
    }
    out
}

fn argmax(logits: &[f32]) -> usize {
    logits
        .iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |best, (i, &l)| if l > best.1 { (i, l) } else { best },
        )
        .0
}

/// A draw from softmax(logits / temperature) (masked entries are −∞: never drawn).
fn sample(logits: &[f32], temperature: f32, rng: &mut Rng) -> usize {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let w: Vec<f64> = logits.iter().map(|&l| (((l - m) / temperature) as f64).exp()).collect();
    let mut r = rng.next_f64() * w.iter().sum::<f64>();
    for (i, &p) in w.iter().enumerate() {
        if r < p {
            return i;
        }
        r -= p;
    }
    argmax(logits)
}

/// A live hypothesis of the beam: its tokens, their summed log-probability, its decoder state
/// and the logits after its last token.
struct Hypothesis {
    tokens: Vec<u32>,
    logprobs: Vec<f32>,
    sum: f32,
    st: DecoderState,
    logits: Vec<f32>,
}

/// openai-whisper's beam search (patience 1): each step every hypothesis offers its `size + 1`
/// likeliest continuations; the best `size` that do not end become the next beam, those that end
/// (scored up to the beam's last pick) are kept as finished until `size` have finished. The
/// finished (or, at the length cap, live) hypothesis with the best mean log-probability wins.
fn beam(model: &Whisper, st: DecoderState, logits: Vec<f32>, f: &Filters, max_tokens: usize, size: usize) -> Decoded {
    let mut live = vec![Hypothesis {
        tokens: Vec::new(),
        logprobs: Vec::new(),
        sum: 0.0,
        st,
        logits,
    }];
    // Finished: (tokens, their log-probabilities, score).
    let mut finished: Vec<(Vec<u32>, Vec<f32>, f32)> = Vec::new();
    for _ in 0..max_tokens {
        // Candidates: (score, hypothesis, token, the token's log-probability).
        let mut cands: Vec<(f32, usize, u32, f32)> = Vec::new();
        for (h, hyp) in live.iter_mut().enumerate() {
            f.apply(&mut hyp.logits, &hyp.tokens);
            let z = log_sum_exp(&hyp.logits);
            let mut idx: Vec<usize> = (0..hyp.logits.len()).collect();
            let k = (size + 1).min(idx.len());
            idx.select_nth_unstable_by(k - 1, |&a, &b| hyp.logits[b].total_cmp(&hyp.logits[a]));
            cands.extend(
                idx[..k]
                    .iter()
                    .map(|&t| (hyp.sum + hyp.logits[t] - z, h, t as u32, hyp.logits[t] - z)),
            );
        }
        cands.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut next = Vec::new();
        for &(score, h, t, lp) in &cands {
            if !score.is_finite() {
                continue;
            }
            if t == f.vocab.eot {
                finished.push((live[h].tokens.clone(), live[h].logprobs.clone(), score));
            } else {
                next.push((score, h, t, lp));
                if next.len() == size {
                    break;
                }
            }
        }
        finished.truncate(size);
        if finished.len() >= size || next.is_empty() {
            break;
        }
        live = next
            .into_iter()
            .map(|(score, h, t, lp)| {
                let parent = &live[h];
                let (mut tokens, mut logprobs) = (parent.tokens.clone(), parent.logprobs.clone());
                tokens.push(t);
                logprobs.push(lp);
                let mut st = parent.st.clone();
                let logits = if st.len < model.cfg.text_ctx {
                    model.step(&mut st, &[t])
                } else {
                    Vec::new()
                };
                Hypothesis {
                    tokens,
                    logprobs,
                    sum: score,
                    st,
                    logits,
                }
            })
            .collect();
        if live.iter().any(|h| h.logits.is_empty()) {
            break;
        }
    }
    let ended = !finished.is_empty();
    if !ended {
        finished = live.into_iter().map(|h| (h.tokens, h.logprobs, h.sum)).collect();
    }
    let mean = |(t, _, s): &(Vec<u32>, Vec<f32>, f32)| s / t.len().max(1) as f32;
    let best = finished
        .into_iter()
        .max_by(|a, b| mean(a).total_cmp(&mean(b)))
        .unwrap_or_default();
    Decoded {
        tokens: best.0,
        logprobs: best.1,
        sum_logprob: best.2,
        ended,
        no_speech_prob: 0.0,
        temperature: 0.0,
        token_starts: Vec::new(),
    }
}

/// Whisper's repetition measure: the text's bytes over their zlib-compressed size.
pub fn compression_ratio(text: &str) -> f32 {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = z.write_all(text.as_bytes());
    let packed = z.finish().map(|v| v.len()).unwrap_or(1).max(1);
    text.len() as f32 / packed as f32
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
