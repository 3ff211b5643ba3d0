//! `tandem serve`: load the tiers, start one scheduler per tier, serve the OpenAI-compatible API.
//! Settings come from flags, then an optional `tandem.toml` with the same names, then defaults.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;
use tandem_engine::{EngineConfig, EngineHandle, LoadedModel, SpecConfig, SpecMode};
use tandem_server::{AppState, ModerationPolicy, ServerConfig, Tier};

use crate::{pull, tiers, Home};

#[derive(Args, Default)]
pub struct ServeArgs {
    /// Address to bind (a non-loopback address exposes the server to the network).
    #[arg(long)]
    host: Option<String>,
    /// Port (0: any free port; the chosen one is printed).
    #[arg(long)]
    port: Option<u16>,
    /// Comma-separated tiers or GGUF paths to serve (default: the tiers in the model cache, or the mini).
    #[arg(long)]
    models: Option<String>,
    #[arg(long)]
    threads: Option<usize>,
    /// Context size of each sequence slot, in tokens.
    #[arg(long)]
    ctx_size: Option<usize>,
    /// Sequences each tier runs at once (KV-cache slots).
    #[arg(long)]
    parallel: Option<usize>,
    /// Most tokens per forward step (prompt chunks plus decode tokens).
    #[arg(long)]
    step_tokens: Option<usize>,
    /// KV-cache element type: f16 (default, half the memory) or f32 (exact).
    #[arg(long)]
    kv_type: Option<String>,
    /// Requests that may wait for a slot; beyond it the server answers 429 with Retry-After.
    #[arg(long)]
    max_queue: Option<usize>,
    /// Seconds a request may wait for a slot before it gets 503.
    #[arg(long)]
    queue_timeout: Option<u64>,
    /// Slots batch work leaves free for interactive requests (default: a quarter, at least 1).
    #[arg(long)]
    batch_reserve: Option<usize>,
    /// Most batch prompt tokens per forward step (small: a step in flight delays interactive
    /// requests; default 16).
    #[arg(long)]
    batch_prefill_chunk: Option<usize>,
    /// Memory for the KV cache per tier, in MiB (default: a quarter of the available RAM, at most
    /// a whole context per slot): a pool of 32-position blocks that requests reserve as they are
    /// admitted (prompt plus max_tokens); requests wait for blocks when it is full.
    #[arg(long)]
    kv_budget_mib: Option<usize>,
    /// Generation cap for requests without max_tokens.
    #[arg(long)]
    default_max_tokens: Option<usize>,
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// Accept and ignore request fields OpenAI does not define (default: refuse them, as OpenAI does).
    #[arg(long)]
    ignore_unknown_fields: bool,
    /// Allowed CORS origin (repeatable; `*` for any).
    #[arg(long = "cors-origin")]
    cors_origins: Vec<String>,
    /// Log prompts and completions (off by default).
    #[arg(long)]
    log_content: bool,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long)]
    drain_seconds: Option<u64>,
    /// TLS certificate chain (PEM); with --tls-key, the server speaks HTTPS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest file `/v1/files` accepts, in bytes (default 200 MiB).
    #[arg(long)]
    max_file_bytes: Option<u64>,
    /// Seconds a batch may run before it expires (its completion_window is "24h": 86400).
    #[arg(long)]
    batch_window_seconds: Option<u64>,
    /// Serve a non-loopback address without API keys (anyone who can reach it may use it).
    #[arg(long)]
    insecure_no_auth: bool,
    /// State directory (env TANDEM_DATA; default $TANDEM_HOME/data).
    #[arg(long, env = "TANDEM_DATA")]
    data_dir: Option<PathBuf>,
    /// Settings file (default: ./tandem.toml if present).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Moderate requests: `input` (the user's text, before generating), `output` (the answer,
    /// sentence by sentence, cut at a flagged one), `both` or `none`. Needs the mini tier.
    #[arg(long)]
    moderate: Option<String>,
    /// What a flagged input gets: `block` (a refusal) or `flag` (answered, with an
    /// x-tandem-moderation header). Both are recorded with their categories.
    #[arg(long)]
    moderation_action: Option<String>,
    /// Keep the text of flagged inputs in the moderation records (off: categories only).
    #[arg(long)]
    moderation_log_text: bool,
    /// Detect jailbreaks and prompt injections (the prompt-attack head) in the `user` messages,
    /// the `tool` results, `both` or `none`; a detected attack is handled like a flagged input
    /// (`--moderation-action`). Needs the mini tier.
    #[arg(long)]
    detect_attacks: Option<String>,
    /// Replace API keys, private keys, card numbers, IBANs, emails and phone numbers in generated
    /// text with [REDACTED:kind].
    #[arg(long)]
    redact: bool,
    /// The operator's system prompt (a text file): first in every chat conversation; a request's
    /// system/developer messages come after it, framed as lower priority.
    #[arg(long)]
    operator_prompt_file: Option<PathBuf>,
    /// Put a line before every tool result saying it is data, not instructions (off by default:
    /// it made the mini repeat its tool call instead of using the result).
    #[arg(long)]
    tool_output_as_data: bool,
    /// Speculative decoding: `ngram` (default: drafts looked up in the sequence's own text, free;
    /// 1.4–1.9× on code edits here, no loss on prose), `draft` (the mini drafts for the larger
    /// tiers; the mini itself uses ngram) or `off`. Output is identical either way.
    #[arg(long)]
    speculation: Option<String>,
    /// `model: "auto"`: keep the small tier's answer when the mean log-probability of its tokens
    /// is at least this, else let the large tier answer (default from `tandem eval route`).
    #[arg(long, allow_hyphen_values = true)]
    auto_threshold: Option<f64>,
}

