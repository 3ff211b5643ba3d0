//! `tandem eval qa`: the committed short-answer items (`tandem_eval::qa`), answered greedily by one
//! model in this process and scored by their final answer. Results go to a JSONL file, one line
//! per item, so a run that stops resumes where it was.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use tandem_engine::{EngineConfig, EngineHandle, Event, GenRequest, LoadedModel, SamplingParams};
use tandem_eval::qa::{self, Item, Scored};
use tandem_text::ChatMessage;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::{Home, ModelArg};

#[derive(Args)]
pub struct QaArgs {
    #[command(flatten)]
    model: ModelArg,
    /// The first N items.
    #[arg(long)]
    limit: Option<usize>,
    /// Results file (default: $TANDEM_HOME/eval/qa-MODEL.jsonl); scored items are kept.
    #[arg(long)]
    results: Option<PathBuf>,
    /// Questions answered at once.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    #[arg(long, default_value_t = 384)]
    max_tokens: usize,
    #[arg(long)]
    json: bool,
}

/// The default results file of a model.
pub fn results_path(home: &Home, model: &str) -> PathBuf {
    home.0
        .join("eval")
        .join(format!("qa-{}.jsonl", crate::results::key(model)))
}

/// Stored results by item id, scored again from their replies (the scoring may have changed
/// since they were written; the replies do not).
pub fn read_results(path: &PathBuf) -> Result<HashMap<String, Scored>> {
    let items: HashMap<String, Item> = qa::items().into_iter().map(|i| (i.id.clone(), i)).collect();
    let mut done = HashMap::new();
    if let Ok(f) = std::fs::File::open(path) {
        for line in std::io::BufReader::new(f).lines() {
            let Ok(s) = serde_json::from_str::<Scored>(&line?) else {
                continue;
            };
            if let Some(item) = items.get(&s.id) {
                done.insert(
                    s.id.clone(),
                    qa::score(item, s.reply, s.prompt_tokens, s.completion_tokens),
                );
            }
        }
    }
    Ok(done)
}

fn submit(engine: &EngineHandle, lm: &LoadedModel, item: &Item, max_tokens: usize) -> Result<(usize, Receiver)> {
    let prompt = lm.chat_prompt(&[ChatMessage::new("user", &qa::instruction(item))])?;
    let greedy = SamplingParams {
        temperature: 0.0,
        ..SamplingParams::default()
    };
    let n = prompt.len();
    Ok((n, engine.submit(GenRequest::new(prompt, greedy, max_tokens))?))
}

type Receiver = UnboundedReceiver<Event>;

/// The whole reply and its completion tokens.
fn collect(id: &str, rx: &mut Receiver) -> Result<(String, usize)> {
    let mut text = String::new();
    loop {
        match rx.blocking_recv() {
            Some(Event::Token { text: t, .. }) => text.push_str(&t),
            Some(Event::Finished { completion_tokens, .. }) => return Ok((text, completion_tokens)),
            Some(Event::Prefilled { .. }) => {}
            Some(other) => bail!("{id}: generation failed: {other:?}"),
            None => bail!("the engine stopped"),
        }
    }
}

pub fn eval_qa(home: &Home, a: QaArgs) -> Result<()> {
    let mut items = qa::items();
    if let Some(n) = a.limit {
        items.truncate(n);
    }
    let path = a.results.clone().unwrap_or_else(|| results_path(home, &a.model.model));
    let mut done = read_results(&path)?;
    let todo: Vec<&Item> = items.iter().filter(|i| !done.contains_key(&i.id)).collect();
    if !todo.is_empty() {
        let lm = Arc::new(LoadedModel::load(&home.resolve_model(&a.model.model)?)?);
        let cfg = EngineConfig {
            queue_timeout: Duration::from_secs(7 * 24 * 3600),
            max_queue: todo.len() + 1,
            ..EngineConfig::new(a.parallel.max(1), 2048)
        };
        let engine = EngineHandle::spawn(lm.clone(), cfg);
        // Everything is queued at once; the engine runs `parallel` at a time, and results are
        // written in item order as they complete.
        let mut pending = Vec::new();
        for item in &todo {
            pending.push((*item, submit(&engine, &lm, item, a.max_tokens)?));
        }
        let bar = crate::eval_cmd::progress(items.len(), done.len(), "qa", a.json);
        let mut out = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        for (item, (prompt_tokens, mut rx)) in pending {
            let (reply, completion_tokens) = collect(&item.id, &mut rx)?;
            let s = qa::score(item, reply, prompt_tokens, completion_tokens);
            writeln!(out, "{}", serde_json::to_string(&s)?)?;
            out.flush()?;
            done.insert(s.id.clone(), s);
            let passed = done.values().filter(|s| s.passed).count();
            bar.set_message(format!("{passed}/{} passed", done.len()));
            bar.inc(1);
        }
        bar.finish();
    }
    report(&a, &items, &done)
}

fn report(a: &QaArgs, items: &[Item], done: &HashMap<String, Scored>) -> Result<()> {
    let mut by_source: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for item in items {
        if let Some(s) = done.get(&item.id) {
            let e = by_source.entry(item.source.as_str()).or_default();
            e.0 += s.passed as usize;
            e.1 += 1;
        }
    }
    let (k, n) = by_source.values().fold((0, 0), |(k, n), (a, b)| (k + a, n + b));
    let (lo, hi) = tandem_eval::bfcl::wilson(k, n);
    if a.json {
        let sources: BTreeMap<_, _> = by_source
            .iter()
            .map(|(s, (k, n))| (*s, json!({"passed": k, "n": n})))
            .collect();
        let out = json!({"model": a.model.model, "passed": k, "n": n, "accuracy": k as f64 / n.max(1) as f64,
                         "ci95": [lo, hi], "sources": sources});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("| {} | passed | n |", a.model.model);
    println!("|---|---:|---:|");
    for (s, (k, n)) in &by_source {
        println!("| {s} | {k} | {n} |");
    }
    println!(
        "| all | {:.1}% [{:.1}–{:.1}] | {n} |",
        100.0 * k as f64 / n.max(1) as f64,
        100.0 * lo,
        100.0 * hi
    );
    Ok(())
}
