//! GGUF v2/v3 reader.
//!
//! Layout
//! - `types`: the tensor element types (`GgmlType`) with their block sizes.
//! - `value`: metadata values (`Value`) of every GGUF value type.
//! - `reader`: a bounds-checked cursor that parses the header with size caps.
//! - `file`: `GgufFile` — the mmap, the metadata map and the tensor index, with typed look-ups.
//! - `writer`: `GgufWriter` — a minimal writer for tests and tools.
//!
//! Every error names the key or tensor it is about; nothing here panics on a crafted file.

mod file;
mod reader;
mod types;
mod value;
mod writer;

pub use file::{GgufFile, TensorInfo};
pub use types::GgmlType;
pub use value::Value;
pub use writer::GgufWriter;

/// Everything that can go wrong reading a GGUF file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot open {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("not a GGUF file (magic {0:#010x}, expected 0x46554747 \"GGUF\")")]
    BadMagic(u32),
    #[error("unsupported GGUF version {0} (supported: 2, 3)")]
    BadVersion(u32),
    #[error("file truncated while reading {what} at byte {offset} (file is {len} bytes)")]
    Truncated { what: String, offset: u64, len: u64 },
    #[error("{what} is {value}, above the limit of {limit}")]
    TooLarge { what: String, value: u64, limit: u64 },
    #[error("metadata key {key:?}: {problem}")]
    BadValue { key: String, problem: String },
    #[error("metadata key {0:?} is missing")]
    MissingKey(String),
    #[error("tensor {name:?}: {problem}")]
    BadTensor { name: String, problem: String },
    #[error("tensor {0:?} is missing")]
    MissingTensor(String),
}

pub type Result<T> = std::result::Result<T, GgufError>;
