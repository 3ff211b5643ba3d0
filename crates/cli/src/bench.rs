//! `tandem bench`: prompt processing and token generation speed, measured and reported like
//! `llama-bench` (`-p 512 -n 128 -d 0,4096 -r 5 -t 2 -o md|json`): random token ids, the KV cache
//! filled to each depth untimed (once, see `Depth`; the fill's own time is printed and saved as
//! `fill`), one result per test with llama-bench's JSON fields (`n_prompt`, `n_gen`, `n_depth`,
//! `n_threads`, `avg_ts`, `stddev_ts`, `samples_ts`) plus peak RSS.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use tandem_engine::{LoadedModel, Rng};
use tandem_model::{KvCache, RunState};

use crate::{Home, ModelArg};

#[derive(clap::Subcommand)]
pub enum BenchCmd {
    /// Load a running (or self-started) server at several concurrency levels.
    Serve(crate::bench_serve::BenchServeArgs),
    /// Derive per-token prices from measured throughput and the machine's hourly price.
    Cost(crate::bench_cost::BenchCostArgs),
    /// Decode speed with and without a JSON-schema constraint.
    Json(crate::bench_json::BenchJsonArgs),
    /// Speculative decoding: plain vs n-gram vs draft-model decode speed and acceptance.
    Spec(crate::bench_spec::BenchSpecArgs),
    /// The sentence encoder (/v1/embeddings): sentences/s one per call and batched, and its price.
    Embed(crate::bench_embed::BenchEmbedArgs),
    /// Whisper on audio files: seconds and real-time factor per model.
    Audio(crate::bench_audio::BenchAudioArgs),
    /// The Piper voice: time to first audio, real-time factor, and the mini's decode while it speaks.
    Voice(crate::bench_voice::BenchVoiceArgs),
    /// The perception stage (image input): time per image by stage, at 640×480 and 1920×1080.
    Vision(crate::bench_vision::BenchVisionArgs),
    /// A long mixed load (many streams, mixed prompt lengths, clients that disconnect): steady
    /// throughput and memory, every KV block returned.
    Soak(crate::bench_soak::BenchSoakArgs),
    /// The state's cost per request: usage writes, batch-line claims, the shared rate limiter (SQLite vs PostgreSQL).
    Store(crate::bench_store::BenchStoreArgs),
}

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    cmd: Option<BenchCmd>,
    #[command(flatten)]
    model: ModelArg,
    /// Prompt lengths, comma-separated (0 to skip prompt processing).
    #[arg(short = 'p', long = "n-prompt", default_value = "512")]
    prompt: String,
    /// Generation lengths, comma-separated (0 to skip).
    #[arg(short = 'n', long = "n-gen", default_value = "128")]
    gen: String,
    /// KV-cache depths before each test, comma-separated.
    #[arg(short = 'd', long = "n-depth", default_value = "0")]
    depth: String,
    /// Repetitions of each test.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    reps: usize,
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// KV-cache element type: f16, f32, q8_0 or q4_0.
    #[arg(long, default_value = "f16")]
    kv_type: String,
    /// RoPE past the trained context (as `serve --rope-scaling`): auto puts the tests that
    /// reach past it on YaRN.
    #[arg(long, default_value = "auto")]
    rope_scaling: String,
    /// Output: md (a table) or json (llama-bench's fields).
    #[arg(short = 'o', long, default_value = "md")]
    output: String,
    /// Also measure the memory read bandwidth of the compute threads (a 1 GiB buffer, after the
    /// tests) and each decode test's share of it.
    #[arg(long)]
    bandwidth: bool,
}

fn list(s: &str, what: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<usize>()
                .with_context(|| format!("{what}: {x:?} is not a number"))
        })
        .collect()
}

/// Peak resident memory of this process (VmHWM), in bytes.
pub fn peak_rss() -> u64 {
    crate::sys::proc_kib("/proc/self/status", "VmHWM").unwrap_or(0)
}

