//! Every `tandem serve` setting, declared once: the struct is both the clap arguments (each with a
//! `TANDEM_…` environment variable) and the `tandem.toml` keys (the flag's name with underscores).
//! Precedence: flag > environment > file > default; `tandem config` prints the result and where
//! each value came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::builder::BoolishValueParser;
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A price override in tandem.toml: `[prices.mini] input = 0.2`, USD per 1M tokens.
#[derive(Deserialize, Serialize, Default, Clone, Copy, Debug)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    pub input: Option<f64>,
    pub cached_input: Option<f64>,
    pub output: Option<f64>,
}

/// `[prices.NAME]` by served name or canonical id.
pub type PriceTable = BTreeMap<String, PriceConfig>;

#[derive(Args, Deserialize, Serialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address to bind (a non-loopback address exposes the server to the network).
    #[arg(long, env = "TANDEM_HOST")]
    pub host: Option<String>,
    /// Port (0: any free port; the chosen one is printed).
    #[arg(long, env = "TANDEM_PORT")]
    pub port: Option<u16>,
    /// Tiers or GGUF paths to serve, comma-separated (default: the tiers in the model cache, or
    /// the mini).
    #[arg(long, env = "TANDEM_MODELS", value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// Compute threads (default: the cores).
    #[arg(long, env = "TANDEM_THREADS")]
    pub threads: Option<usize>,
    /// Context size of each sequence slot, in tokens (default: each model's full context —
    /// 131,072 for the Qwen tiers, with YaRN — where the KV budget holds one, else the most it
    /// holds; said at startup).
    #[arg(long, env = "TANDEM_CTX_SIZE")]
    pub ctx_size: Option<usize>,
    /// RoPE past the trained context: auto (YaRN ×4 for Qwen models, only for the requests whose
    /// prompt and max_tokens reach past the trained 32,768; shorter ones keep the trained RoPE),
    /// yarn or yarn:FACTOR (every request), none (the trained context at most).
    #[arg(long, env = "TANDEM_ROPE_SCALING")]
    pub rope_scaling: Option<String>,
    /// Sequences each tier runs at once (KV-cache slots).
    #[arg(long, env = "TANDEM_PARALLEL")]
    pub parallel: Option<usize>,
    /// Most tokens per forward step (prompt chunks plus decode tokens).
    #[arg(long, env = "TANDEM_STEP_TOKENS")]
    pub step_tokens: Option<usize>,
    /// KV-cache element type: f16 (half the memory), f32 (exact), q8_0 (ggml's 8-bit blocks,
    /// 53% of f16's memory) or q4_0 (4-bit blocks, 28%).
    #[arg(long, env = "TANDEM_KV_TYPE")]
    pub kv_type: Option<String>,
    /// Requests that may wait for a slot; beyond it the server answers 429 with Retry-After.
    #[arg(long, env = "TANDEM_MAX_QUEUE")]
    pub max_queue: Option<usize>,
    /// Seconds a request may wait for a slot before it gets 503.
    #[arg(long, env = "TANDEM_QUEUE_TIMEOUT")]
    pub queue_timeout: Option<u64>,
    /// Slots batch work leaves free for interactive requests (default: a quarter, at least 1).
    #[arg(long, env = "TANDEM_BATCH_RESERVE")]
    pub batch_reserve: Option<usize>,
    /// Most batch prompt tokens per forward step (small: a step in flight delays interactive
    /// requests; default 16).
    #[arg(long, env = "TANDEM_BATCH_PREFILL_CHUNK")]
    pub batch_prefill_chunk: Option<usize>,
    /// Memory for the KV cache per tier, in MiB (default: a quarter of the available RAM, at most
    /// a whole context per slot): a pool of 32-position blocks that requests reserve as they are
    /// admitted (prompt plus max_tokens); requests wait for blocks when it is full.
    #[arg(long, env = "TANDEM_KV_BUDGET_MIB")]
    pub kv_budget_mib: Option<usize>,
    /// Generation cap for requests without max_tokens.
    #[arg(long, env = "TANDEM_DEFAULT_MAX_TOKENS")]
    pub default_max_tokens: Option<usize>,
    /// Largest request body, in bytes (a larger one gets 413).
    #[arg(long, env = "TANDEM_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Accept and ignore request fields OpenAI does not define (default: refuse them, as OpenAI does).
    #[arg(long, env = "TANDEM_IGNORE_UNKNOWN_FIELDS", num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub ignore_unknown_fields: Option<bool>,
    /// Allowed CORS origin (repeatable, or comma-separated; `*` for any).
    #[arg(long = "cors-origin", env = "TANDEM_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// Serve the playground (chat page and dashboard) at `/` (default true).
    #[arg(long, env = "TANDEM_PLAYGROUND", num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub playground: Option<bool>,
    /// Log prompts and completions (off by default).
    #[arg(long, env = "TANDEM_LOG_CONTENT", num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub log_content: Option<bool>,
    /// Log lines as `text` (default) or `json` (one object per line).
    #[arg(long, env = "TANDEM_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "TANDEM_DRAIN_SECONDS")]
    pub drain_seconds: Option<u64>,
    /// TLS certificate chain (PEM); with --tls-key, the server speaks HTTPS.
    #[arg(long, env = "TANDEM_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "TANDEM_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Largest file `/v1/files` accepts, in bytes.
    #[arg(long, env = "TANDEM_MAX_FILE_BYTES")]
    pub max_file_bytes: Option<u64>,
    /// Seconds a batch may run before it expires (its completion_window is "24h": 86400).
    #[arg(long, env = "TANDEM_BATCH_WINDOW_SECONDS")]
    pub batch_window_seconds: Option<u64>,
    /// Seconds a replica holds a batch line it runs before another may take it over (renewed
    /// while the line runs; a replica that died loses its lines when this runs out).
    #[arg(long, env = "TANDEM_BATCH_LEASE_SECONDS")]
    pub batch_lease_seconds: Option<u64>,
    /// Serve a non-loopback address without API keys (anyone who can reach it may use it).
    #[arg(long, env = "TANDEM_INSECURE_NO_AUTH", num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub insecure_no_auth: Option<bool>,
    /// State directory (default $TANDEM_HOME/data).
    #[arg(long, env = "TANDEM_DATA")]
    pub data_dir: Option<PathBuf>,
    /// Moderate requests: `input` (the user's text, before generating), `output` (the answer,
    /// sentence by sentence, cut at a flagged one), `both` or `none`. Needs the mini tier.
    #[arg(long, env = "TANDEM_MODERATE")]
    pub moderate: Option<String>,
    /// What a flagged input gets: `block` (a refusal) or `flag` (answered, with an
    /// x-tandem-moderation header). Both are recorded with their categories.
    #[arg(long, env = "TANDEM_MODERATION_ACTION")]
    pub moderation_action: Option<String>,
    /// Keep the text of flagged inputs in the moderation records (off: categories only).
    #[arg(long, env = "TANDEM_MODERATION_LOG_TEXT", num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub moderation_log_text: Option<bool>,
    /// Detect jailbreaks and prompt injections (the prompt-attack head) in the `user` messages,
    /// the `tool` results, `both` or `none`; a detected attack is handled like a flagged input
    /// (`--moderation-action`). Needs the mini tier.
    #[arg(long, env = "TANDEM_DETECT_ATTACKS")]
    pub detect_attacks: Option<String>,
    /// Replace API keys, private keys, card numbers, IBANs, emails and phone numbers in generated
    /// text with [REDACTED:kind].
    #[arg(long, env = "TANDEM_REDACT", num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub redact: Option<bool>,
    /// The operator's system prompt: first in every chat conversation; a request's
    /// system/developer messages come after it, framed as lower priority.
    #[arg(long, env = "TANDEM_OPERATOR_PROMPT")]
    pub operator_prompt: Option<String>,
    /// The operator's system prompt from a text file (instead of --operator-prompt).
    #[arg(long, env = "TANDEM_OPERATOR_PROMPT_FILE", conflicts_with = "operator_prompt")]
    pub operator_prompt_file: Option<PathBuf>,
    /// Put a line before every tool result saying it is data, not instructions (off by default:
    /// it made the mini repeat its tool call instead of using the result).
    #[arg(long, env = "TANDEM_TOOL_OUTPUT_AS_DATA", num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub tool_output_as_data: Option<bool>,
    /// Tool calls: `enforced` (a grammar makes every call exact; under `tool_choice: auto` the
    /// model's own forms — a bare JSON call, a ```json block — count when they validate) or
    /// `plain` (the model's output as it comes, `<tool_call>` tags only: for comparisons).
    #[arg(long, env = "TANDEM_TOOL_CALLS")]
    pub tool_calls: Option<String>,
    /// Speculative decoding: `ngram` (drafts looked up in the sequence's own text, free; 1.4–1.9×
    /// on code edits here, no loss on prose), `draft` (the mini drafts for the larger tiers; the
    /// mini itself uses ngram) or `off`. Output is identical either way.
    #[arg(long, env = "TANDEM_SPECULATION")]
    pub speculation: Option<String>,
    /// `model: "auto"`: keep the small tier's answer when the mean log-probability of its tokens
    /// is at least this, else let the large tier answer (default from `tandem eval route`).
    #[arg(long, env = "TANDEM_AUTO_THRESHOLD", allow_hyphen_values = true)]
    pub auto_threshold: Option<f64>,
    /// `model: "auto"` at balanced quality: `head` (the router head picks the tier before
    /// generating; streams too) or `cascade` (the small tier answers, the large one when the
    /// small one was not confident).
    #[arg(long, env = "TANDEM_AUTO_POLICY")]
    pub auto_policy: Option<String>,
    /// Other model names that mean a tier, as ALIAS=TIER (repeatable or comma-separated; replaces
    /// the defaults: gpt-4o and its dated names → flagship, gpt-4o-mini and its → mini).
    #[arg(long = "model-alias", env = "TANDEM_MODEL_ALIASES", value_delimiter = ',')]
    pub model_aliases: Option<Vec<String>>,
    /// Serve /v1/embeddings with the sentence encoder (all-MiniLM-L6-v2, pulled when absent; 84 MB).
    #[arg(long, env = "TANDEM_EMBEDDINGS", num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub embeddings: Option<bool>,
    /// Serve /v1/audio/transcriptions with Whisper tiny.en (pulled when absent; 76 MB).
    #[arg(long, env = "TANDEM_SPEECH", num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub speech: Option<bool>,
    /// Whisper's arithmetic: `int8` (int8 weights and activations, CTranslate2 int8's scheme;
    /// the default where the CPU has AVX-512 VNNI) or `exact` (f32, CTranslate2 float32's numbers).
    #[arg(long, env = "TANDEM_SPEECH_PRECISION")]
    pub speech_precision: Option<String>,
    /// Whisper's beam search at temperature 0: hypotheses kept (1: greedy, the default; openai-
    /// whisper's command line uses 5). Each hypothesis is a decoder pass: 5 costs ~5× the decoding.
    #[arg(long, env = "TANDEM_SPEECH_BEAM_SIZE")]
    pub speech_beam_size: Option<usize>,
    /// Image input through the perception stage: EfficientNet-Lite0 (pulled when absent; 20 MB)
    /// and OCR by the `tesseract` program where installed.
    #[arg(long, env = "TANDEM_VISION", num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub vision: Option<bool>,
    /// The OCR engine of image input: `auto` (PP-OCRv4 on ONNX Runtime, pulled with the vision
    /// models; tesseract where PP-OCR cannot load), `ppocr`, `tesseract` (the program, every
    /// installed language pack tandem knows) or `off`.
    #[arg(long, env = "TANDEM_OCR")]
    pub ocr: Option<String>,
    /// Fetch http(s) image URLs: `off` (the default: a 400), `on` (public addresses only, the
    /// resolved address pinned, no redirects), or `on-allow-loopback` (also 127.0.0.1: tests).
    #[arg(long, env = "TANDEM_IMAGE_URLS")]
    pub image_urls: Option<String>,
    /// Images one request may hold.
    #[arg(long, env = "TANDEM_MAX_IMAGES")]
    pub max_images: Option<usize>,
    /// Per-tier prices (`[prices.mini]` in tandem.toml only).
    #[arg(skip)]
    pub prices: Option<PriceTable>,
    /// Where uploaded and batch-output file bytes live (default: the data directory's `files`);
    /// replicas sharing PostgreSQL must share this directory too.
    #[arg(long, env = "TANDEM_FILES_DIR")]
    pub files_dir: Option<PathBuf>,
    /// PostgreSQL for the state (keys, projects, usage, files' records, batches) instead of the
    /// data directory's SQLite file: what replicas share (`postgres://user:password@host/db`).
    #[arg(long, env = "TANDEM_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Settings file (default: ./tandem.toml if present).
    #[arg(long, env = "TANDEM_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    File,
    Default,
    /// No fixed default: decided at start (cores, memory, the models in the cache).
    Auto,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Flag => "flag",
            Self::Env => "env",
            Self::File => "file",
            Self::Default => "default",
            Self::Auto => "auto",
        }
    }
}

