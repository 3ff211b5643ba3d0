//! `tandem eval mc --suite understanding|multilingual`: multiple-choice accuracy by log-likelihood
//! over the committed BIG-bench samples. Results go to a JSONL file, one line per item, so a run
//! that stops resumes where it was.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use tandem_engine::{LoadedModel, Scorer};
use tandem_eval::mc::{self, Item, ItemResult};
use tandem_text::SpecialMode;

use crate::{Home, ModelArg};

#[derive(Args)]
pub struct McArgs {
    #[command(flatten)]
    model: ModelArg,
    /// understanding or multilingual.
    #[arg(long)]
    suite: String,
    /// Only this task's items (e.g. date_understanding).
    #[arg(long)]
    task: Option<String>,
    /// The first N items (after --task).
    #[arg(long)]
    limit: Option<usize>,
    /// Results file (default: $TANDEM_HOME/eval/mc-SUITE-MODEL.jsonl); scored items are kept.
    #[arg(long)]
    results: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long, short)]
    threads: Option<usize>,
    #[arg(long)]
    json: bool,
}

/// The default results file of a suite and model.
pub fn results_path(home: &Home, suite: &str, model: &str) -> PathBuf {
    home.0
        .join("eval")
        .join(format!("mc-{suite}-{}.jsonl", crate::results::key(model)))
}

/// Scores each choice of `item`: log p(choice | context) with lm-eval's whitespace split.
fn score_item(lm: &LoadedModel, scorer: &mut Scorer, item: &Item) -> Result<ItemResult> {
    let tok = |s: &str| lm.tokenizer.encode(s, SpecialMode::None);
    let (mut logprobs, mut bytes) = (Vec::new(), Vec::new());
    for choice in &item.choices {
        let (context, cont) = mc::request(&item.context, choice);
        let s = scorer.score(&tok(&context), &tok(&cont))?;
        logprobs.push(s.logprob);
        bytes.push(cont.len());
    }
    Ok(ItemResult {
        id: item.id.clone(),
        task: item.task.clone(),
        logprobs,
        bytes,
        answer: item.answer,
    })
}

pub fn eval_mc(home: &Home, a: McArgs) -> Result<()> {
    crate::commands::set_threads(a.threads)?;
    let mut items = mc::suite(&a.suite).map_err(anyhow::Error::msg)?;
    if let Some(t) = &a.task {
        items.retain(|i| &i.task == t);
        if items.is_empty() {
            bail!("--task {t:?}: no such task in suite {}", a.suite);
        }
    }
    if let Some(n) = a.limit {
        items.truncate(n);
    }
    let path = a
        .results
        .clone()
        .unwrap_or_else(|| results_path(home, &a.suite, &a.model.model));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut done: HashMap<String, ItemResult> = HashMap::new();
    if let Ok(f) = std::fs::File::open(&path) {
        for line in std::io::BufReader::new(f).lines() {
            if let Ok(r) = serde_json::from_str::<ItemResult>(&line?) {
                done.insert(r.id.clone(), r);
            }
        }
    }
    let todo: Vec<&Item> = items.iter().filter(|i| !done.contains_key(&i.id)).collect();
    if !todo.is_empty() {
        let lm = LoadedModel::load(home.resolve_model(&a.model.model)?)?;
        let mut scorer = Scorer::new(&lm, 2048);
        let bar = indicatif::ProgressBar::new(items.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "{} [{{bar:40}}] {{pos}}/{{len}} {{msg}} eta {{eta}}",
                a.suite
            ))
            .expect("template"),
        );
        bar.set_position((items.len() - todo.len()) as u64);
        if a.json {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let mut out = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        for item in todo {
            let r = score_item(&lm, &mut scorer, item)?;
            writeln!(out, "{}", serde_json::to_string(&r)?)?;
            out.flush()?;
            done.insert(r.id.clone(), r);
            let (acc, _) = mc::summarise(items.iter().filter_map(|i| done.get(&i.id)));
            bar.set_message(format!("acc {:.1}%", acc.acc() * 100.0));
            bar.inc(1);
        }
        bar.finish();
    }
    let results: Vec<&ItemResult> = items.iter().filter_map(|i| done.get(&i.id)).collect();
    let (all, by_task) = mc::summarise(results.iter().copied());
    let (acc, acc_norm) = mc::macro_average(&by_task);
    let chance = mc::chance(&items);
    if a.json {
        let tasks: serde_json::Map<String, serde_json::Value> = by_task
            .iter()
            .map(|(t, x)| (t.clone(), json!({"n": x.n, "acc": x.acc(), "acc_norm": x.acc_norm()})))
            .collect();
        println!(
            "{}",
            json!({"model": a.model.model, "suite": a.suite, "n": all.n, "acc": acc, "acc_norm": acc_norm, "chance": chance,
                   "tasks": tasks, "results_file": path})
        );
    } else {
        println!("{:<40} {:>5} {:>8} {:>9}", "task", "n", "acc", "acc_norm");
        for (t, x) in &by_task {
            println!(
                "{t:<40} {:>5} {:>7.1}% {:>8.1}%",
                x.n,
                x.acc() * 100.0,
                x.acc_norm() * 100.0
            );
        }
        println!(
            "{} accuracy (mean over tasks), {}: {:.1}% (per byte {:.1}%; guessing {:.1}%), {} items   (results: {})",
            a.suite,
            a.model.model,
            acc * 100.0,
            acc_norm * 100.0,
            chance * 100.0,
            all.n,
            path.display()
        );
    }
    Ok(())
}