/// `--moderate`, `--moderation-action` and `--detect-attacks` (flags, then tandem.toml) into the
/// server's policy.
fn moderation_policy(
    moderate: Option<&str>,
    action: Option<&str>,
    attacks: Option<&str>,
    log_text: bool,
    redact: bool,
) -> Result<ModerationPolicy> {
    let (input, output) = match moderate.unwrap_or("none") {
        "none" => (false, false),
        "input" => (true, false),
        "output" => (false, true),
        "both" => (true, true),
        other => bail!("--moderate {other:?}: expected none, input, output or both"),
    };
    let block = match action.unwrap_or("block") {
        "block" => true,
        "flag" => false,
        other => bail!("--moderation-action {other:?}: expected block or flag"),
    };
    let (attack_user, attack_tool) = match attacks.unwrap_or("none") {
        "none" => (false, false),
        "user" => (true, false),
        "tool" => (false, true),
        "both" => (true, true),
        other => bail!("--detect-attacks {other:?}: expected none, user, tool or both"),
    };
    Ok(ModerationPolicy {
        input,
        output,
        attack_user,
        attack_tool,
        block,
        log_text,
        redact,
    })
}

/// A price override in tandem.toml: `[prices.mini] input = 0.2`, USD per 1M tokens.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct PriceConfig {
    input: Option<f64>,
    cached_input: Option<f64>,
    output: Option<f64>,
}

/// `[prices.NAME]` by served name or canonical id.
type PriceTable = std::collections::HashMap<String, PriceConfig>;

/// `tandem.toml`: the same settings as the flags, by the same names with underscores, plus
/// per-tier prices.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    prices: Option<PriceTable>,
    host: Option<String>,
    port: Option<u16>,
    models: Option<Vec<String>>,
    threads: Option<usize>,
    ctx_size: Option<usize>,
    parallel: Option<usize>,
    step_tokens: Option<usize>,
    kv_type: Option<String>,
    max_queue: Option<usize>,
    queue_timeout: Option<u64>,
    batch_reserve: Option<usize>,
    batch_prefill_chunk: Option<usize>,
    kv_budget_mib: Option<usize>,
    default_max_tokens: Option<usize>,
    max_body_bytes: Option<usize>,
    ignore_unknown_fields: Option<bool>,
    cors_origins: Option<Vec<String>>,
    log_content: Option<bool>,
    drain_seconds: Option<u64>,
    max_file_bytes: Option<u64>,
    batch_window_seconds: Option<u64>,
    insecure_no_auth: Option<bool>,
    moderate: Option<String>,
    moderation_action: Option<String>,
    detect_attacks: Option<String>,
    moderation_log_text: Option<bool>,
    redact: Option<bool>,
    operator_prompt: Option<String>,
    tool_output_as_data: Option<bool>,
    speculation: Option<String>,
    auto_threshold: Option<f64>,
    data_dir: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