impl Settings {
    /// The fixed defaults (settings decided at start, such as threads, stay `None`).
    pub fn defaults() -> Self {
        Self {
            host: Some("127.0.0.1".into()),
            port: Some(8080),
            ctx_size: None,
            rope_scaling: Some("auto".into()),
            parallel: Some(8),
            step_tokens: Some(256),
            kv_type: Some("f16".into()),
            max_queue: Some(256),
            queue_timeout: Some(300),
            default_max_tokens: Some(2048),
            max_body_bytes: Some(8 << 20),
            ignore_unknown_fields: Some(false),
            cors_origins: Some(Vec::new()),
            log_content: Some(false),
            playground: Some(true),
            log_format: Some("text".into()),
            drain_seconds: Some(30),
            max_file_bytes: Some(200 << 20),
            batch_window_seconds: Some(24 * 3600),
            batch_lease_seconds: Some(60),
            insecure_no_auth: Some(false),
            moderate: Some("none".into()),
            moderation_action: Some("block".into()),
            moderation_log_text: Some(false),
            detect_attacks: Some("none".into()),
            redact: Some(false),
            embeddings: Some(true),
            speech: Some(true),
            vision: Some(true),
            ocr: Some("auto".into()),
            image_urls: Some("off".into()),
            max_images: Some(8),
            tool_output_as_data: Some(false),
            tool_calls: Some("enforced".into()),
            speculation: Some("ngram".into()),
            auto_threshold: Some(tandem_server::ServerConfig::default().auto_threshold),
            auto_policy: Some("head".into()),
            model_aliases: Some(
                tandem_server::DEFAULT_ALIASES
                    .iter()
                    .map(|(a, t)| format!("{a}={t}"))
                    .collect(),
            ),
            ..Self::default()
        }
    }