/// The median of `v` (sorted in place; the upper middle of an even count).
pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The depth the tests stand on: one stream of random tokens, filled once and reused. A test
/// truncates the cache back to its depth (its own tokens came after), a deeper depth extends
/// what is filled, so `-d 32768,131072` prefills 131,072 positions once, not once per test and
/// repetition as llama-bench does; the cache's numbers are the same, since each position's keys
/// and values depend only on the tokens before it and its RoPE.
struct Depth {
    tokens: Vec<u32>,
    /// Leading positions of the cache that hold `tokens`.
    clean: usize,
}

/// A prefill the bench ran to reach a depth: positions `from..to` in `seconds` (from 0, the time
/// to first token of a `to`-token prompt, engine alone).
#[derive(Clone, Copy)]
struct Fill {
    from: usize,
    to: usize,
    seconds: f64,
}

impl Depth {
    /// Leaves `depth` positions of the stream in `kv` under `rope`, filling what is missing.
    fn hold(
        &mut self,
        lm: &LoadedModel,
        st: &mut RunState,
        kv: &mut KvCache,
        depth: usize,
        rope: tandem_model::Rope,
    ) -> Result<Option<Fill>> {
        if kv.table.rope != rope {
            kv.reset(rope);
            self.clean = 0;
        }
        // A test at a shallower depth overwrites what lies past it.
        self.clean = self.clean.min(depth);
        kv.truncate(self.clean);
        if self.clean == depth {
            return Ok(None);
        }
        let from = self.clean;
        let t = Instant::now();
        lm.model.forward(st, kv, &self.tokens[from..depth])?;
        let seconds = t.elapsed().as_secs_f64();
        self.clean = depth;
        eprintln!(
            "tandem: filled positions {from}..{depth} in {seconds:.1} s ({:.1} tok/s)",
            (depth - from) as f64 / seconds
        );
        Ok(Some(Fill {
            from,
            to: depth,
            seconds,
        }))
    }
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64
    } else {
        0.0
    };
    (m, var.sqrt())
}