fn read_config(path: Option<&Path>) -> Result<FileConfig> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from("tandem.toml"), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(s) => toml::from_str(&s).with_context(|| format!("reading {}", path.display())),
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// A model's prices, USD per 1M tokens (input, cached input, output): the tier's measured defaults
/// (a user file: the mini's scaled by file size, since decode cost follows the bytes read per
/// token), then tandem.toml's `[prices.NAME]` (by served name or canonical id).
fn prices(spec: &str, name: &str, id: &str, path: &Path, table: Option<&PriceTable>) -> Result<(f64, f64, f64)> {
    let (mut input, mut cached_input, mut output) = match tiers::find(spec) {
        Some(t) => t.prices,
        None => {
            let mini = &tiers::TIERS[0];
            let scale = std::fs::metadata(path).map(|m| m.len()).unwrap_or(mini.bytes) as f64 / mini.bytes as f64;
            (mini.prices.0 * scale, mini.prices.1 * scale, mini.prices.2 * scale)
        }
    };
    if let Some(p) = table.and_then(|m| m.get(name).or_else(|| m.get(id))) {
        input = p.input.unwrap_or(input);
        cached_input = p.cached_input.unwrap_or(cached_input);
        output = p.output.unwrap_or(output);
    }
    for (what, v) in [("input", input), ("cached_input", cached_input), ("output", output)] {
        if !(v.is_finite() && v >= 0.0) {
            bail!("price {what} of {name} must be a non-negative number, got {v}");
        }
    }
    Ok((input, cached_input, output))
}

/// A tier's prices as `tandem serve` would charge them with this settings file (default
/// ./tandem.toml if present).
pub fn tier_prices(tier: &tiers::Tier, config: Option<&Path>, path: &Path) -> Result<(f64, f64, f64)> {
    prices(
        tier.name,
        tier.name,
        tier.id,
        path,
        read_config(config)?.prices.as_ref(),
    )
}

/// The engine's batch settings from flags and file over its defaults.
fn batch_settings(mut c: EngineConfig, reserve: Option<usize>, chunk: Option<usize>) -> EngineConfig {
    if let Some(r) = reserve {
        c.batch_reserve = r.min(c.slots.saturating_sub(1));
    }
    if let Some(k) = chunk {
        c.batch_prefill_chunk = k.max(1);
    }
    c
}

/// Whether two paths name the same file (symlinks and relative paths resolved).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// A stable short hash (FNV-1a) for fingerprints of user files.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

