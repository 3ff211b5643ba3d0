//! Shared server state: the loaded tiers, the settings, the metrics.

use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use tandem_engine::EngineHandle;
use tandem_store::{BlobDir, KeyRing, Store};

use crate::limits::{RateLimiter, SystemClock};

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

    /// Batch work costs half the interactive price (OpenAI's Batch API discount).
    pub fn batch(&self) -> Self {
        Self {
            input: self.input / 2.0,
            cached_input: self.cached_input / 2.0,
            output: self.output / 2.0,
        }
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
    /// Largest upload to `/v1/files`.
    pub max_file_bytes: u64,
    /// How long a batch may take before it expires (`completion_window` "24h"; shorter in tests).
    pub batch_window: std::time::Duration,
    /// How long a batch line stays claimed by this replica without a renewal (`batch_worker`).
    pub batch_lease: std::time::Duration,
    /// Input moderation of chat and completion requests (off by default).
    pub moderation: crate::guard::ModerationPolicy,
    /// The operator's system prompt, first in every chat conversation (`hierarchy`).
    pub operator_prompt: Option<String>,
    /// Frame tool results as data, not instructions (`hierarchy`).
    pub tools_as_data: bool,
    /// Grammar-enforced tool calls, or the model's plain output (`tools`).
    pub tool_calls: crate::tools::ToolCalls,
    /// `model: "auto"`: the small tier's answer is kept when the mean log-probability of its
    /// tokens is at least this (see `router`).
    pub auto_threshold: f64,
    /// `model: "auto"` with balanced quality: the router head, or the cascade (see `router`).
    pub auto_policy: crate::router::AutoPolicy,
    /// Other names clients use for the tiers (`gpt-4o` → `flagship`).
    pub aliases: std::collections::HashMap<String, String>,
    /// Whether http(s) image URLs are fetched (`image_fetch`).
    pub image_urls: crate::image_fetch::ImageUrls,
    /// Images one request may hold.
    pub max_images: usize,
    /// Serve the playground page at `/`.
    pub playground: bool,
}

/// OpenAI's names for the models the tiers stand in for, and their dated snapshots.
pub const DEFAULT_ALIASES: &[(&str, &str)] = &[
    ("gpt-4o", "flagship"),
    ("gpt-4o-2024-05-13", "flagship"),
    ("gpt-4o-2024-08-06", "flagship"),
    ("gpt-4o-2024-11-20", "flagship"),
    ("gpt-4o-audio-preview", "flagship"),
    ("gpt-4o-mini", "mini"),
    ("gpt-4o-mini-2024-07-18", "mini"),
    ("gpt-4o-mini-audio-preview", "mini"),
];

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            ignore_unknown_fields: false,
            default_max_tokens: 2048,
            max_body_bytes: 8 << 20,
            cors_origins: Vec::new(),
            log_content: false,
            max_file_bytes: 200 << 20,
            batch_window: std::time::Duration::from_secs(24 * 3600),
            batch_lease: std::time::Duration::from_secs(60),
            moderation: Default::default(),
            operator_prompt: None,
            tools_as_data: false,
            tool_calls: Default::default(),
            auto_threshold: crate::router::DEFAULT_THRESHOLD,
            auto_policy: crate::router::AutoPolicy::Head,
            aliases: DEFAULT_ALIASES
                .iter()
                .map(|(a, t)| (a.to_string(), t.to_string()))
                .collect(),
            image_urls: Default::default(),
            max_images: 8,
            playground: true,
        }
    }
}

pub struct AppState {
    pub tiers: Vec<Tier>,
    pub config: ServerConfig,
    pub metrics: Metrics,
    /// Files, batches, usage (the data directory's database).
    pub store: Arc<dyn Store>,
    /// File bytes, beside the database.
    pub blobs: BlobDir,
    /// Wakes the batch worker (a batch was created or cancelled).
    pub batch_wake: tokio::sync::Notify,
    /// Digests API keys.
    pub keyring: KeyRing,
    pub limiter: Arc<RateLimiter>,
    /// `/v1/moderations`: present when the tier the moderation head reads (the mini) is served.
    pub moderator: Option<tandem_safety::Moderator>,
    /// Background responses still running: the switch that cancels each (std mutex: held only to
    /// insert, take or signal, never across an await).
    pub background: std::sync::Mutex<std::collections::HashMap<String, tokio::sync::watch::Sender<bool>>>,
    /// `/v1/embeddings`: the sentence encoder, when served.
    pub embedder: Option<Arc<crate::embeddings::Embedder>>,
    /// `/v1/audio/*`: the Whisper models served (tiny.en, base).
    pub speech: Vec<Arc<crate::audio::Speech>>,
    /// The voice behind /v1/audio/speech.
    pub speaker: Option<Arc<crate::speech::Speaker>>,
    /// Spoken chat answers by audio id, for later turns that name them.
    pub spoken: std::sync::Mutex<std::collections::HashMap<String, crate::speech::SpokenAnswer>>,
    /// Image input: the perception stage, when served.
    pub seer: Option<Arc<crate::seeing::Seer>>,
    /// This process's name on the batch lines it claims (`batch_worker`).
    pub worker_id: String,
    /// Set when shutdown begins: `/readyz` answers 503 so load balancers stop sending work.
    pub draining: std::sync::atomic::AtomicBool,
    /// `GET /v1/report`: the comparison table of the tiers (`tandem report --json`), when the
    /// binary that serves knows where its measurements live.
    pub report: Option<ReportFn>,
}

