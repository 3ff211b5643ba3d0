//! `run`, `tokenize` and `logits`.

use std::io::Write;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_engine::{EngineConfig, EngineHandle, Event, GenRequest, LoadedModel, SamplingParams, SingleSequence};
use tandem_text::{ChatMessage, SpecialMode, Tokenizer};

use crate::{Home, ModelArg};

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    model: ModelArg,
    /// The user's message.
    prompt: String,
    #[arg(long)]
    system: Option<String>,
    /// Use the prompt as the complete model input (special tokens such as <|im_start|> parsed),
    /// without the chat template.
    #[arg(long, conflicts_with = "system")]
    raw: bool,
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Context size in tokens.
    #[arg(long, default_value_t = 4096)]
    ctx: usize,
    /// Print one JSON object {"text", "usage", "timings"} at the end instead of streaming.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct LogitsArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Comma-separated token ids.
    #[arg(long)]
    tokens: String,
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Exact mode: f32 activations and an f32 KV cache (the default caches K and V in f16).
    #[arg(long)]
    exact: bool,
    /// RoPE as `serve --rope-scaling` (yarn: rotate these tokens with YaRN, to measure its drift
    /// at short context).
    #[arg(long, default_value = "auto")]
    rope_scaling: String,
    /// KV-cache element type (f16, f32, q8_0, q4_0): the cache's rounding measured on these tokens;
    /// default f16, or f32 with --exact.
    #[arg(long)]
    kv_type: Option<String>,
    #[arg(long)]
    threads: Option<usize>,
}

pub fn set_threads(n: Option<usize>) -> Result<()> {
    if let Some(n) = n {
        tandem_kernels::pool::set_threads(n).map_err(|e| anyhow::anyhow!("--threads: {e}"))?;
    }
    Ok(())
}

pub fn run(home: &Home, a: RunArgs) -> Result<()> {
    set_threads(a.threads)?;
    let path = home.resolve_model(&a.model.model)?;
    let lm = LoadedModel::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let prompt = if a.raw {
        let mut p: Vec<u32> = lm.tokenizer.bos.into_iter().collect();
        lm.tokenizer.encode_into(&a.prompt, SpecialMode::All, &mut p);
        p
    } else {
        let mut messages = Vec::new();
        if let Some(s) = &a.system {
            messages.push(ChatMessage::new("system", s));
        }
        messages.push(ChatMessage::new("user", &a.prompt));
        lm.chat_prompt(&messages)?
    };
    let params = SamplingParams {
        temperature: a.temperature,
        top_p: a.top_p,
        top_k: a.top_k,
        min_p: a.min_p,
        repetition_penalty: a.repeat_penalty,
        seed: a.seed,
        ..SamplingParams::default()
    };
    let ctx = a.ctx.min(lm.model.config.ctx_train).max(prompt.len() + 1);
    // The same scheduler the server uses, with one slot: one generation loop in the project.
    let lm = Arc::new(lm);
    let engine = EngineHandle::spawn(
        lm.clone(),
        EngineConfig {
            slots: 1,
            ctx,
            step_tokens: tandem_engine::PREFILL_BATCH,
            kv_type: tandem_model::KvType::F16,
            max_queue: 1,
            queue_timeout: Duration::from_secs(3600),
            ..EngineConfig::new(1, ctx)
        },
    );
    let max_tokens = a.max_tokens.min(ctx - prompt.len());
    let n_prompt = prompt.len();
    let req = GenRequest::new(prompt, params, max_tokens);
    let start = Instant::now();
    let mut rx = engine.submit(req)?;
    let stdout = std::io::stdout();
    let (mut text, mut first, mut last, mut tokens) = (String::new(), None, start, 0usize);
    let (finish, completion_tokens) = loop {
        match rx.blocking_recv() {
            Some(Event::Token { text: piece, .. }) => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                tokens += 1;
                if !a.json {
                    let mut o = stdout.lock();
                    // A closed pipe (e.g. `| head`) ends the run; dropping the receiver cancels it.
                    if o.write_all(piece.as_bytes()).and_then(|_| o.flush()).is_err() {
                        return Ok(());
                    }
                }
                text.push_str(&piece);
            }
            Some(Event::Finished {
                reason,
                completion_tokens,
                ..
            }) => break (reason, completion_tokens),
            Some(Event::Prefilled { .. }) => {}
            Some(Event::TimedOut) => bail!("timed out waiting for the engine"),
            Some(Event::Failed(e)) => bail!("generation failed: {e}"),
            None => bail!("the engine stopped"),
        }
    };
    let ttft = first
        .map(|f| (f - start).as_secs_f64())
        .unwrap_or_else(|| start.elapsed().as_secs_f64());
    let decode_s = first.map(|f| (last - f).as_secs_f64()).unwrap_or(0.0);
    let decode_tps = if tokens > 1 {
        (tokens - 1) as f64 / decode_s.max(1e-9)
    } else {
        0.0
    };
    let prefill_tps = n_prompt as f64 / ttft.max(1e-9);
    if a.json {
        let v = json!({
            "text": text,
            "finish_reason": finish.as_str(),
            "usage": {"prompt_tokens": n_prompt, "completion_tokens": completion_tokens, "total_tokens": n_prompt + completion_tokens},
            "timings": {"prefill_tokens_per_s": prefill_tps, "decode_tokens_per_s": decode_tps, "ttft_s": ttft, "decode_s": decode_s},
        });
        println!("{v}");
    } else {
        println!();
        eprintln!(
            "[{n_prompt} prompt tokens, {completion_tokens} generated ({}) | prefill {prefill_tps:.1} tok/s | decode {decode_tps:.1} tok/s | TTFT {ttft:.3} s]",
            finish.as_str()
        );
    }
    Ok(())
}

