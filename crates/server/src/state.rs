//! Shared server state: the loaded tiers, the settings, the metrics.

use std::time::{SystemTime, UNIX_EPOCH};

use tandem_engine::EngineHandle;

use crate::error::ApiError;
use crate::metrics::Metrics;

/// Prices in dollars per 1M tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    pub input: f64,
    pub cached_input: f64,
    pub output: f64,
}

impl Pricing {
    /// The cost of one response, in dollars: `(input, cached_input, output, total)`. Cached prompt
    /// tokens are billed at the cached price instead of the input price.
    pub fn cost(&self, prompt: usize, cached: usize, completion: usize) -> (f64, f64, f64, f64) {
        let input = (prompt - cached.min(prompt)) as f64 * self.input / 1e6;
        let cached_input = cached.min(prompt) as f64 * self.cached_input / 1e6;
        let output = completion as f64 * self.output / 1e6;
        (input, cached_input, output, input + cached_input + output)
    }
}

/// One served model.
pub struct Tier {
    /// The tier name clients may use (`mini`, `flagship`; for a custom file, its file stem).
    pub name: String,
    /// The canonical model id responses carry (`qwen2.5-coder-0.5b-instruct`).
    pub id: String,
    pub engine: EngineHandle,
    /// `system_fingerprint`: changes when the weights or the engine version change.
    pub fingerprint: String,
    pub created: u64,
    pub pricing: Pricing,
}

/// Run-time settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Accept (and ignore) request fields OpenAI does not define, instead of refusing them.
    pub ignore_unknown_fields: bool,
    /// Generation cap when a request gives no `max_tokens` (a looping model cannot hold a slot long).
    pub default_max_tokens: usize,
    pub max_body_bytes: usize,
    /// Allowed CORS origins (`*` for any); empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// Write prompts and completions to the log (off by default).
    pub log_content: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            ignore_unknown_fields: false,
            default_max_tokens: 2048,
            max_body_bytes: 8 << 20,
            cors_origins: Vec::new(),
            log_content: false,
        }
    }
}

pub struct AppState {
    pub tiers: Vec<Tier>,
    pub config: ServerConfig,
    pub metrics: Metrics,
}

impl AppState {
    /// The tier for a request's `model`: a tier name or a canonical id.
    pub fn tier(&self, model: &str) -> Result<&Tier, ApiError> {
        self.tiers
            .iter()
            .find(|t| t.name == model || t.id == model)
            .ok_or_else(|| ApiError::model_not_found(model))
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random id with a prefix (`chatcmpl-…`), from the process's hash randomness and a counter.
pub fn new_id(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let a = h.finish();
    h.write_u64(a);
    format!("{prefix}{a:016x}{:08x}", h.finish() as u32)
}
