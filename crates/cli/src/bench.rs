//! `tandem bench`: prompt processing and token generation speed, measured like `llama-bench`
//! (`-p 512 -n 128 -d DEPTH`): random token ids, the KV cache pre-filled to DEPTH untimed, the
//! median of `--reps` runs reported.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use tandem_engine::{LoadedModel, Rng};
use tandem_model::{KvCache, RunState};

use crate::{Home, ModelArg};

#[derive(clap::Subcommand)]
pub enum BenchCmd {
    /// Load a running (or self-started) server at several concurrency levels.
    Serve(crate::bench_serve::BenchServeArgs),
}

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    cmd: Option<BenchCmd>,
    #[command(flatten)]
    model: ModelArg,
    /// Prompt tokens processed in one prefill (0 to skip).
    #[arg(short = 'p', long, default_value_t = 512)]
    prompt: usize,
    /// Tokens generated one at a time (0 to skip).
    #[arg(short = 'n', long, default_value_t = 128)]
    gen: usize,
    /// Tokens already in the KV cache before each measurement.
    #[arg(short = 'd', long, default_value_t = 0)]
    depth: usize,
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// KV-cache element type: f16 or f32.
    #[arg(long, default_value = "f16")]
    kv_type: String,
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long)]
    json: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn bench(home: &Home, a: BenchArgs) -> Result<()> {
    if let Some(BenchCmd::Serve(s)) = a.cmd {
        return crate::bench_serve::bench_serve(s);
    }
    crate::commands::set_threads(a.threads)?;
    let path = home.resolve_model(&a.model.model)?;
    let lm = LoadedModel::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let cfg = &lm.model.config;
    let ctx = a.depth + a.prompt.max(a.gen) + 1;
    let kv_type = match a.kv_type.as_str() {
        "f16" => tandem_model::KvType::F16,
        "f32" => tandem_model::KvType::F32,
        other => anyhow::bail!("--kv-type {other:?}: expected f16 or f32"),
    };
    let mut kv = KvCache::with_type(cfg, ctx, kv_type);
    let mut st = RunState::new(cfg, tandem_engine::PREFILL_BATCH, 1, ctx);
    let mut rng = Rng::new(42);
    let mut tokens = |n: usize| -> Vec<u32> { (0..n).map(|_| (rng.next_u64() % 150_000) as u32).collect() };
    let depth_tokens = tokens(a.depth);
    let reps = a.reps.max(1);

    let fill = |kv: &mut KvCache, st: &mut RunState| -> Result<()> {
        kv.truncate(0);
        if !depth_tokens.is_empty() {
            lm.model.forward(st, kv, &depth_tokens)?;
        }
        Ok(())
    };
    let (mut pp, mut tg) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        if a.prompt > 0 {
            let p = tokens(a.prompt);
            fill(&mut kv, &mut st)?;
            let t = Instant::now();
            lm.model.forward(&mut st, &mut kv, &p)?;
            pp.push(a.prompt as f64 / t.elapsed().as_secs_f64());
        }
        if a.gen > 0 {
            fill(&mut kv, &mut st)?;
            let mut tok = tokens(1)[0];
            let t = Instant::now();
            for _ in 0..a.gen {
                let logits = lm.model.decode(&mut st, &mut kv, tok)?;
                tok = tandem_engine::argmax(logits);
            }
            tg.push(a.gen as f64 / t.elapsed().as_secs_f64());
        }
    }
    let pp_m = (!pp.is_empty()).then(|| median(pp.clone()));
    let tg_m = (!tg.is_empty()).then(|| median(tg.clone()));
    let threads = rayon::current_num_threads();
    if a.json {
        println!(
            "{}",
            json!({"model": cfg.name, "file": path.display().to_string(), "threads": threads, "depth": a.depth,
                   "cpu": tandem_kernels::cpu_features(),
                   "pp": {"tokens": a.prompt, "median_tok_s": pp_m, "runs": pp},
                   "tg": {"tokens": a.gen, "median_tok_s": tg_m, "runs": tg}})
        );
    } else {
        println!(
            "model {} | {} threads | {}",
            cfg.name,
            threads,
            tandem_kernels::cpu_features()
        );
        if let Some(m) = pp_m {
            println!(
                "pp{} @ d{}: {:8.1} tok/s  (median of {reps}; runs {:?})",
                a.prompt,
                a.depth,
                m,
                round(&pp)
            );
        }
        if let Some(m) = tg_m {
            println!(
                "tg{} @ d{}: {:8.1} tok/s  (median of {reps}; runs {:?})",
                a.gen,
                a.depth,
                m,
                round(&tg)
            );
        }
    }
    Ok(())
}

fn round(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| (x * 10.0).round() / 10.0).collect()
}