/// Builds the report's JSON on demand (it reads result files: called off the async threads).
pub type ReportFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

impl AppState {
    pub fn new(
        tiers: Vec<Tier>,
        config: ServerConfig,
        store: Arc<dyn Store>,
        blobs: BlobDir,
        keyring: KeyRing,
    ) -> Self {
        let moderator = tandem_safety::Head::builtin().ok().and_then(|head| {
            let t = tiers.iter().find(|t| t.id == head.model())?;
            let m = tandem_safety::Moderator::new(Arc::new(t.engine.clone()), head, &t.id).ok()?;
            // Attack detection comes with moderation when its head reads the same model.
            Some(match tandem_safety::AttackHead::builtin() {
                Ok(a) => m.clone().with_attack_head(a).unwrap_or(m),
                Err(_) => m,
            })
        });
        // Replicas sharing a store count rate limits there; one server counts in memory.
        let limiter = Arc::new(if store.is_shared() {
            RateLimiter::shared(store.clone())
        } else {
            RateLimiter::new(Box::new(SystemClock::default()))
        });
        Self {
            moderator,
            tiers,
            config,
            metrics: Default::default(),
            store,
            blobs,
            batch_wake: tokio::sync::Notify::new(),
            keyring,
            limiter,
            background: Default::default(),
            embedder: None,
            speech: Vec::new(),
            speaker: None,
            spoken: Default::default(),
            seer: None,
            report: None,
            worker_id: new_id("worker_"),
            draining: Default::default(),
        }
    }

    /// Writes a usage record in the background (the answer does not wait for the disk); a failed
    /// write is logged. Outside a runtime (a guard dropped at shutdown) nothing is written.
    pub fn record_usage(self: &Arc<Self>, rec: tandem_store::UsageRecord) {
        let st = self.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = st.db(move |s| s.insert_usage(&rec)).await {
                    tracing::error!(error = %e.message, "recording usage");
                }
            });
        }
    }

    /// Runs a store call off the async threads (SQLite calls block, if only briefly).
    pub async fn db<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&dyn Store) -> tandem_store::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.store_call(f)
            .await?
            .map_err(|e| ApiError::internal(format!("store: {e}")))
    }

    async fn store_call<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&dyn Store) -> tandem_store::Result<T> + Send + 'static,
    ) -> Result<tandem_store::Result<T>, ApiError> {
        let st = self.clone();
        tokio::task::spawn_blocking(move || f(st.store.as_ref()))
            .await
            .map_err(|e| ApiError::internal(format!("store task failed: {e}")))
    }
}

impl AppState {
    /// `db`, where the store's refusal (`StoreError::Invalid`: an unknown or archived project)
    /// is the client's error, a 400 naming `param`.
    pub async fn db_checked<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&dyn Store) -> tandem_store::Result<T> + Send + 'static,
        param: &'static str,
    ) -> Result<T, ApiError> {
        self.store_call(f).await?.map_err(|e| match e {
            tandem_store::StoreError::Invalid(m) => ApiError::invalid(param, "invalid_value", m),
            e => ApiError::internal(format!("store: {e}")),
        })
    }

    /// The tier for a request's `model`: a tier name or a canonical id.
    /// The tier for a request's `model`: a tier name, a canonical id, or an alias of one
    /// (`gpt-4o-mini` → `mini`). An alias of a tier not served is a 404 naming what is.
    pub fn tier(&self, model: &str) -> Result<&Tier, ApiError> {
        let find = |m: &str| self.tiers.iter().find(|t| t.name == m || t.id == m);
        if let Some(t) = find(model) {
            return Ok(t);
        }
        match self.config.aliases.get(model) {
            Some(target) => find(target).ok_or_else(|| {
                let served: Vec<&str> = self.tiers.iter().map(|t| t.name.as_str()).collect();
                ApiError {
                    message: format!(
                        "The model `{model}` stands for `{target}`, which this server does not serve (it serves: {}).",
                        served.join(", ")
                    ),
                    ..ApiError::model_not_found(model)
                }
            }),
            None => Err(ApiError::model_not_found(model)),
        }
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random id with a prefix (`chatcmpl-…`, `file-…`, `batch_…`): 128 bits from the operating
/// system's CSPRNG, so ids can be neither guessed nor enumerated.
pub fn new_id(prefix: &str) -> String {
    // The OS source failing means the kernel has none; nothing sensible can be served then.
    tandem_store::random_id(prefix, 16).expect("the operating system's random source")
}