    /// Flags and environment (`self`, as clap read them) over the file over the defaults.
    pub fn load(self) -> Result<Self> {
        let file = read_file(self.config.as_deref())?;
        let config = self.config.clone();
        let merged = overlay(overlay(to_map(&self)?, to_map(&file)?), to_map(&Self::defaults())?);
        let mut s: Self = serde_json::from_value(Value::Object(merged)).context("merging the settings")?;
        s.config = config;
        Ok(s)
    }

    /// Each setting's value (secrets masked) and its source, for `tandem config`. `cli` is what
    /// flags and environment gave; `argv` tells a flag from a variable.
    pub fn report(cli: &Self, argv: &[String]) -> Result<Vec<(String, Value, Source)>> {
        let file = to_map(&read_file(cli.config.as_deref())?)?;
        let (given, defaults) = (to_map(cli)?, to_map(&Self::defaults())?);
        let mut out = Vec::new();
        for (key, value) in &given {
            let flag = format!("--{}", flag_name(key));
            let (value, source) = if !value.is_null() {
                let by_flag = argv.iter().any(|a| *a == flag || a.starts_with(&format!("{flag}=")));
                (value.clone(), if by_flag { Source::Flag } else { Source::Env })
            } else if file.get(key).is_some_and(|v| !v.is_null()) {
                (file[key].clone(), Source::File)
            } else if defaults.get(key).is_some_and(|v| !v.is_null()) {
                (defaults[key].clone(), Source::Default)
            } else {
                (Value::Null, Source::Auto)
            };
            out.push((key.clone(), mask(key, value), source));
        }
        Ok(out)
    }
}

