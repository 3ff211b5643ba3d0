//! `Transcriber`: a Whisper model directory (`model.bin`, `vocabulary.txt`, `config.json`) and
//! audio (16 kHz mono f32) turned into text and timed segments.

use std::path::Path;

use crate::ct2::Ct2Model;
use crate::greedy::{decode, Decoded, Filters};
use crate::mel::{self, LogMel};
use crate::{AudioError, Result, Vocab, Whisper};

pub struct Transcriber {
    pub model: Whisper,
    pub vocab: Vocab,
    mel: LogMel,
    suppress: Vec<u32>,
    suppress_begin: Vec<u32>,
}

/// A stretch of speech between two timestamps, seconds from the start of the audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start: f32,
    pub end: f32,
    pub text: String,
    pub tokens: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub text: String,
    pub segments: Vec<Segment>,
    /// Seconds of audio heard.
    pub duration: f32,
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
    pub fn load(dir: &Path) -> Result<Self> {
        let model = Whisper::load(&Ct2Model::parse(&read(dir, "model.bin")?)?)?;
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

    /// The decoder prompt of an English transcription.
    fn prompt(&self, timestamps: bool) -> Vec<u32> {
        let mut p = vec![self.vocab.sot];
        if self.multilingual() {
            p.extend(self.vocab.id("<|en|>"));
            p.push(self.vocab.transcribe);
        }
        if !timestamps {
            p.push(self.vocab.no_timestamps);
        }
        p
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

    /// The first 30-s window greedily, from its mel frames [n_mels, CHUNK_FRAMES].
    pub fn decode_window(&self, window: &[f32], timestamps: bool) -> Decoded {
        let enc = self.model.encode(window);
        let prompt = self.prompt(timestamps);
        let max = self.model.cfg.text_ctx - prompt.len();
        decode(&self.model, &enc, &prompt, &self.filters(timestamps), max)
    }

    /// Transcribes up to the first 30 s of `audio` with timestamps.
    pub fn transcribe(&self, audio: &[f32]) -> Transcript {
        let n_mels = self.model.cfg.n_mels;
        let mel = self.mel(audio);
        let d = self.decode_window(&mel::window(&mel, n_mels, 0), true);
        let segments = self.segments(&d.tokens, 0.0);
        Transcript {
            text: segments
                .iter()
                .map(|s| s.text.as_str())
                .collect::<String>()
                .trim()
                .to_string(),
            segments,
            duration: audio.len() as f32 / mel::SAMPLE_RATE as f32,
        }
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
            });
        }
        out
    }
}
