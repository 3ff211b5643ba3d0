//! The transformer: configuration, weights, KV cache and forward pass.
//!
//! Layout
//! - `config`: `Config` read from GGUF metadata with the `{arch}.` key prefix; the supported architectures.
//! - `weights`: `Weights` — every tensor located and shape-checked at load; small vectors dequantised.
//! - `kv_cache`: the paged KV cache — `KvPool` (blocks of K and V, allocated once), `BlockTable`
//!   (a sequence's blocks), `KvCache` (one sequence with a pool of its own).
//! - `state`: `RunState` — scratch buffers for a batch of tokens, allocated once.
//! - `layout`: `StepLayout` — where a step's tokens and logit rows go; `TokenPath`.
//! - `forward`: the qwen2 layer math over a step's tokens, built from the kernels' shared blocks.
//! - `attention`: a step's attention, the per-token and tiled kernels chosen inside.

mod attention;
mod config;
mod forward;
mod kv_cache;
mod layout;
mod state;
mod weights;

pub use config::{Activation, Arch, Config, RopeScaling, Sliding, Yarn};
pub use forward::{Logits, Output, SeqStep};
pub use kv_cache::{blocks_for, BlockTable, KvCache, KvPool, KvType, KvView, Rope, KV_BLOCK};
pub use layout::{StepLayout, TokenPath};
pub use state::rope_table;
pub use state::RunState;
pub use weights::Weights;

use std::path::Path;
use std::sync::Arc;

use tandem_gguf::GgufFile;
use tandem_kernels::packed::packs;
use tandem_kernels::DecodeKernel;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Gguf(#[from] tandem_gguf::GgufError),
    #[error("unsupported architecture {0:?} (supported: qwen2, gemma3)")]
    UnsupportedArch(String),
    #[error("invalid model config: {0}")]
    BadConfig(String),
    #[error("context is full: position {pos} + {n} tokens exceeds the context size {ctx}")]
    ContextFull { pos: usize, n: usize, ctx: usize },
    #[error("token id {0} is outside the vocabulary")]
    BadToken(u32),
}

pub type Result<T> = std::result::Result<T, ModelError>;

/// A loaded model: the mapped file, its config and its weights, and the kernels its matmuls run
/// on (the process's choice at load; a caller may set another before use).
pub struct Model {
    pub file: Arc<GgufFile>,
    pub config: Config,
    pub weights: Weights,
    pub kernels: tandem_kernels::KernelChoice,
}

impl Model {
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_gguf(Arc::new(GgufFile::open(path)?))
    }

    pub fn from_gguf(file: Arc<GgufFile>) -> Result<Self> {
        let config = Config::from_gguf(&file)?;
        let mut weights = Weights::load(&file, &config)?;
        let kernels = tandem_kernels::process_choice();
        if kernels.decode() == DecodeKernel::Int8 && packs(kernels.isa()) {
            // On the compute threads (the global pool may be smaller).
            tandem_kernels::pool::install(|| weights.pack());
        }
        Ok(Self {
            file,
            config,
            weights,
            kernels,
        })
    }
}
