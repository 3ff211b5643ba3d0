//! `Transcriber`: a Whisper model directory (`model.bin`, `vocabulary.txt`, `config.json`) and
//! audio (16 kHz mono f32) turned into text and timed segments.

use std::path::Path;

use crate::alignment;
use crate::ct2::Ct2Model;
use crate::decoding::{compression_ratio, decode, detect_language, no_speech_prob, Decoded, Filters, Strategy};
use crate::mel::{self, LogMel};
use crate::whisper::DecoderState;
use crate::{AudioError, Encoder, Precision, Result, Vocab, Whisper};

pub struct Transcriber {
    pub model: Whisper,
    pub vocab: Vocab,
    pub bpe: Encoder,
    mel: LogMel,
    /// (decoder layer, head) pairs whose cross-attention follows the speech (config.json).
    alignment_heads: Vec<(usize, usize)>,
    suppress: Vec<u32>,
    suppress_begin: Vec<u32>,
}

/// A stretch of speech between two timestamps, seconds from the start of the audio.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Segment {
    pub id: usize,
    /// The window it was decoded in (its first mel frame).
    pub seek: usize,
    pub start: f32,
    pub end: f32,
    pub text: String,
    pub tokens: Vec<u32>,
    /// Each of `tokens`' log-probability.
    pub logprobs: Vec<f32>,
    /// Of the window's tokens, and the no-speech probability after its prompt.
    pub avg_logprob: f32,
    pub no_speech_prob: f32,
    /// The temperature the window was decoded at (above 0 after a fallback).
    pub temperature: f32,
    /// With `Options::word_timestamps`: its words and their times.
    pub words: Vec<Word>,
}

/// A word with its times (seconds from the start of the audio) and its tokens' mean probability.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Word {
    pub word: String,
    pub start: f32,
    pub end: f32,
    pub probability: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub text: String,
    pub segments: Vec<Segment>,
    /// Seconds of audio heard.
    pub duration: f32,
    /// The spoken language's code (`en`, `fr`, …): given, or detected on the first window.
    pub language: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Transcribe,
    /// Into English (multilingual models).
    Translate,
}

/// What to hear and how: the language (`None`: detect it; English-only models hear English), the
/// task, and the decoding, as openai-whisper's `temperature` tuple: each window decoded at the
/// first temperature — 0 is greedy (or beam search with `beam_size` > 1), above 0 sampled (seeded
/// by `seed`: the same audio gives the same text) — and again at the next while it looks wrong
/// (compression ratio above 2.4 or mean log-probability below −1, unless it looks silent).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub language: Option<String>,
    pub task: Task,
    pub temperatures: Vec<f32>,
    pub beam_size: usize,
    pub seed: u64,
    /// Word times from the alignment heads (`timestamp_granularities[]=word`).
    pub word_timestamps: bool,
    /// Text the first window continues (`prompt`: names, spelling, style), as openai-whisper's
    /// `initial_prompt` with `condition_on_previous_text` off.
    pub prompt: String,
}

impl Options {
    /// The default decoding with the API's `temperature`: 0 falls back through 0.2 … 1.0;
    /// another value is used alone.
    pub fn temperature(mut self, t: f32) -> Self {
        self.temperatures = if t > 0.0 {
            vec![t]
        } else {
            FALLBACK_TEMPERATURES.to_vec()
        };
        self
    }

    /// Temperature 0 alone: the greedy (or beam) result whatever it looks like.
    pub fn no_fallback(mut self) -> Self {
        self.temperatures = vec![0.0];
        self
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            language: None,
            task: Task::Transcribe,
            temperatures: FALLBACK_TEMPERATURES.to_vec(),
            beam_size: 1,
            seed: 0,
            prompt: String::new(),
            word_timestamps: false,
        }
    }
}

/// openai-whisper's thresholds: a window decoded again hotter when its text repeats itself
/// (compression ratio) or the model doubted it (mean log-probability); a window whose no-speech
/// probability is high and whose text was doubted is silence.
const COMPRESSION_RATIO_MAX: f32 = 2.4;
const LOGPROB_MIN: f32 = -1.0;
const NO_SPEECH_MIN: f32 = 0.6;
const FALLBACK_TEMPERATURES: [f32; 6] = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];

