//! `tandem eval bfcl`: function-calling accuracy on the Berkeley Function Calling Leaderboard's
//! single-turn categories, asked of any OpenAI-compatible server over HTTP (tandem, llama-server)
//! with the same converted tools, so configurations compare on identical requests.
//!
//! The data come from the PyPI package `bfcl-eval` 2026.3.23 (fetched once, without its
//! dependencies, into `$TANDEM_HOME/eval`); a fixed sample of each category (evenly spaced) is
//! asked greedily; each answer is scored by the AST checker (`tandem_eval::bfcl`) and appended to
//! a JSONL file per configuration, so a run that stops resumes where it was. `--report` prints
//! the table of several configurations with 95% Wilson intervals.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tandem_eval::bfcl::{self, Item, Output};

use crate::Home;

const PACKAGE: &str = "bfcl-eval==2026.3.23";
const WHEEL: &str = "bfcl_eval-2026.3.23-py3-none-any.whl";

#[derive(Args)]
pub struct BfclArgs {
    /// The server's OpenAI base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080/v1")]
    url: String,
    /// The model name sent in each request.
    #[arg(long, default_value = "mini")]
    model: String,
    /// This configuration's name: its results file and its row in reports.
    #[arg(long, default_value = "tandem-mini")]
    label: String,
    #[arg(long, env = "TANDEM_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Categories (comma-separated): simple, multiple, parallel, parallel_multiple, irrelevance;
    /// and the false-call sets no_call_code (HumanEval) and no_call_json, where any call is wrong.
    #[arg(long, default_value = "simple,multiple,parallel,parallel_multiple,irrelevance")]
    categories: String,
    /// Items per category (a fixed, evenly spaced sample).
    #[arg(long, default_value_t = 100)]
    per_category: usize,
    /// `tool_choice` sent: auto (the realistic setting) or required.
    #[arg(long, default_value = "auto")]
    tool_choice: String,
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 2)]
    parallel: usize,
    /// Results directory (default: $TANDEM_HOME/eval/bfcl); one `LABEL.jsonl` per configuration.
    #[arg(long)]
    results: Option<PathBuf>,
    /// Print the table of these configurations (comma-separated labels) instead of running.
    #[arg(long)]
    report: Option<String>,
    #[arg(long)]
    json: bool,
}

/// The sampled items of the categories, from the pinned wheel (downloaded on first use).
pub(crate) fn items(dir: &Path, categories: &[&str], per_category: usize) -> Result<Vec<Item>> {
    let mut z = crate::eval_cmd::eval_wheel(dir, PACKAGE, WHEEL)?;
    let mut read = |name: &str| -> Result<String> {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut z.by_name(name)?, &mut s)?;
        Ok(s)
    };
    let mut all = Vec::new();
    for c in categories {
        if let Some(prompts) = no_call_prompts(dir, c, per_category)? {
            let pool = bfcl::load("simple", &read("bfcl_eval/data/BFCL_v4_simple_python.json")?, None)
                .map_err(anyhow::Error::msg)?;
            all.extend(bfcl::no_call_items(c, &prompts, &pool));
            continue;
        }
        let Some((_, stem)) = bfcl::CATEGORIES.iter().find(|(n, _)| n == c) else {
            let names: Vec<&str> = bfcl::CATEGORIES.iter().map(|(n, _)| *n).collect();
            bail!("unknown category {c:?} (one of {})", names.join(", "));
        };
        let questions = read(&format!("bfcl_eval/data/{stem}.json"))?;
        let answers = match *c {
            "irrelevance" => None,
            _ => Some(read(&format!("bfcl_eval/data/possible_answer/{stem}.json"))?),
        };
        let loaded = bfcl::load(c, &questions, answers.as_deref()).map_err(anyhow::Error::msg)?;
        all.extend(bfcl::sample(&loaded, per_category));
    }
    Ok(all)
}

/// The prompts of the false-call categories: `no_call_code` (HumanEval's instructions) and
/// `no_call_json` (requests for JSON); `None` for BFCL's own categories.
fn no_call_prompts(dir: &Path, category: &str, n: usize) -> Result<Option<Vec<String>>> {
    let prompts: Vec<String> = match category {
        "no_call_code" => crate::eval_cmd::problems(dir)?
            .iter()
            .map(tandem_eval::humaneval::instruction)
            .collect(),
        "no_call_json" => bfcl::json_requests(),
        _ => return Ok(None),
    };
    Ok(Some(prompts.into_iter().take(n).collect()))
}

