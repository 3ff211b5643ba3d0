//! Text in and out of the model.
//!
//! Layout
//! - `bytes`: the GPT-2 byte ↔ unicode mapping of byte-level BPE vocabularies.
//! - `bpe`: `Tokenizer` — vocabulary and merges from GGUF, the qwen2 pre-tokenizer, special-token modes.
//! - `spm`: SentencePiece BPE by piece scores (Gemma's vocabularies), inside `Tokenizer`.
//! - `detok`: `Detokenizer` — incremental, never emits a broken UTF-8 sequence.
//! - `chat`: `ChatTemplate` — the model's own Jinja template rendered with minijinja after normalising
//!   OpenAI-style messages; user text is tokenised so it can never produce a control token.

mod bpe;
mod bytes;
pub mod chat;
mod detok;
mod spm;

pub use bpe::{SpecialMode, Tokenizer, TYPE_BYTE, TYPE_CONTROL, TYPE_NORMAL, TYPE_USER_DEFINED};
pub use bytes::byte_to_char_table;
pub use chat::{ChatMessage, ChatTemplate, PromptPiece};
pub use detok::Detokenizer;

#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error(transparent)]
    Gguf(#[from] tandem_gguf::GgufError),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
}

pub type Result<T> = std::result::Result<T, TextError>;
