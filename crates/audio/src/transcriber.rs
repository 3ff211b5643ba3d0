//! `Transcriber`: a Whisper model directory (`model.bin`, `vocabulary.txt`, `config.json`) and
//! audio (16 kHz mono f32) turned into text and timed segments.

use std::path::Path;

use crate::ct2::Ct2Model;
use crate::greedy::{decode, detect_language, no_speech_prob, Decoded, Filters};
use crate::mel::{self, LogMel};
use crate::{AudioError, Precision, Result, Vocab, Whisper};

pub struct Transcriber {
    pub model: Whisper,
    pub vocab: Vocab,
    mel: LogMel,
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
    /// Of the window's tokens, and the no-speech probability after its prompt.
    pub avg_logprob: f32,
    pub no_speech_prob: f32,
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

/// What to hear: the language (`None`: detect it; English-only models hear English) and the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub language: Option<String>,
    pub task: Task,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            language: None,
            task: Task::Transcribe,
        }
    }
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>> {
    let p = dir.join(name);
    std::fs::read(&p).map_err(|e| AudioError::Io(format!("cannot read {}: {e}", p.display())))
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
            suppress: ids(&config, "suppress_ids"),
            suppress_begin: ids(&config, "suppress_ids_begin"),
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

    /// Whether `code` is a language this model hears (`<|code|>` is in its vocabulary).
    pub fn knows_language(&self, code: &str) -> bool {
        if self.multilingual() {
            self.vocab.languages.iter().any(|l| l.0 == code)
        } else {
            code == "en"
        }
    }

    /// One 30-s window decoded greedily from its mel frames [n_mels, CHUNK_FRAMES], alone in the
    /// compute pool (generation steps of the text tiers wait for it, and it for them). The prompt
    /// is `<|startoftranscript|>`, then on multilingual models the language (`language`, or the
    /// likeliest after the start token) and the task, then `<|notimestamps|>` when timestamps are
    /// off. Returns the window and the language it was decoded in.
    pub fn decode_window(
        &self,
        window: &[f32],
        timestamps: bool,
        language: Option<&str>,
        task: Task,
    ) -> (Decoded, String) {
        tandem_kernels::pool::install(|| {
            let enc = self.model.encode(window);
            let mut st = self.model.start(&enc);
            let v = &self.vocab;
            let at_sot = self.model.step(&mut st, &[v.sot]);
            let no_speech = no_speech_prob(v, &at_sot);
            let mut rest = Vec::new();
            let lang = if self.multilingual() {
                let lang = language.map(str::to_string).or_else(|| detect_language(v, &at_sot));
                let lang = lang.unwrap_or_else(|| "en".into());
                rest.extend(v.id(&format!("<|{lang}|>")));
                rest.push(match task {
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
            let max = self.model.cfg.text_ctx - 1 - rest.len();
            let d = decode(&self.model, st, logits, &self.filters(timestamps), max, no_speech);
            (d, lang)
        })
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
        let mut seek = 0;
        while seek < content {
            let offset = seek as f32 * mel::HOP as f32 / mel::SAMPLE_RATE as f32;
            let (d, lang) = self.decode_window(&mel::window(&mel, n_mels, seek), true, language.as_deref(), opts.task);
            // The first window's language holds for the rest, as openai-whisper detects it once.
            language.get_or_insert(lang);
            let window_frames = mel::CHUNK_FRAMES.min(content - seek);
            let (mut found, advance) = self.window_segments(&d, offset, window_frames);
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
    fn window_segments(&self, d: &Decoded, offset: f32, window_frames: usize) -> (Vec<Segment>, usize) {
        let tb = self.vocab.timestamp_begin;
        let toks = &d.tokens;
        let is_ts = |i: usize| toks[i] >= tb;
        let single_ending = toks.len() >= 2 && !is_ts(toks.len() - 2) && is_ts(toks.len() - 1);
        let pairs: Vec<usize> = (1..toks.len()).filter(|&i| is_ts(i) && is_ts(i - 1)).collect();
        let avg_logprob = d.sum_logprob / (toks.len() + 1) as f32;
        let mut out = self.segments(toks, offset);
        for s in out.iter_mut() {
            s.avg_logprob = avg_logprob;
            s.no_speech_prob = d.no_speech_prob;
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

    /// Segments between timestamp tokens (`<|t0|> text <|t1|>`), offset by `offset` seconds; text
    /// after the last timestamp runs to its end.
    fn segments(&self, tokens: &[u32], offset: f32) -> Vec<Segment> {
        let tb = self.vocab.timestamp_begin;
        let time = |t: u32| offset + (t - tb) as f32 * 0.02;
        let mut out = Vec::new();
        let mut start = None;
        let mut text = Vec::new();
        for &t in tokens {
            if t >= tb {
                match start {
                    Some(s) if !text.is_empty() => {
                        out.push(Segment {
                            start: s,
                            end: time(t),
                            text: self.vocab.text(&text),
                            tokens: std::mem::take(&mut text),
                            ..Segment::default()
                        });
                        start = None;
                    }
                    _ => start = Some(time(t)),
                }
            } else if t < self.vocab.eot {
                text.push(t);
            }
        }
        if !text.is_empty() {
            let s = start.unwrap_or(offset);
            out.push(Segment {
                start: s,
                end: s,
                text: self.vocab.text(&text),
                tokens: text,
                ..Segment::default()
            });
        }
        out
    }
}