/// One answer as stored in the results file.
fn record(item: &Item, reply: &Value, ms: u128) -> Value {
    let choice = &reply["choices"][0];
    let calls: Vec<(String, String)> = choice["message"]["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let f = &c["function"];
            let name = f["name"].as_str().unwrap_or_default().to_string();
            (name, f["arguments"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    let content = choice["message"]["content"].as_str().unwrap_or_default().to_string();
    let out = if calls.is_empty() {
        Output::Text(content.clone())
    } else {
        Output::Calls(calls.clone())
    };
    let checked = bfcl::check(item, &out);
    json!({"id": item.id, "category": item.category, "valid": checked.valid, "error": checked.error,
           "calls": calls, "content": content, "finish_reason": choice["finish_reason"],
           "prompt_tokens": reply["usage"]["prompt_tokens"], "completion_tokens": reply["usage"]["completion_tokens"],
           "ms": ms})
}

async fn ask(client: &reqwest::Client, a: &BfclArgs, item: &Item) -> Result<Value> {
    let body = json!({"model": a.model, "messages": item.messages, "tools": bfcl::tools(&item.functions),
                      "tool_choice": a.tool_choice, "parallel_tool_calls": true, "temperature": 0,
                      "max_tokens": a.max_tokens});
    let url = format!("{}/chat/completions", a.url.trim_end_matches('/'));
    let mut req = client.post(&url).json(&body);
    if let Some(k) = &a.api_key {
        req = req.bearer_auth(k);
    }
    let t = Instant::now();
    let resp = req.send().await.with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let reply: Value = resp
        .json()
        .await
        .with_context(|| format!("{}: the reply is not JSON", item.id))?;
    if !status.is_success() {
        // A refused request (a schema the server cannot take) scores as a failed answer, with why.
        let why = reply["error"]["message"].as_str().unwrap_or("error").to_string();
        return Ok(json!({"id": item.id, "category": item.category, "valid": false,
                         "error": format!("http {status}: {why}"), "calls": [], "content": "", "ms": t.elapsed().as_millis()}));
    }
    Ok(record(item, &reply, t.elapsed().as_millis()))
}

fn results_dir(home: &Home, a: &BfclArgs) -> PathBuf {
    a.results.clone().unwrap_or_else(|| home.0.join("eval").join("bfcl"))
}

pub(crate) fn stored(path: &Path) -> Result<HashMap<String, Value>> {
    let mut done = HashMap::new();
    if let Ok(f) = std::fs::File::open(path) {
        for line in std::io::BufReader::new(f).lines() {
            let v: Value = serde_json::from_str(&line?)?;
            if let Some(id) = v["id"].as_str() {
                done.insert(id.to_string(), v);
            }
        }
    }
    Ok(done)
}

pub fn eval_bfcl(home: &Home, a: BfclArgs) -> Result<()> {
    let categories: Vec<&str> = a.categories.split(',').map(str::trim).collect();
    let all = items(&home.0.join("eval"), &categories, a.per_category)?;
    let dir = results_dir(home, &a);
    std::fs::create_dir_all(&dir)?;
    if let Some(labels) = &a.report {
        return report(&dir, labels, &all, a.json);
    }
    let path = dir.join(format!("{}.jsonl", a.label));
    let done = stored(&path)?;
    let todo: Vec<&Item> = all.iter().filter(|i| !done.contains_key(&i.id)).collect();
    let bar = crate::eval_cmd::progress(all.len(), done.len(), &format!("bfcl {}", a.label), false);
    let mut out = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(600))
            .build()?;
        let mut answers =
            futures_util::stream::iter(todo.iter().map(|i| ask(&client, &a, i))).buffer_unordered(a.parallel.max(1));
        while let Some(r) = answers.next().await {
            writeln!(out, "{}", r?)?;
            out.flush()?;
            bar.inc(1);
        }
        anyhow::Ok(())
    })?;
    bar.finish();
    report(&dir, &a.label, &all, a.json)
}

/// Accuracy per category and configuration, with 95% Wilson intervals; also the answers cut by
/// max_tokens (runaways) and, for irrelevance, the calls made where none fits.
fn report(dir: &Path, labels: &str, items: &[Item], as_json: bool) -> Result<()> {
    let mut categories: Vec<&str> = items.iter().map(|i| i.category.as_str()).collect();
    categories.dedup();
    let mut rows = Vec::new();
    for label in labels.split(',').map(str::trim) {
        let done = stored(&dir.join(format!("{label}.jsonl")))?;
        let mut cells = Vec::new();
        for c in &categories {
            let results: Vec<&Value> = items
                .iter()
                .filter(|i| i.category == *c)
                .filter_map(|i| done.get(&i.id))
                .collect();
            let k = results.iter().filter(|r| r["valid"] == true).count();
            let cut = results.iter().filter(|r| r["finish_reason"] == "length").count();
            let (lo, hi) = bfcl::wilson(k, results.len());
            cells.push(json!({"category": c, "n": results.len(), "valid": k, "accuracy": k as f64 / results.len().max(1) as f64,
                              "ci95": [lo, hi], "cut_by_max_tokens": cut}));
        }
        rows.push(json!({"label": label, "categories": cells}));
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    print!("{:<28}", "configuration");
    for c in &categories {
        print!(" {c:>22}");
    }
    println!();
    for r in &rows {
        print!("{:<28}", r["label"].as_str().unwrap_or_default());
        for c in r["categories"].as_array().into_iter().flatten() {
            let (acc, lo, hi) = (
                c["accuracy"].as_f64().unwrap_or(0.0),
                c["ci95"][0].as_f64().unwrap_or(0.0),
                c["ci95"][1].as_f64().unwrap_or(0.0),
            );
            let cell = format!("{:.0}% [{:.0}–{:.0}] n{}", acc * 100.0, lo * 100.0, hi * 100.0, c["n"]);
            print!(" {cell:>22}");
        }
        println!();
        let cut: u64 = r["categories"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["cut_by_max_tokens"].as_u64())
            .sum();
        if cut > 0 {
            println!("{:<28} ({cut} answers cut by max_tokens)", "");
        }
    }
    Ok(())
}
