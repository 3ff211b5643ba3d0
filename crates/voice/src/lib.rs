//! Speaking: text → phonemes (the espeak-ng program, as Piper phonemises) → phoneme ids (the
//! voice's map) → a waveform from the Piper VITS graph run by ONNX Runtime's shared library,
//! loaded at run time (`tract` 0.23.9 cannot analyse this graph; see docs/voice.md).
//!
//! Layout
//! - `espeak_data`: the pinned espeak-ng 1.52 data with Piper's build's linking glide shown.
//! - `phonemes`: espeak-ng's IPA per clause, each with the punctuation that ended it, by sentence.
//! - `encode`: the response formats (mp3, opus, aac, flac, wav, pcm).
//! - `voice`: the voice's config (`.onnx.json`), phoneme ids, and synthesis on ONNX Runtime.

pub mod encode;
pub mod espeak_data;
pub mod phonemes;
pub mod voice;

pub use phonemes::Phonemizer;
pub use voice::{Scales, Voice};

#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error("{0}")]
    Io(String),
    #[error("bad voice file: {0}")]
    Format(String),
    #[error("espeak-ng: {0}")]
    Phonemes(String),
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
}

pub type Result<T> = std::result::Result<T, VoiceError>;