pub fn bench(home: &Home, a: BenchArgs) -> Result<()> {
    match a.cmd {
        Some(BenchCmd::Serve(s)) => return crate::bench_serve::bench_serve(home, s),
        Some(BenchCmd::Cost(c)) => return crate::bench_cost::bench_cost(home, c),
        Some(BenchCmd::Json(j)) => return crate::bench_json::bench_json(home, j),
        Some(BenchCmd::Spec(j)) => return crate::bench_spec::bench_spec(home, j),
        Some(BenchCmd::Embed(j)) => return crate::bench_embed::bench_embed(home, j),
        Some(BenchCmd::Audio(j)) => return crate::bench_audio::bench_audio(home, j),
        Some(BenchCmd::Voice(j)) => return crate::bench_voice::bench_voice(home, j),
        Some(BenchCmd::Vision(j)) => return crate::bench_vision::bench_vision(home, j),
        Some(BenchCmd::Store(j)) => return crate::bench_store::bench_store(home, j),
        Some(BenchCmd::Soak(j)) => return crate::bench_soak::bench_soak(j),
        None => {}
    }
    crate::commands::set_threads(a.threads)?;
    let (prompts, gens, depths) = (list(&a.prompt, "-p")?, list(&a.gen, "-n")?, list(&a.depth, "-d")?);
    let kv_type = crate::sys::kv_type(&a.kv_type)?;
    if !matches!(a.output.as_str(), "md" | "json") {
        bail!("-o {:?}: expected md or json", a.output);
    }
    let path = home.resolve_model(&a.model.model)?;
    let mut lm = LoadedModel::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let longest = prompts.iter().chain(&gens).copied().max().unwrap_or(1);
    let ctx = depths.iter().copied().max().unwrap_or(0) + longest + 1;
    let mode = crate::sys::rope_scaling(&a.rope_scaling)?;
    if ctx > lm.model.config.full_context(mode) {
        bail!(
            "depth {ctx} is past the model's {} positions under --rope-scaling {}",
            lm.model.config.full_context(mode),
            a.rope_scaling
        );
    }
    let yarn_past = lm.model.config.set_rope_for(ctx, mode);
    let cfg = &lm.model.config;
    let mut kv = KvCache::with_type(cfg, ctx, kv_type);
    let mut st = RunState::new(cfg, tandem_engine::PREFILL_BATCH, 1, ctx);
    let mut rng = Rng::new(42);
    let mut tokens = |n: usize| -> Vec<u32> { (0..n).map(|_| (rng.next_u64() % 150_000) as u32).collect() };
    let reps = a.reps.max(1);
    let threads = tandem_kernels::pool::threads();
    let file_size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);

    // Tests in llama-bench's order: every prompt test, then every generation test, at each depth.
    let mut tests: Vec<(usize, usize, usize)> = Vec::new(); // (n_prompt, n_gen, depth)
    for &d in &depths {
        tests.extend(prompts.iter().filter(|&&p| p > 0).map(|&p| (p, 0, d)));
        tests.extend(gens.iter().filter(|&&g| g > 0).map(|&g| (0, g, d)));
    }
    let mut depth = Depth {
        tokens: tokens(depths.iter().copied().max().unwrap_or(0)),
        clean: 0,
    };
    let mut results = Vec::new();
    for (np, ng, d) in tests {
        let mut samples = Vec::with_capacity(reps);
        let rope = tandem_model::Rope::reaching(d + np + ng, yarn_past);
        let mut fill = None;
        for _ in 0..reps {
            fill = fill.or(depth.hold(&lm, &mut st, &mut kv, d, rope)?);
            if np > 0 {
                let p = tokens(np);
                let t = Instant::now();
                lm.model.forward(&mut st, &mut kv, &p)?;
                samples.push(np as f64 / t.elapsed().as_secs_f64());
            } else {
                let mut tok = tokens(1)[0];
                let t = Instant::now();
                for _ in 0..ng {
                    tok = tandem_engine::argmax(lm.model.decode(&mut st, &mut kv, tok)?);
                }
                samples.push(ng as f64 / t.elapsed().as_secs_f64());
            }
        }
        let (avg, sd) = mean_sd(&samples);
        results.push(json!({
            "build_commit": env!("CARGO_PKG_VERSION"), "model_filename": path.display().to_string(),
            "model_type": cfg.name, "model_size": file_size, "n_threads": threads, "type_k": a.kv_type, "type_v": a.kv_type,
            "n_prompt": np, "n_gen": ng, "n_depth": d, "avg_ts": avg, "stddev_ts": sd, "samples_ts": samples,
            "cpu_info": tandem_kernels::cpu_features(), "max_rss_bytes": peak_rss(),
            "kv_positions": kv.len(), "rope": format!("{rope:?}"),
            "fill": fill.map(|f: Fill| json!({"from": f.from, "to": f.to, "seconds": f.seconds})),
        }));
    }
    // Runs only at depth are kept apart, so they leave the depth-0 figures `tandem report` reads.
    let deep = if depths.contains(&0) { "" } else { "-depth" };
    let name = format!("bench-{}{deep}", crate::results::key(&a.model.model));
    let saved = crate::results::save(home, &name, json!(results))?;
    let why = match deep {
        "" => "tandem report reads them",
        _ => "apart from the depth-0 runs tandem report reads",
    };
    eprintln!("tandem: results saved to {} ({why})", saved.display());
    let ceiling = a.bandwidth.then(|| bandwidth(&path, &mut results, threads));
    if a.output == "json" {
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(());
    }
    println!("| model | size | threads | kv | test | t/s | KV held | RoPE | peak RSS |");
    println!("|---|---:|---:|---|---:|---:|---:|---|---:|");
    for r in &results {
        let (np, ng, d) = (
            r["n_prompt"].as_u64().unwrap_or(0),
            r["n_gen"].as_u64().unwrap_or(0),
            r["n_depth"].as_u64().unwrap_or(0),
        );
        let test = if np > 0 { format!("pp{np}") } else { format!("tg{ng}") };
        let test = if d > 0 { format!("{test} @ d{d}") } else { test };
        println!(
            "| {} | {:.2} GiB | {} | {} | {} | {:.2} ± {:.2} | {} | {} | {} MiB |",
            r["model_type"].as_str().unwrap_or(""),
            file_size as f64 / (1u64 << 30) as f64,
            threads,
            a.kv_type,
            test,
            r["avg_ts"].as_f64().unwrap_or(0.0),
            r["stddev_ts"].as_f64().unwrap_or(0.0),
            r["kv_positions"].as_u64().unwrap_or(0),
            r["rope"].as_str().unwrap_or(""),
            r["max_rss_bytes"].as_u64().unwrap_or(0) >> 20
        );
    }
    if let Some(gbps) = ceiling {
        print_bandwidth(&results, gbps, threads);
    }
    Ok(())
}

