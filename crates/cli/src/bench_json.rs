//! `tandem bench json`: what a JSON-schema constraint costs decode. Each round generates a JSON
//! answer under a schema (greedy, one sequence, the server's scheduler), then the same number of
//! tokens for the same prompt without a constraint (end-of-generation banned so it runs the same
//! length), and compares decode speed — first token to last, so prefill is left out.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use tandem_engine::{EngineConfig, EngineHandle, Event, GenRequest, Grammar, LoadedModel, SamplingParams};
use tandem_text::ChatMessage;

use crate::{Home, ModelArg};

#[derive(Args)]
pub struct BenchJsonArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Rounds over the schemas.
    #[arg(short = 'r', long = "repetitions", default_value_t = 3)]
    reps: usize,
    #[arg(long)]
    json: bool,
}

/// Prompts and schemas of the kind structured-output users send.
fn cases() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "Describe a fictional employee as JSON.",
            json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                   "skills": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
                   "manager": {"type": ["string", "null"]}}, "required": ["name", "age", "skills", "manager"]}),
        ),
        (
            "List the planets of the solar system with their order from the sun, as JSON.",
            json!({"type": "object", "properties": {"planets": {"type": "array", "items": {"type": "object",
                   "properties": {"name": {"type": "string"}, "order": {"type": "integer", "minimum": 1}},
                   "required": ["name", "order"]}}}, "required": ["planets"]}),
        ),
        (
            "Write a short product review as JSON.",
            json!({"type": "object", "properties": {"product": {"type": "string"}, "rating": {"enum": [1, 2, 3, 4, 5]},
                   "review": {"type": "string"}, "recommended": {"type": "boolean"}},
                   "required": ["product", "rating", "review", "recommended"]}),
        ),
    ]
}

/// Runs one request; returns (tokens, seconds from the first token to the last).
fn generate(engine: &EngineHandle, req: GenRequest) -> Result<(usize, f64)> {
    let mut rx = engine.submit(req)?;
    let (mut first, mut last, mut n) = (None, Instant::now(), 0);
    loop {
        match rx.blocking_recv() {
            Some(Event::Token { .. }) => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
            }
            Some(Event::Finished { completion_tokens, .. }) => {
                n = n.max(completion_tokens);
                break;
            }
            Some(Event::Prefilled { .. }) => {}
            Some(other) => bail!("generation failed: {other:?}"),
            None => bail!("the engine stopped"),
        }
    }
    Ok((n, first.map(|f| (last - f).as_secs_f64()).unwrap_or(0.0)))
}

pub fn bench_json(home: &Home, a: BenchJsonArgs) -> Result<()> {
    let path = home.resolve_model(&a.model.model)?;
    let lm = Arc::new(LoadedModel::load(&path)?);
    let engine = EngineHandle::spawn(lm.clone(), EngineConfig::new(1, 1024));
    let ban: Vec<(u32, f32)> = lm.tokenizer.eog.iter().map(|&t| (t, -100.0)).collect();
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let (ns0, masks0) = lm.grammar_stats();
    let mut tokens = 0;
    for _ in 0..a.reps {
        for (prompt, schema) in cases() {
            let msgs = [ChatMessage::new("user", prompt)];
            let p = lm.chat_prompt(&msgs)?;
            let greedy = SamplingParams {
                temperature: 0.0,
                ..SamplingParams::default()
            };
            let base = GenRequest {
                grammar: Some(Grammar::json_schema(schema)),
                ..GenRequest::new(p, greedy, 300)
            };
            let (n, secs) = generate(&engine, base.clone())?;
            if n < 3 {
                continue;
            }
            tokens += n;
            with.push((n - 1) as f64 / secs);
            let free = GenRequest {
                grammar: None,
                max_tokens: n,
                params: SamplingParams {
                    temperature: 0.0,
                    logit_bias: ban.clone(),
                    ..SamplingParams::default()
                },
                ..base
            };
            let (m, secs) = generate(&engine, free)?;
            without.push((m - 1) as f64 / secs);
        }
    }
    if with.is_empty() {
        bail!("no constrained answer was long enough to time");
    }
    let (ns1, masks1) = lm.grammar_stats();
    let mask_ms = (ns1 - ns0) as f64 / 1e6 / (masks1 - masks0).max(1) as f64;
    let (w, wo) = (crate::bench::median(&mut with), crate::bench::median(&mut without));
    let overhead = (wo / w - 1.0) * 100.0;
    if a.json {
        println!(
            "{}",
            json!({"model": a.model.model, "runs": with.len(), "tokens_constrained": tokens,
                   "decode_tok_s_unconstrained": wo, "decode_tok_s_json_schema": w,
                   "overhead_percent": overhead, "mask_ms_per_token": mask_ms})
        );
    } else {
        println!(
            "model {} · {} runs ({} constrained tokens), greedy, one sequence",
            a.model.model,
            with.len(),
            tokens
        );
        println!("decode, no constraint    {wo:>7.1} tok/s (median)");
        println!("decode, JSON schema      {w:>7.1} tok/s (median)  → {overhead:+.1}% time per token");
        println!("token mask               {mask_ms:>7.3} ms per token");
    }
    Ok(())
}
