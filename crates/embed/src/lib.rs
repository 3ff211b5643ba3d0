//! Sentence embeddings: all-MiniLM-L6-v2 (a 6-layer BERT, 384 wide) as sentence-transformers runs
//! it — WordPiece tokens, the encoder, mean pooling over the tokens, L2 normalisation.
//!
//! Layout
//! - `wordpiece`: BERT's tokenizer as the model's `tokenizer.json` configures it.
//! - `weights`: the safetensors file read into matrices the kernels take.
//! - `bert`: the encoder's math over a batch of sequences.
//! - `encoder`: `Encoder` — load a model directory, embed texts.

mod bert;
mod encoder;
mod weights;
mod wordpiece;

pub use encoder::{Embedding, Encoder, MODEL_FILES};
pub use wordpiece::WordPiece;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("{0}")]
    Io(String),
    #[error("bad model file: {0}")]
    Format(String),
    #[error("{0}")]
    Input(String),
}

pub type Result<T> = std::result::Result<T, EmbedError>;