/// Measures the read ceiling (`tandem_kernels::bandwidth`, best of 5 passes over 1 GiB on the
/// compute threads) and adds to each decode test the bytes of weights it reads per token — every
/// tensor but the token-embedding table, of which a step reads one row — and the share of the
/// ceiling its speed implies. Returns the ceiling in GB/s.
fn bandwidth(path: &std::path::Path, results: &mut [serde_json::Value], threads: usize) -> f64 {
    let buf = tandem_kernels::bandwidth::probe_buffer(1 << 30);
    let gbps = tandem_kernels::bandwidth::read_gbps(&buf, 5, tandem_kernels::dispatch::Isa::detected());
    drop(buf);
    let per_token = tandem_gguf::GgufFile::open(path).map_or(0, |f| {
        f.tensors()
            .iter()
            .filter(|t| t.name != "token_embd.weight")
            .map(|t| t.n_bytes)
            .sum::<u64>()
    });
    for r in results.iter_mut().filter(|r| r["n_gen"].as_u64().unwrap_or(0) > 0) {
        let read = per_token as f64 * r["avg_ts"].as_f64().unwrap_or(0.0) / 1e9;
        r["weights_bytes_per_token"] = json!(per_token);
        r["read_gbps"] = json!(read);
        r["ceiling_gbps"] = json!(gbps);
        r["ceiling_fraction"] = json!(read / gbps);
    }
    eprintln!("tandem: memory read ceiling {gbps:.1} GB/s ({threads} threads, 1 GiB, best of 5)");
    gbps
}

fn print_bandwidth(results: &[serde_json::Value], gbps: f64, threads: usize) {
    println!("\nmemory read ceiling: {gbps:.1} GB/s ({threads} threads, measured in this run)\n");
    println!("| test | weights read per token | read rate | share of the ceiling |");
    println!("|---|---:|---:|---:|");
    for r in results.iter().filter(|r| r.get("ceiling_fraction").is_some()) {
        let (ng, d) = (r["n_gen"].as_u64().unwrap_or(0), r["n_depth"].as_u64().unwrap_or(0));
        let test = if d > 0 {
            format!("tg{ng} @ d{d}")
        } else {
            format!("tg{ng}")
        };
        println!(
            "| {test} | {:.0} MiB | {:.1} GB/s | {:.0}% |",
            r["weights_bytes_per_token"].as_u64().unwrap_or(0) as f64 / (1u64 << 20) as f64,
            r["read_gbps"].as_f64().unwrap_or(0.0),
            100.0 * r["ceiling_fraction"].as_f64().unwrap_or(0.0)
        );
    }
}