/// The flag a setting key has (`cors_origins` is `--cors-origin`).
fn flag_name(key: &str) -> String {
    match key {
        "cors_origins" => "cors-origin".into(),
        "model_aliases" => "model-alias".into(),
        k => k.replace('_', "-"),
    }
}

/// Operator prompts can hold what an operator keeps private: shown by length only; a database
/// URL without its password.
fn mask(key: &str, v: Value) -> Value {
    match (key, &v) {
        ("operator_prompt", Value::String(s)) => Value::String(format!("<{} characters>", s.chars().count())),
        ("database_url", Value::String(s)) => Value::String(crate::store_open::redact(s)),
        _ => v,
    }
}

fn to_map<T: Serialize>(x: &T) -> Result<serde_json::Map<String, Value>> {
    match serde_json::to_value(x)? {
        Value::Object(m) => Ok(m),
        _ => bail!("settings are a table"),
    }
}

/// `top`'s values, with `below`'s where `top` has none.
fn overlay(
    mut top: serde_json::Map<String, Value>,
    below: serde_json::Map<String, Value>,
) -> serde_json::Map<String, Value> {
    for (k, v) in below {
        let slot = top.entry(k).or_insert(Value::Null);
        if slot.is_null() {
            *slot = v;
        }
    }
    top
}