pub fn tokenize(home: &Home, model: &str, text: &str) -> Result<()> {
    let path = home.resolve_model(model)?;
    let file = tandem_gguf::GgufFile::open(&path)?;
    let tok = Tokenizer::from_gguf(&file)?;
    println!(
        "{}",
        serde_json::to_string(&tok.encode(text, SpecialMode::UserDefined))?
    );
    Ok(())
}

pub fn logits(home: &Home, a: LogitsArgs) -> Result<()> {
    set_threads(a.threads)?;
    let ids: Vec<u32> = a
        .tokens
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<u32>()
                .with_context(|| format!("--tokens: {s:?} is not a token id"))
        })
        .collect::<Result<_>>()?;
    if ids.is_empty() {
        bail!("--tokens is empty");
    }
    let path = home.resolve_model(&a.model.model)?;
    let mut lm = LoadedModel::load(&path)?;
    let mode = crate::sys::rope_scaling(&a.rope_scaling)?;
    let yarn_past = lm.model.config.set_rope_for(ids.len() + 1, mode);
    let rope = tandem_model::Rope::reaching(ids.len() + 1, yarn_past);
    let kv_type = match &a.kv_type {
        Some(s) => crate::sys::kv_type(s)?,
        None if a.exact => tandem_model::KvType::F32,
        None => tandem_model::KvType::F16,
    };
    let mut gen = SingleSequence::with_kv_type(&lm, ids.len() + 1, kv_type).with_rope(rope);
    let logits = gen.logits(&ids)?;
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&x, &y| logits[y].total_cmp(&logits[x]).then(x.cmp(&y)));
    let top: Vec<(usize, f32)> = idx.iter().take(a.top).map(|&i| (i, logits[i])).collect();
    println!("{}", json!({ "top": top }));
    Ok(())
}

#[derive(clap::Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    model: ModelArg,
    /// JSONL file whose lines have a "text" field (other fields are copied through).
    input: std::path::PathBuf,
    /// Tokens kept per text (the rest is cut).
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    #[arg(long)]
    threads: Option<usize>,
    /// Embed the moderation segments of each text that the moderator reads in more than one
    /// (`tandem_safety::moderator::segments`), one line per segment with `"segment": k`, instead of
    /// whole texts; texts read whole give no line. The head is trained and calibrated on these too,
    /// so it sees long texts the way `/v1/moderations` reads them.
    #[arg(long)]
    segments: bool,
}

/// `tandem embed`: each line's text → its embedding (mean of the final normed hidden states), one
/// JSON line per input line on stdout. The moderation classifier's head is trained on these.
pub fn embed(home: &Home, a: EmbedArgs) -> Result<()> {
    use std::io::{BufRead, Write};
    set_threads(a.threads)?;
    let path = home.resolve_model(&a.model.model)?;
    let lm = LoadedModel::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let cfg = &lm.model.config;
    let n = a.max_tokens.max(1);
    let mut st = tandem_model::RunState::new(cfg, tandem_engine::PREFILL_BATCH, 1, n);
    let mut kv = tandem_model::KvCache::new(cfg, n);
    let input = std::fs::File::open(&a.input).with_context(|| format!("opening {}", a.input.display()))?;
    let mut out = std::io::stdout().lock();
    for (i, line) in std::io::BufReader::new(input).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let mut v: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("{} line {}", a.input.display(), i + 1))?;
        let Some(text) = v["text"].as_str() else {
            anyhow::bail!("{} line {}: no \"text\" string", a.input.display(), i + 1);
        };
        let encode = |s: &str| lm.tokenizer.encode(s, tandem_text::SpecialMode::None);
        if a.segments {
            let segments = tandem_safety::moderator::segments(text, encode);
            if segments.len() > 1 {
                for (k, tokens) in segments.iter().enumerate() {
                    v["segment"] = serde_json::json!(k);
                    v["embedding"] =
                        serde_json::json!(lm.model.embed(&mut st, &mut kv, &tokens[..tokens.len().min(n)])?);
                    writeln!(out, "{v}")?;
                }
            }
            continue;
        }
        let mut tokens = encode(text);
        tokens.truncate(n);
        if tokens.is_empty() {
            anyhow::bail!("{} line {}: empty text", a.input.display(), i + 1);
        }
        let e = lm.model.embed(&mut st, &mut kv, &tokens)?;
        v["embedding"] = serde_json::json!(e);
        writeln!(out, "{v}")?;
    }
    Ok(())
}