/// openai-whisper's boundary rule: a segment's first word starting more than 0.5 s before the
/// segment (its timestamp token) starts at the segment instead (no earlier than its end minus the
/// median word length, ≤ 0.7 s), and a last word ending more than 0.5 s after it likewise.
fn clamp_to_segments(segments: &mut [Segment]) {
    let mut lengths: Vec<f32> = segments
        .iter()
        .flat_map(|s| &s.words)
        .map(|w| w.end - w.start)
        .filter(|&d| d > 0.0)
        .collect();
    lengths.sort_by(f32::total_cmp);
    let median = lengths.get(lengths.len() / 2).copied().unwrap_or(0.0).min(0.7);
    for s in segments.iter_mut() {
        let (start, end) = (s.start, s.end);
        if let Some(w) = s.words.first_mut().filter(|w| start < w.end && start - 0.5 > w.start) {
            w.start = (w.end - median).min(start).max(0.0);
        }
        if let Some(w) = s.words.last_mut().filter(|w| end > w.start && end + 0.5 < w.end) {
            w.end = (w.start + median).max(end);
        }
    }
}

impl Decoded {
    fn silent(&self) -> bool {
        self.no_speech_prob > NO_SPEECH_MIN && self.avg_logprob() < LOGPROB_MIN
    }
}

/// Decodes with `run` at the first temperature, then hotter ones while the result looks wrong
/// (see `Options`); the last attempt stands. `text` renders tokens (timestamps dropped).
fn with_fallback(opts: &Options, text: impl Fn(&[u32]) -> String, run: impl Fn(Strategy) -> Decoded) -> Decoded {
    let mut last = None;
    for (i, &t) in opts.temperatures.iter().enumerate() {
        let strategy = match (t > 0.0, opts.beam_size > 1) {
            (true, _) => Strategy::Sample {
                temperature: t,
                seed: opts.seed.wrapping_add(i as u64),
            },
            (false, true) => Strategy::Beam { size: opts.beam_size },
            (false, false) => Strategy::Greedy,
        };
        let d = run(strategy);
        let wrong = compression_ratio(&text(&d.tokens)) > COMPRESSION_RATIO_MAX || d.avg_logprob() < LOGPROB_MIN;
        let done = !wrong || d.silent();
        last = Some(d);
        if done {
            break;
        }
    }
    last.unwrap_or_else(|| run(Strategy::Greedy))
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>> {
    let p = dir.join(name);
    std::fs::read(&p).map_err(|e| AudioError::Io(format!("cannot read {}: {e}", p.display())))
}

fn heads(v: &serde_json::Value) -> Vec<(usize, usize)> {
    let pair = |p: &serde_json::Value| Some((p.get(0)?.as_u64()? as usize, p.get(1)?.as_u64()? as usize));
    v["alignment_heads"]
        .as_array()
        .map(|a| a.iter().filter_map(pair).collect())
        .unwrap_or_default()
}

fn ids(v: &serde_json::Value, key: &str) -> Vec<u32> {
    v[key]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_u64().map(|x| x as u32)).collect())
        .unwrap_or_default()
}

impl Transcriber {
    /// The model in `dir` (model.bin, vocabulary.txt, config.json) with its weights held at `prec`.
    pub fn load(dir: &Path, prec: Precision) -> Result<Self> {
        let model = Whisper::load(&Ct2Model::parse(&read(dir, "model.bin")?)?, prec)?;
        let vocab_text = String::from_utf8(read(dir, "vocabulary.txt")?)
            .map_err(|_| AudioError::Format("vocabulary.txt is not UTF-8".into()))?;
        let vocab = Vocab::parse(&vocab_text)?;
        if vocab.len() != model.cfg.vocab {
            return Err(AudioError::Format(format!(
                "vocabulary.txt has {} tokens, the model {}",
                vocab.len(),
                model.cfg.vocab
            )));
        }
        let config: serde_json::Value = serde_json::from_slice(&read(dir, "config.json")?)
            .map_err(|e| AudioError::Format(format!("config.json: {e}")))?;
        Ok(Self {
            mel: LogMel::new(model.cfg.n_mels),
            alignment_heads: heads(&config),
            suppress: ids(&config, "suppress_ids"),
            suppress_begin: ids(&config, "suppress_ids_begin"),
            bpe: Encoder::new(&vocab),
            model,
            vocab,
        })
    }

    /// English-only models have no language or task tokens to choose.
    pub fn multilingual(&self) -> bool {
        self.model.cfg.vocab >= 51_865
    }