/// `tandem.toml` (or the file named): the same settings by their names with underscores.
pub fn read_file(path: Option<&Path>) -> Result<Settings> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from("tandem.toml"), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(s) => toml::from_str(&s).with_context(|| format!("reading {}", path.display())),
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        s: Settings,
    }

    #[test]
    fn flags_beat_the_file_which_beats_the_defaults() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("t.toml");
        std::fs::write(
            &file,
            "port = 9000\nparallel = 2\nredact = true\nmodels = [\"flagship\"]\n",
        )
        .unwrap();
        let cli = Cli::parse_from([
            "t",
            "--config",
            file.to_str().unwrap(),
            "--port",
            "7000",
            "--models",
            "mini,flagship",
            "--log-content",
        ]);
        let s = cli.s.clone().load().unwrap();
        assert_eq!(s.port, Some(7000), "flag over file");
        assert_eq!(s.parallel, Some(2), "file over default");
        assert_eq!(s.ctx_size, None, "planned at start");
        assert_eq!(s.redact, Some(true));
        assert_eq!(s.log_content, Some(true), "a bare boolean flag means true");
        assert_eq!(s.models, Some(vec!["mini".into(), "flagship".into()]));
        assert_eq!(s.threads, None, "decided at start");
        let argv: Vec<String> = ["t", "--port", "7000"].map(String::from).to_vec();
        let report = Settings::report(&cli.s, &argv).unwrap();
        let src = |k: &str| report.iter().find(|r| r.0 == k).unwrap().2;
        assert_eq!(src("port"), Source::Flag);
        assert_eq!(src("parallel"), Source::File);
        assert_eq!(src("ctx_size"), Source::Auto);
        assert_eq!(src("threads"), Source::Auto);
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("t.toml");
        std::fs::write(&file, "prot = 9000\n").unwrap();
        let e = read_file(Some(&file)).unwrap_err();
        assert!(format!("{e:#}").contains("prot"), "{e:#}");
    }

    #[test]
    fn operator_prompts_are_masked() {
        assert_eq!(
            mask("operator_prompt", Value::String("secret".into())),
            "<6 characters>"
        );
        assert_eq!(mask("port", Value::from(1)), Value::from(1));
    }
}
