//! `tandem bench spec`: what speculative decoding buys on this machine. The target model decodes
//! the same prompts plainly, with n-gram (prompt-lookup) drafts, and with the draft model's
//! drafts — interleaved per prompt, greedy, one sequence — on code-editing prompts (the answer
//! repeats the prompt) and prose prompts; on the code prompts also n-gram decoding (the server's
//! default) with the original code as a Predicted Output (`prediction` in the API). Decode speed counts from the first token to the last,
//! so the drafter's own catch-up on the prompt is paid inside it. Outputs must be identical
//! across modes (speculation never changes greedy output); the run fails otherwise.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use tandem_engine::{EngineConfig, EngineHandle, Event, GenRequest, LoadedModel, SamplingParams, SpecConfig, SpecMode};
use tandem_text::{ChatMessage, SpecialMode};

use crate::Home;

#[derive(Args)]
pub struct BenchSpecArgs {
    /// The target model (tier, canonical id or GGUF path).
    #[arg(long, short, default_value = "flagship")]
    model: String,
    /// The draft model (must share the target's tokenizer), or `none` to leave that mode out.
    #[arg(long, default_value = "mini")]
    draft: String,
    /// Tokens generated per prompt.
    #[arg(short = 'n', long, default_value_t = 128)]
    n_gen: usize,
    /// Rounds over the prompts.
    #[arg(short = 'r', long = "repetitions", default_value_t = 1)]
    reps: usize,
    /// Most draft tokens per step.
    #[arg(long, default_value_t = 6)]
    max_draft: usize,
    /// Draft `max_draft` tokens every step instead of adapting to the acceptance rate.
    #[arg(long)]
    forced: bool,
    #[arg(long)]
    json: bool,
}

const CODE: &str = "def moving_average(values, window):\n    result = []\n    for i in range(len(values) - window + 1):\n        total = 0\n        for j in range(window):\n            total += values[i + j]\n        result.append(total / window)\n    return result\n\n\ndef normalise(values):\n    low = min(values)\n    high = max(values)\n    return [(v - low) / (high - low) for v in values]\n";

/// (set, prompt): code edits whose answers repeat much of the prompt, and free prose.
fn prompts() -> Vec<(&'static str, String)> {
    vec![
        (
            "code",
            format!(
                "Add type hints to every function of this code and print the whole code again:\n```python\n{CODE}```"
            ),
        ),
        (
            "code",
            format!("Rename `values` to `xs` everywhere in this code and print the whole code:\n```python\n{CODE}```"),
        ),
        (
            "code",
            format!("Add a docstring to each function of this code and print the whole code:\n```python\n{CODE}```"),
        ),
        (
            "prose",
            "Explain in a paragraph how a refrigerator keeps food cold.".to_string(),
        ),
        (
            "prose",
            "Write a short story about a lighthouse keeper who finds a message in a bottle.".to_string(),
        ),
        (
            "prose",
            "What are the main differences between TCP and UDP? Answer in prose.".to_string(),
        ),
    ]
}

/// Runs one request; returns (token text, tokens, seconds from the first token to the last).
fn generate(engine: &EngineHandle, req: GenRequest) -> Result<(String, usize, f64)> {
    let mut rx = engine.submit(req)?;
    let (mut first, mut last, mut text) = (None, Instant::now(), String::new());
    loop {
        match rx.blocking_recv() {
            Some(Event::Token { text: t, .. }) => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                text.push_str(&t);
            }
            Some(Event::Finished { completion_tokens, .. }) => {
                let secs = first.map(|f| (last - f).as_secs_f64()).unwrap_or(0.0);
                return Ok((text, completion_tokens, secs));
            }
            Some(Event::Prefilled { .. }) => {}
            Some(other) => bail!("generation failed: {other:?}"),
            None => bail!("the engine stopped"),
        }
    }
}

/// Per (set, mode): tokens after the first, decode seconds, draft tokens proposed and accepted,
/// verification steps.
#[derive(Default, Clone, Copy)]
struct Tally {
    tokens: usize,
    secs: f64,
    proposed: u64,
    accepted: u64,
    verifications: u64,
}