    fn filters(&self, timestamps: bool) -> Filters<'_> {
        Filters {
            vocab: &self.vocab,
            suppress: &self.suppress,
            suppress_begin: &self.suppress_begin,
            timestamps,
        }
    }

    /// The log-mel spectrogram of `audio` (16 kHz mono), 30 s of silence appended.
    pub fn mel(&self, audio: &[f32]) -> Vec<f32> {
        self.mel.compute(audio)
    }

    /// `<|startofprev|>` and the prompt's last tokens (at most half the decoder's context, as
    /// openai-whisper keeps), or nothing for an empty prompt.
    fn prompt_tokens(&self, prompt: &str) -> Vec<u32> {
        let (Some(prev), false) = (self.vocab.start_of_prev, prompt.trim().is_empty()) else {
            return Vec::new();
        };
        let ids = self.bpe.encode(&format!(" {}", prompt.trim()));
        let keep = self.model.cfg.text_ctx / 2 - 1;
        std::iter::once(prev)
            .chain(ids[ids.len().saturating_sub(keep)..].iter().copied())
            .collect()
    }

    /// Whether `code` is a language this model hears (`<|code|>` is in its vocabulary).
    pub fn knows_language(&self, code: &str) -> bool {
        if self.multilingual() {
            self.vocab.languages.iter().any(|l| l.0 == code)
        } else {
            code == "en"
        }
    }

    /// One 30-s window decoded from its mel frames [n_mels, CHUNK_FRAMES] as `opts` says (with
    /// the temperature fallback), alone in the compute pool (generation steps of the text tiers
    /// wait for it, and it for them). The prompt is `<|startoftranscript|>`, then on multilingual
    /// models the language (`language`, or the likeliest after the start token) and the task,
    /// then `<|notimestamps|>` when timestamps are off. `frames`: mel frames of audio in the
    /// window (word alignment reads that many). Returns the window and its language.
    pub fn decode_window(
        &self,
        window: &[f32],
        frames: usize,
        timestamps: bool,
        language: Option<&str>,
        opts: &Options,
    ) -> (Decoded, String) {
        tandem_kernels::pool::install(|| {
            let enc = self.model.encode(window);
            let mut st = self.model.start(&enc);
            let fresh = st.clone();
            let v = &self.vocab;
            let mut first = self.prompt_tokens(&opts.prompt);
            first.push(v.sot);
            let at_sot = self.model.step(&mut st, &first);
            let no_speech = no_speech_prob(v, &at_sot);
            let mut rest = Vec::new();
            let lang = if self.multilingual() {
                let lang = language.map(str::to_string).or_else(|| detect_language(v, &at_sot));
                let lang = lang.unwrap_or_else(|| "en".into());
                rest.extend(v.id(&format!("<|{lang}|>")));
                rest.push(match opts.task {
                    Task::Translate => v.translate.unwrap_or(v.transcribe),
                    Task::Transcribe => v.transcribe,
                });
                lang
            } else {
                "en".into()
            };
            if !timestamps {
                rest.push(v.no_timestamps);
            }
            let logits = if rest.is_empty() {
                at_sot
            } else {
                self.model.step(&mut st, &rest)
            };
            let max = self.model.cfg.text_ctx - 1 - rest.len() - first.len();
            let filters = self.filters(timestamps);
            let text = |t: &[u32]| self.vocab.text(t);
            let mut d = with_fallback(opts, text, |strategy| {
                let mut d = decode(&self.model, st.clone(), logits.clone(), &filters, max, strategy);
                d.no_speech_prob = no_speech;
                d
            });
            if opts.word_timestamps {
                d.token_starts = self.token_starts(&fresh, &rest, &d.tokens, frames);
            }
            (d, lang)
        })
    }

    /// When each text token of `tokens` starts (seconds into the window), then the end of text:
    /// the alignment of the text after the start token, the language and task of `rest`, and
    /// `<|notimestamps|>`, from a decoder state that has seen nothing yet.
    fn token_starts(&self, fresh: &DecoderState, rest: &[u32], tokens: &[u32], frames: usize) -> Vec<f32> {
        let v = &self.vocab;
        let task = rest.iter().copied().filter(|&t| t != v.no_timestamps);
        let prefix: Vec<u32> = [v.sot].into_iter().chain(task).chain([v.no_timestamps]).collect();
        let text: Vec<u32> = tokens.iter().copied().filter(|&t| t < v.eot).collect();
        if text.is_empty() || self.alignment_heads.is_empty() {
            return Vec::new();
        }
        let heads = &self.alignment_heads;
        alignment::align(&self.model, fresh, &prefix, &text, v.eot, heads, frames).1
    }

    /// Transcribes `audio` (16 kHz mono) window by window as openai-whisper does: each 30-s
    /// window decoded with timestamps, the next one starting at the last complete segment's end
    /// (or after the window when its text ran to the end). `on_window` sees each window's
    /// segments as soon as they are decoded, and stops the transcription by returning false (a
    /// streaming client gone).
    pub fn transcribe(
        &self,
        audio: &[f32],
        opts: &Options,
        mut on_window: impl FnMut(&[Segment]) -> bool,
    ) -> Transcript {
        let n_mels = self.model.cfg.n_mels;
        let mel = self.mel(audio);
        let content = audio.len() / mel::HOP;
        let mut segments: Vec<Segment> = Vec::new();
        let mut language = opts.language.clone();
        let mut window_opts = opts.clone();
        let mut seek = 0;
        while seek < content {
            let offset = seek as f32 * mel::HOP as f32 / mel::SAMPLE_RATE as f32;
            let window_frames = mel::CHUNK_FRAMES.min(content - seek);
            let (d, lang) = self.decode_window(
                &mel::window(&mel, n_mels, seek),
                window_frames,
                true,
                language.as_deref(),
                &window_opts,
            );
            // The prompt conditions the first window only.
            window_opts.prompt.clear();
            // The first window's language holds for the rest, as openai-whisper detects it once.
            language.get_or_insert(lang);
            let spaceless = matches!(language.as_deref(), Some("zh" | "ja" | "th" | "lo" | "my" | "yue"));
            let (mut found, advance) = self.window_segments(&d, offset, window_frames, spaceless);
            for s in found.iter_mut() {
                s.id = segments.len();
                s.seek = seek;
                segments.push(s.clone());
            }
            if !on_window(&found) {
                break;
            }
            seek += advance.max(1);
        }
        Transcript {
            text: segments
                .iter()
                .map(|s| s.text.as_str())
                .collect::<String>()
                .trim()
                .to_string(),
            segments,
            duration: audio.len() as f32 / mel::SAMPLE_RATE as f32,
            language: language.unwrap_or_else(|| "en".into()),
        }
    }

    /// A decoded window's segments, and how many frames to advance: to the end of the last
    /// complete segment when the window ended on a timestamp pair, else the whole window.
    fn window_segments(
        &self,
        d: &Decoded,
        offset: f32,
        window_frames: usize,
        spaceless: bool,
    ) -> (Vec<Segment>, usize) {
        let tb = self.vocab.timestamp_begin;
        let toks = &d.tokens;
        let is_ts = |i: usize| toks[i] >= tb;
        let single_ending = toks.len() >= 2 && !is_ts(toks.len() - 2) && is_ts(toks.len() - 1);
        let pairs: Vec<usize> = (1..toks.len()).filter(|&i| is_ts(i) && is_ts(i - 1)).collect();
        if d.silent() {
            // openai-whisper skips the whole window as silence.
            return (Vec::new(), window_frames);
        }
        let mut out = self.segments(toks, &d.logprobs, offset);
        for s in out.iter_mut() {
            s.avg_logprob = d.avg_logprob();
            s.no_speech_prob = d.no_speech_prob;
            s.temperature = d.temperature;
        }
        if !d.token_starts.is_empty() {
            self.attach_words(&mut out, &d.token_starts, offset, spaceless);
        }
        let window_end = offset + window_frames as f32 * mel::HOP as f32 / mel::SAMPLE_RATE as f32;
        if let Some(last) = out.last_mut() {
            // Text after the last timestamp runs to the end of the window.
            if last.end <= last.start {
                last.end = window_end;
            }
        }
        let advance = match pairs.last() {
            Some(&i) if !single_ending => (toks[i - 1] - tb) as usize * 2,
            _ => window_frames,
        };
        (out, advance)
    }

    /// The words of a window's segments, timed by `starts` (each text token's start in the
    /// window, then the end of text; `alignment::align`), each word given to the segment holding
    /// its first token; `spaceless`: a language written without spaces (words are characters).
    fn attach_words(&self, segments: &mut [Segment], starts: &[f32], offset: f32, spaceless: bool) {
        let tokens: Vec<u32> = segments.iter().flat_map(|s| s.tokens.iter().copied()).collect();
        let lps: Vec<f32> = segments.iter().flat_map(|s| s.logprobs.iter().copied()).collect();
        let pieces: Vec<&[u8]> = tokens.iter().map(|&t| self.vocab.token_bytes(t)).collect();
        let mut first = 0;
        let bounds: Vec<usize> = segments
            .iter()
            .map(|s| {
                first += s.tokens.len();
                first
            })
            .collect();
        for w in alignment::words(&pieces, starts, spaceless) {
            let seg = bounds
                .iter()
                .position(|&b| w.tokens.start < b)
                .unwrap_or(segments.len() - 1);
            let n = w.tokens.len().max(1) as f32;
            let probability = lps[w.tokens.clone()].iter().map(|l| l.exp()).sum::<f32>() / n;
            segments[seg].words.push(Word {
                word: w.word,
                start: offset + w.start,
                end: offset + w.end,
                probability,
            });
        }
        clamp_to_segments(segments);
    }

    /// Segments between timestamp tokens (`<|t0|> text <|t1|>`), offset by `offset` seconds; text
    /// after the last timestamp runs to its end.
    fn segments(&self, tokens: &[u32], logprobs: &[f32], offset: f32) -> Vec<Segment> {
        let tb = self.vocab.timestamp_begin;
        let time = |t: u32| offset + (t - tb) as f32 * 0.02;
        let mut out = Vec::new();
        let mut start = None;
        let (mut text, mut lps) = (Vec::new(), Vec::new());
        for (&t, &lp) in tokens.iter().zip(logprobs) {
            if t >= tb {
                match start {
                    Some(s) if !text.is_empty() => {
                        out.push(Segment {
                            start: s,
                            end: time(t),
                            text: self.vocab.text(&text),
                            tokens: std::mem::take(&mut text),
                            logprobs: std::mem::take(&mut lps),
                            ..Segment::default()
                        });
                        start = None;
                    }
                    _ => start = Some(time(t)),
                }
            } else if t < self.vocab.eot {
                text.push(t);
                lps.push(lp);
            }
        }
        if !text.is_empty() {
            let s = start.unwrap_or(offset);
            out.push(Segment {
                start: s,
                end: s,
                text: self.vocab.text(&text),
                tokens: text,
                logprobs: lps,
                ..Segment::default()
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decode whose text is `text` repeated `times` (token i = char i) at `logprob` a token.
    fn fake(s: Strategy, times: usize, logprob: f32, no_speech: f32) -> Decoded {
        let tokens: Vec<u32> = (0..times * 10).map(|i| i as u32 % 10).collect();
        Decoded {
            sum_logprob: logprob * (tokens.len() + 1) as f32,
            logprobs: vec![logprob; tokens.len()],
            token_starts: Vec::new(),
            tokens,
            ended: true,
            no_speech_prob: no_speech,
            temperature: match s {
                Strategy::Sample { temperature, .. } => temperature,
                _ => 0.0,
            },
        }
    }

    fn text(t: &[u32]) -> String {
        t.iter().map(|&c| char::from(b'a' + c as u8)).collect()
    }

    #[test]
    fn fallback_reheats_only_what_looks_wrong() {
        let opts = Options::default();
        // Fine at 0: one attempt.
        let d = with_fallback(&opts, text, |s| fake(s, 1, -0.2, 0.0));
        assert_eq!(d.temperature, 0.0);
        // Repetitive (compression ratio > 2.4) until 0.6.
        let d = with_fallback(&opts, text, |s| match fake(s, 1, -0.2, 0.0).temperature {
            t if t < 0.5 => fake(s, 30, -0.2, 0.0),
            _ => fake(s, 1, -0.2, 0.0),
        });
        assert!((d.temperature - 0.6).abs() < 1e-6, "{}", d.temperature);
        // Doubtful everywhere: the last temperature stands.
        let d = with_fallback(&opts, text, |s| fake(s, 1, -2.0, 0.0));
        assert_eq!(d.temperature, 1.0);
        // Doubtful but probably silence: no fallback.
        let d = with_fallback(&opts, text, |s| fake(s, 1, -2.0, 0.9));
        assert_eq!(d.temperature, 0.0);
        // A temperature given alone, and the beam at 0.
        let d = with_fallback(&Options::default().temperature(0.4), text, |s| fake(s, 1, -2.0, 0.0));
        assert_eq!(d.temperature, 0.4);
        let beam = Options {
            beam_size: 5,
            ..Options::default()
        };
        with_fallback(&beam, text, |s| {
            assert!(matches!(s, Strategy::Beam { size: 5 } | Strategy::Sample { .. }));
            fake(s, 1, -0.1, 0.0)
        });
    }
}
