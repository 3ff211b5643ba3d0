//! `tandem bench cost`: honest per-token prices from measurement. Given what the machine costs per
//! hour, a tier's price per 1M input tokens is what an hour of its prefill throughput costs, and
//! per 1M output tokens what an hour of its batched decode throughput (at `--concurrency`
//! sequences, what the server sustains) costs. Cached input skips prefill compute; it is billed at
//! a tenth of input (the KV memory it holds still costs something).

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use tandem_engine::{LoadedModel, Rng};
use tandem_model::{KvCache, KvPool, KvType, Logits, RunState, SeqStep, TokenPath};

use crate::{tiers, Home};

/// A 2-vCPU cloud machine's hourly price, roughly (the default; pass your own).
pub const DEFAULT_PRICE_PER_HOUR: f64 = 0.10;
/// Cached input, as a fraction of the input price.
pub const CACHED_FRACTION: f64 = 0.1;

#[derive(Args)]
pub struct BenchCostArgs {
    /// What the machine costs per hour, in dollars.
    #[arg(long, default_value_t = DEFAULT_PRICE_PER_HOUR)]
    price_per_hour: f64,
    /// Tiers to measure.
    #[arg(long, default_value = "mini,flagship")]
    models: String,
    /// Sequences decoding together (the server's --parallel).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[arg(long)]
    json: bool,
}

/// Dollars per 1M tokens at `tps` tokens per second.
pub fn per_million(price_per_hour: f64, tps: f64) -> f64 {
    price_per_hour / 3600.0 / tps * 1e6
}

pub fn bench_cost(home: &Home, a: BenchCostArgs) -> Result<()> {
    let mut rows = Vec::new();
    for spec in a.models.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let path = home.resolve_model(spec)?;
        let lm = LoadedModel::load(&path).with_context(|| format!("loading {}", path.display()))?;
        let cfg = &lm.model.config;
        let c = a.concurrency.max(1);
        let mut rng = Rng::new(7);
        let mut toks = |n: usize| -> Vec<u32> { (0..n).map(|_| (rng.next_u64() % 150_000) as u32).collect() };
        let ctx = 512 + 64;
        let mut st = RunState::new(cfg, tandem_engine::PREFILL_BATCH.max(c), c, ctx);

        // Prefill: 512-token prompts, median of 3.
        let mut kv = KvCache::new(cfg, ctx);
        let mut pp = Vec::new();
        for _ in 0..3 {
            kv.truncate(0);
            let p = toks(512);
            let t = Instant::now();
            lm.model.forward(&mut st, &mut kv, &p)?;
            pp.push(512.0 / t.elapsed().as_secs_f64());
        }
        let prefill = crate::bench::median(&mut pp);

        // Batched decode: c sequences with 128-token prompts, 32 steps of c tokens each.
        let (mut pool, mut kvs) = KvPool::with_tables(cfg, KvType::F16, ctx, c);
        for kv in kvs.iter_mut() {
            let p = toks(128);
            let mut one = [SeqStep {
                kv,
                tokens: &p,
                logits: Logits::None,
                path: TokenPath::Prompt,
            }];
            lm.model.step(&mut st, &mut pool, &mut one)?;
        }
        let mut next: Vec<u32> = toks(c);
        let steps = 32;
        let t = Instant::now();
        for _ in 0..steps {
            let mut batch: Vec<SeqStep> = kvs
                .iter_mut()
                .zip(&next)
                .map(|(kv, tok)| SeqStep {
                    kv,
                    tokens: std::slice::from_ref(tok),
                    logits: Logits::Last,
                    path: TokenPath::Generated,
                })
                .collect();
            lm.model.step(&mut st, &mut pool, &mut batch)?;
            for (i, n) in next.iter_mut().enumerate() {
                *n = tandem_engine::argmax(st.logits_of(i).expect("logits requested"));
            }
        }
        let decode = (c * steps) as f64 / t.elapsed().as_secs_f64();
        let input = per_million(a.price_per_hour, prefill);
        let output = per_million(a.price_per_hour, decode);
        let name = tiers::find(spec)
            .map(|t| t.name.to_string())
            .unwrap_or_else(|| spec.to_string());
        rows.push(
            json!({"tier": name, "prefill_tok_s": prefill, "decode_tok_s": decode, "concurrency": c,
                         "input": input, "cached_input": input * CACHED_FRACTION, "output": output}),
        );
    }
    if a.json {
        println!(
            "{}",
            json!({"price_per_hour": a.price_per_hour, "unit": "USD per 1M tokens", "tiers": rows})
        );
        return Ok(());
    }
    println!(
        "machine at ${}/hour · {} threads · prices in USD per 1M tokens",
        a.price_per_hour,
        tandem_kernels::pool::threads()
    );
    println!(
        "| tier | prefill tok/s | decode tok/s (×{}) | input | cached input | output |",
        a.concurrency
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.1} | {:.1} | {:.3} | {:.4} | {:.3} |",
            r["tier"].as_str().unwrap_or(""),
            r["prefill_tok_s"].as_f64().unwrap_or(0.0),
            r["decode_tok_s"].as_f64().unwrap_or(0.0),
            r["input"].as_f64().unwrap_or(0.0),
            r["cached_input"].as_f64().unwrap_or(0.0),
            r["output"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}