pub fn bench_spec(home: &Home, a: BenchSpecArgs) -> Result<()> {
    let target = Arc::new(LoadedModel::load(home.resolve_model(&a.model)?)?);
    let draft = match a.draft.as_str() {
        "none" => None,
        d => Some(Arc::new(LoadedModel::load(home.resolve_model(d)?)?)),
    };
    let modes: Vec<SpecMode> = [SpecMode::Off, SpecMode::NGram, SpecMode::Draft]
        .into_iter()
        .filter(|&m| m != SpecMode::Draft || draft.is_some())
        .collect();
    let engines: Vec<EngineHandle> = modes
        .iter()
        .map(|&mode| {
            let cfg = EngineConfig {
                spec: SpecConfig {
                    mode,
                    max_draft: a.max_draft,
                    forced: a.forced,
                    ..SpecConfig::default()
                },
                ..EngineConfig::new(1, 2048)
            };
            EngineHandle::spawn_with_draft(target.clone(), cfg, draft.clone()).map_err(anyhow::Error::msg)
        })
        .collect::<Result<_>>()
        .context("the draft model")?;
    let sets = ["code", "prose"];
    // Columns: the modes, then n-gram decoding with a prediction (code prompts only).
    let mut tally = [[Tally::default(); 4]; 2];
    let greedy = SamplingParams::greedy();
    for rep in 0..a.reps {
        for (set, prompt) in prompts() {
            let s = sets.iter().position(|&x| x == set).expect("known set");
            let p = target.chat_prompt(&[ChatMessage::new("user", &prompt)])?;
            let mut texts = Vec::new();
            let predicted = (set == "code").then(|| target.tokenizer.encode(CODE, SpecialMode::None));
            let runs = engines.iter().map(|e| (e, Vec::new()));
            // The prediction on top of n-gram drafts (the server's default speculation).
            let runs = runs.chain(predicted.map(|pred| (&engines[1], pred)));
            for (m, (e, prediction)) in runs.enumerate() {
                let before = (
                    e.stats.spec_proposed.load(Relaxed),
                    e.stats.spec_accepted.load(Relaxed),
                    e.stats.spec_verifications.load(Relaxed),
                );
                let req = GenRequest {
                    prediction,
                    ..GenRequest::new(p.clone(), greedy.clone(), a.n_gen)
                };
                let (text, n, secs) = generate(e, req)?;
                let t = &mut tally[s][if m < modes.len() { m } else { 3 }];
                t.tokens += n.saturating_sub(1);
                t.secs += secs;
                t.proposed += e.stats.spec_proposed.load(Relaxed) - before.0;
                t.accepted += e.stats.spec_accepted.load(Relaxed) - before.1;
                t.verifications += e.stats.spec_verifications.load(Relaxed) - before.2;
                texts.push(text);
            }
            if texts.iter().any(|t| t != &texts[0]) {
                bail!("speculation changed the greedy output of a {set} prompt (round {rep}): {texts:#?}");
            }
            if !a.json {
                eprintln!("round {} · {set} prompt done", rep + 1);
            }
        }
    }

    let name = |m: SpecMode| match m {
        SpecMode::Off => "plain",
        SpecMode::NGram => "ngram",
        SpecMode::Draft => "draft model",
    };
    let mut rows = Vec::new();
    for (s, set) in sets.iter().enumerate() {
        let plain = tally[s][0].tokens as f64 / tally[s][0].secs.max(1e-9);
        let columns = modes.iter().map(|&m| name(m)).enumerate();
        let columns = columns.chain((*set == "code").then_some((3, "prediction")));
        for (m, mode) in columns {
            let t = tally[s][m];
            let rate = t.tokens as f64 / t.secs.max(1e-9);
            rows.push(json!({
                "prompts": set, "mode": mode, "decode_tok_s": rate, "speedup": rate / plain,
                "draft_proposed": t.proposed, "draft_accepted": t.accepted,
                "acceptance": if t.proposed > 0 { t.accepted as f64 / t.proposed as f64 } else { 0.0 },
                "verifications": t.verifications,
            }));
        }
    }
    if a.json {
        let out = json!({"model": a.model, "draft": a.draft, "n_gen": a.n_gen, "repetitions": a.reps,
                         "max_draft": a.max_draft, "forced": a.forced, "results": rows,
                         "cpu": tandem_kernels::dispatch::cpu_features()});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "target {} · draft {} · greedy, one sequence, {} tokens per prompt, {} round(s), max draft {}{}",
        a.model,
        a.draft,
        a.n_gen,
        a.reps,
        a.max_draft,
        if a.forced { " (forced)" } else { " (adaptive)" }
    );
    println!("| prompts | mode | decode tok/s | speedup | drafts accepted | verify steps |");
    println!("|---|---|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {:.2} | {:.2}× | {} / {} ({:.0}%) | {} |",
            r["prompts"].as_str().unwrap_or(""),
            r["mode"].as_str().unwrap_or(""),
            r["decode_tok_s"].as_f64().unwrap_or(0.0),
            r["speedup"].as_f64().unwrap_or(0.0),
            r["draft_accepted"],
            r["draft_proposed"],
            100.0 * r["acceptance"].as_f64().unwrap_or(0.0),
            r["verifications"],
        );
    }
    Ok(())
}
