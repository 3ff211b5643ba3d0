//! Hearing: Whisper speech-to-text on the project's kernels.
//!
//! Layout
//! - `ct2`: CTranslate2's `model.bin`, read with every length checked.
//! - `mel`: the log-mel front end (STFT, slaney mel filters, whisper's scaling).
//! - `whisper`: the encoder and decoder math.
//! - `vocab`: the byte-level vocabulary and the special tokens.
//! - `alignment`: word timestamps (alignment heads' cross-attention, DTW, words).
//! - `bpe`: text to tokens (tiktoken's byte-pair encoding over the vocabulary's ranks), for prompts.
//! - `decoding`: one window decoded (greedy, sampled or beam search) under whisper's logit filters.
//! - `input`: audio files (wav, flac, mp3, ogg/vorbis, m4a) decoded and resampled to 16 kHz mono.
//! - `transcriber`: `Transcriber` — a model directory loaded; audio → text and segments.

pub mod alignment;
mod bpe;
pub mod ct2;
mod decoding;
pub mod input;
pub mod languages;
pub mod mel;
pub mod opus;
mod transcriber;
mod vocab;
mod whisper;

pub use bpe::Encoder;
pub use decoding::{compression_ratio, Decoded, Strategy};
pub use transcriber::{Options, Segment, Task, Transcriber, Transcript, Word};
pub use vocab::Vocab;
pub use whisper::{Precision, Whisper};

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("{0}")]
    Io(String),
    #[error("bad model file: {0}")]
    Format(String),
    #[error("{0}")]
    Input(String),
}

pub type Result<T> = std::result::Result<T, AudioError>;