pub fn serve(home: &Home, a: ServeArgs) -> Result<()> {
    // Request log lines to stderr; RUST_LOG overrides the level.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    let mut f = read_config(a.config.as_deref())?;
    let price_table = f.prices.take();
    let host = a.host.or(f.host).unwrap_or_else(|| "127.0.0.1".into());
    let port = a.port.or(f.port).unwrap_or(8080);
    let ctx_size = a.ctx_size.or(f.ctx_size).unwrap_or(4096);
    let parallel = a.parallel.or(f.parallel).unwrap_or(8);
    let step_tokens = a.step_tokens.or(f.step_tokens).unwrap_or(256);
    if parallel == 0 || ctx_size < 16 || step_tokens == 0 {
        bail!("--parallel and --step-tokens must be at least 1 and --ctx-size at least 16");
    }
    let kv_type = crate::sys::kv_type(a.kv_type.or(f.kv_type).as_deref().unwrap_or("f16"))?;
    let max_queue = a.max_queue.or(f.max_queue).unwrap_or(256);
    let (batch_reserve, batch_prefill_chunk) = (
        a.batch_reserve.or(f.batch_reserve),
        a.batch_prefill_chunk.or(f.batch_prefill_chunk),
    );
    let queue_timeout = Duration::from_secs(a.queue_timeout.or(f.queue_timeout).unwrap_or(300));
    let kv_budget = a
        .kv_budget_mib
        .or(f.kv_budget_mib)
        .map(|m| m << 20)
        .unwrap_or_else(|| available_memory() / 4);
    crate::commands::set_threads(a.threads.or(f.threads))?;
    let data_dir = a.data_dir.or(f.data_dir).unwrap_or_else(|| home.data());
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    // The store (and whether keys guard it) before the slow part, loading the models.
    let db = data_dir.join("tandem.sqlite");
    let store = tandem_store::SqliteStore::open(&db).with_context(|| format!("opening the store {}", db.display()))?;
    for note in store.migration_notes() {
        eprintln!("{note}");
    }
    let blobs = tandem_store::BlobDir::open(&data_dir.join("files"))
        .with_context(|| format!("opening {}", data_dir.join("files").display()))?;
    let keyring = tandem_store::KeyRing::open(&data_dir).context("reading the server secret")?;
    let has_keys = tandem_store::Store::has_keys(&store)?;
    let insecure = a.insecure_no_auth || f.insecure_no_auth.unwrap_or(false);
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    if !has_keys && !loopback && !insecure {
        bail!(
            "refusing to serve {host} without API keys: create one (tandem keys create --data-dir {}) \
             or pass --insecure-no-auth",
            data_dir.display()
        );
    }
    eprintln!(
        "tandem: state in {}; {}",
        data_dir.display(),
        if has_keys {
            "API keys required"
        } else {
            "no API keys: open to whoever can connect"
        }
    );

    // Which models: flags, file, the verified tiers in the cache, or else the mini (pulled now).
    let specs: Vec<String> = match a
        .models
        .map(|m| m.split(',').map(|s| s.trim().to_string()).collect::<Vec<_>>())
        .or(f.models)
    {
        Some(m) => m,
        None => {
            let present: Vec<String> = tiers::TIERS
                .iter()
                .filter(|t| pull::verified_path(&home.models(), t).is_some())
                .map(|t| t.name.to_string())
                .collect();
            if present.is_empty() {
                vec!["mini".to_string()]
            } else {
                present
            }
        }
    };
    let speculation: SpecMode = a
        .speculation
        .or(f.speculation)
        .as_deref()
        .unwrap_or("ngram")
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--speculation: {e}"))?;
    let mini_path = tiers::find("mini").and_then(|t| pull::verified_path(&home.models(), t));
    let mut draft_lm: Option<Arc<LoadedModel>> = None;
    let mut served = Vec::new();
    for spec in specs.iter().filter(|s| !s.is_empty()) {
        let path = home.resolve_model(spec)?;
        let lm = Arc::new(LoadedModel::load(&path).with_context(|| format!("loading {}", path.display()))?);
        // Draft mode: the mini drafts for every other model; a model never drafts for itself.
        let is_mini = mini_path.as_deref().is_some_and(|m| same_file(m, &path));
        let mode = match speculation {
            SpecMode::Draft if is_mini => SpecMode::NGram,
            m => m,
        };
        let draft = if mode == SpecMode::Draft {
            if draft_lm.is_none() {
                let p = home
                    .resolve_model("mini")
                    .context("the draft model (--speculation draft)")?;
                draft_lm = Some(Arc::new(LoadedModel::load(&p)?));
            }
            draft_lm.clone()
        } else {
            None
        };
        let (name, id, fingerprint) = match tiers::find(spec) {
            Some(t) => (t.name.to_string(), t.id.to_string(), format!("fp_{}", &t.sha256[..10])),
            None => {
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| spec.clone());
                let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                (
                    stem.clone(),
                    stem.clone(),
                    format!("fp_{:010x}", fnv(&format!("{stem}:{size}")) & 0xff_ffff_ffff),
                )
            }
        };
        if served.iter().any(|t: &Tier| t.name == name) {
            bail!("model {name} is listed twice");
        }
        let ctx = ctx_size.min(lm.model.config.ctx_train);
        // The KV pool: what the budget holds, up to a whole context for every slot, at least one
        // context. Sequences take blocks as they grow, so short requests can all run at once
        // even when the budget holds fewer whole contexts than slots.
        // The draft model's caches (a whole f16 context per slot, `ModelDrafter`) come out of
        // the same budget.
        let draft_bytes = draft
            .as_ref()
            .map_or(0, |d| tandem_engine::ModelDrafter::kv_bytes(d, parallel, ctx));
        let block_bytes = tandem_model::KvPool::block_bytes(&lm.model.config, kv_type);
        let context_blocks = tandem_model::blocks_for(ctx);
        let kv_blocks =
            (kv_budget.saturating_sub(draft_bytes) / block_bytes).clamp(context_blocks, parallel * context_blocks);
        if kv_blocks < parallel * context_blocks {
            eprintln!(
                "tandem: {name}: the KV budget of {} MiB{} holds {kv_blocks} blocks of {} positions: {:.1} full contexts of {ctx} for {parallel} slots (requests wait for blocks beyond that)",
                kv_budget >> 20,
                if draft_bytes > 0 {
                    format!(" (less {} MiB for the draft model)", draft_bytes >> 20)
                } else {
                    String::new()
                },
                tandem_model::KV_BLOCK,
                kv_blocks as f64 / context_blocks as f64
            );
        }
        let slots = parallel;
        let engine = EngineHandle::spawn_with_draft(
            lm,
            EngineConfig {
                slots,
                ctx,
                kv_blocks,
                step_tokens,
                kv_type,
                max_queue,
                queue_timeout,
                spec: SpecConfig {
                    mode,
                    ..SpecConfig::default()
                },
                ..batch_settings(EngineConfig::new(slots, ctx), batch_reserve, batch_prefill_chunk)
            },
            draft,
        )
        .map_err(anyhow::Error::msg)?;
        eprintln!(
            "tandem: {name} ({id}) ready: {slots} slots of {ctx} tokens, {kv_blocks} KV blocks ({} MiB), speculation {}",
            (kv_blocks * block_bytes) >> 20,
            match mode {
                SpecMode::Off => "off".to_string(),
                SpecMode::NGram => "ngram".to_string(),
                SpecMode::Draft => format!("draft (mini, {} MiB of draft KV)", draft_bytes >> 20),
            }
        );
        let (input, cached_input, output) = prices(spec, &name, &id, &path, price_table.as_ref())?;
        served.push(Tier {
            name,
            id,
            engine,
            fingerprint,
            created: crate::serve::created_time(&path),
            pricing: tandem_server::Pricing {
                input,
                cached_input,
                output,
            },
        });
    }

    let config = ServerConfig {
        ignore_unknown_fields: a.ignore_unknown_fields || f.ignore_unknown_fields.unwrap_or(false),
        default_max_tokens: a.default_max_tokens.or(f.default_max_tokens).unwrap_or(2048),
        max_body_bytes: a.max_body_bytes.or(f.max_body_bytes).unwrap_or(8 << 20),
        cors_origins: if a.cors_origins.is_empty() {
            f.cors_origins.unwrap_or_default()
        } else {
            a.cors_origins
        },
        log_content: a.log_content || f.log_content.unwrap_or(false),
        max_file_bytes: a.max_file_bytes.or(f.max_file_bytes).unwrap_or(200 << 20),
        batch_window: Duration::from_secs(a.batch_window_seconds.or(f.batch_window_seconds).unwrap_or(24 * 3600)),
        moderation: moderation_policy(
            a.moderate.as_deref().or(f.moderate.as_deref()),
            a.moderation_action.as_deref().or(f.moderation_action.as_deref()),
            a.detect_attacks.as_deref().or(f.detect_attacks.as_deref()),
            a.moderation_log_text || f.moderation_log_text.unwrap_or(false),
            a.redact || f.redact.unwrap_or(false),
        )?,
        operator_prompt: match &a.operator_prompt_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("--operator-prompt-file {}", p.display()))?
                    .trim_end()
                    .to_string(),
            ),
            None => f.operator_prompt.clone(),
        }
        .filter(|p| !p.trim().is_empty()),
        tools_as_data: a.tool_output_as_data || f.tool_output_as_data.unwrap_or(false),
        auto_threshold: match a.auto_threshold.or(f.auto_threshold) {
            Some(t) if !(t.is_finite() && t <= 0.0) => {
                bail!("--auto-threshold must be a log-probability (≤ 0), got {t}")
            }
            Some(t) => t,
            None => ServerConfig::default().auto_threshold,
        },
    };
    let drain = Duration::from_secs(a.drain_seconds.or(f.drain_seconds).unwrap_or(30));
    let state = Arc::new(AppState::new(served, config, Arc::new(store), blobs, keyring));
    let m = state.config.moderation;
    if (m.input || m.output) && state.moderator.is_none() {
        bail!("--moderate needs the mini tier (the moderation classifier reads its embeddings): add mini to --models");
    }
    if (m.attack_user || m.attack_tool) && !state.moderator.as_ref().is_some_and(|m| m.detects_attacks()) {
        bail!(
            "--detect-attacks needs the mini tier (the prompt-attack head reads its embeddings): add mini to --models"
        );
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let tls = match (a.tls_cert.or(f.tls_cert), a.tls_key.or(f.tls_key)) {
        (Some(c), Some(k)) => {
            for p in [&c, &k] {
                if !p.is_file() {
                    bail!("TLS file {} does not exist", p.display());
                }
            }
            Some((c, k))
        }
        (None, None) => None,
        _ => bail!("TLS needs both --tls-cert and --tls-key"),
    };
    rt.block_on(async move {
        use std::io::Write;
        let listener =
            std::net::TcpListener::bind((host.as_str(), port)).with_context(|| format!("binding {host}:{port}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        match tls {
            Some((cert, key)) => {
                println!("tandem: listening on https://{addr}");
                std::io::stdout().flush()?;
                tandem_server::serve_tls(listener, &cert, &key, state, drain)
                    .await
                    .context("serving over TLS")?;
            }
            None => {
                println!("tandem: listening on http://{addr}");
                std::io::stdout().flush()?;
                tandem_server::serve(tokio::net::TcpListener::from_std(listener)?, state, drain).await?;
            }
        }
        Ok(())
    })
}

/// `created` of a model object: the file's modification time.
pub fn created_time(path: &Path) -> u64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// MemAvailable from /proc/meminfo (8 GiB where it cannot be read).
fn available_memory() -> usize {
    crate::sys::proc_kib("/proc/meminfo", "MemAvailable")
        .map(|b| b as usize)
        .unwrap_or(8 << 30)
}
