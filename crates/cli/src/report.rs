//! `tandem report`: the comparison table of the tiers, measured on this machine. Every cell comes
//! from a file under `$TANDEM_HOME` (or the model file itself) and names it with the command that
//! made it; a missing cell says which command produces it. Nothing is measured here.

use std::collections::HashSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};
use tandem_eval::mc;

use crate::tiers::{Tier, TIERS};
use crate::{results, Home};

#[derive(Args)]
pub struct ReportArgs {
    /// Settings file whose [prices.TIER] apply (default: ./tandem.toml if present).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

/// One cell: what it shows, the raw value, and where it came from (or how to produce it).
struct Cell {
    text: Option<String>,
    value: Value,
    source: String,
    command: String,
    date: Option<String>,
}

impl Cell {
    fn missing(command: String) -> Self {
        Self {
            text: None,
            value: Value::Null,
            source: String::new(),
            command,
            date: None,
        }
    }
    fn found(text: String, value: Value, source: impl Into<String>, command: impl Into<String>) -> Self {
        Self {
            text: Some(text),
            value,
            source: source.into(),
            command: command.into(),
            date: None,
        }
    }
    fn json(&self) -> Value {
        json!({"value": self.value, "text": self.text, "source": self.source, "command": self.command,
               "date": self.date})
    }
}

/// The rows of the table: (key, label).
const ROWS: [(&str, &str); 14] = [
    ("model", "model"),
    ("parameters", "parameters"),
    ("file_size", "file size"),
    ("context_window", "context window (tokens)"),
    ("prefill_tok_s", "prefill tok/s (1 stream)"),
    ("decode_tok_s", "decode tok/s (1 stream)"),
    ("ttft_ms", "time to first token"),
    ("humaneval", "HumanEval pass@1"),
    ("understanding", "language understanding (BIG-bench MC)"),
    ("multilingual", "multilingual (BIG-bench MC)"),
    ("multimodal", "multimodal reasoning"),
    ("safety", "attack success / benign refused, guards on (and off)"),
    ("price", "price per 1M tokens (in / cached / out)"),
    ("peak_memory", "peak memory (RSS)"),
];

fn mib(bytes: f64) -> String {
    format!("{:.0} MiB", bytes / (1u64 << 20) as f64)
}

/// A saved `results/NAME.json` as a cell built from its `data`.
fn from_saved(home: &Home, name: &str, make: impl FnOnce(&Value) -> Option<(String, Value)>, redo: String) -> Cell {
    let Some((path, doc)) = results::load(home, name) else {
        return Cell::missing(redo);
    };
    match make(&doc["data"]) {
        Some((text, value)) => Cell {
            date: doc["date"].as_str().map(String::from),
            ..Cell::found(
                text,
                value,
                path.display().to_string(),
                doc["command"].as_str().unwrap_or(&redo),
            )
        },
        None => Cell::missing(redo),
    }
}

/// The llama-bench-style rows of `tandem bench`: the test at depth 0 with the most tokens.
fn bench_row(data: &Value, prompt: bool) -> Option<&Value> {
    data.as_array()?
        .iter()
        .filter(|r| r["n_depth"].as_u64() == Some(0))
        .filter(|r| (r["n_prompt"].as_u64().unwrap_or(0) > 0) == prompt)
        .max_by_key(|r| r["n_prompt"].as_u64().unwrap_or(0) + r["n_gen"].as_u64().unwrap_or(0))
}

fn jsonl(path: &Path) -> Vec<Value> {
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    std::io::BufReader::new(f)
        .lines()
        .map_while(|l| l.ok())
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

fn file_date(path: &Path) -> Option<String> {
    let t = std::fs::metadata(path).ok()?.modified().ok()?;
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(tandem_store::utc_date(secs))
}

fn humaneval_cell(home: &Home, tier: &Tier) -> Cell {
    let path = crate::eval_cmd::humaneval_results_path(home, tier.name);
    let redo = format!("tandem eval humaneval --model {}", tier.name);
    let mut seen = HashSet::new();
    let rows: Vec<Value> = jsonl(&path)
        .into_iter()
        .filter(|r| r["task_id"].as_str().is_some_and(|t| seen.insert(t.to_string())))
        .collect();
    if rows.is_empty() {
        return Cell::missing(redo);
    }
    let passed = rows.iter().filter(|r| r["passed"].as_bool() == Some(true)).count();
    let n = rows.len();
    let of = if n < 164 {
        format!(", {n} of 164 problems")
    } else {
        String::new()
    };
    Cell {
        date: file_date(&path),
        ..Cell::found(
            format!("{:.1}% ({passed}/{n}{of})", 100.0 * passed as f64 / n as f64),
            json!({"pass_at_1": passed as f64 / n as f64, "passed": passed, "n": n}),
            path.display().to_string(),
            redo,
        )
    }
}

fn mc_cell(home: &Home, tier: &Tier, suite: &str) -> Cell {
    let path = crate::eval_mc::results_path(home, suite, tier.name);
    let redo = format!("tandem eval mc --suite {suite} --model {}", tier.name);
    let Ok(items) = mc::suite(suite) else {
        return Cell::missing(redo);
    };
    let ids: HashSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let mut seen = HashSet::new();
    let rows: Vec<mc::ItemResult> = jsonl(&path)
        .into_iter()
        .filter_map(|v| serde_json::from_value::<mc::ItemResult>(v).ok())
        .filter(|r| ids.contains(r.id.as_str()) && seen.insert(r.id.clone()))
        .collect();
    if rows.is_empty() {
        return Cell::missing(redo);
    }
    let (all, by_task) = mc::summarise(&rows);
    let (acc, acc_norm) = mc::macro_average(&by_task);
    let of = if all.n < items.len() {
        format!(", {} of {} items", all.n, items.len())
    } else {
        String::new()
    };
    Cell {
        date: file_date(&path),
        ..Cell::found(
            format!(
                "{:.1}% ({} tasks{of}; guessing {:.1}%)",
                acc * 100.0,
                by_task.len(),
                mc::chance(&items) * 100.0
            ),
            json!({"acc": acc, "acc_norm": acc_norm, "n": all.n, "tasks": by_task.len(), "chance": mc::chance(&items)}),
            path.display().to_string(),
            redo,
        )
    }
}

/// The cells of one tier, in ROWS order.
/// The tier's rates from the last full `tandem eval safety`: guards on, and off beside them.
fn safety_cell(home: &Home, tier: &Tier) -> Cell {
    from_saved(
        home,
        "eval-safety",
        |d| {
            let rows = d["results"].as_array()?;
            let row = |guards: &str| rows.iter().find(|r| r["tier"] == tier.name && r["guards"] == guards);
            let rates = |r: &Value| Some((r["attack_success_rate"].as_f64()?, r["benign_refusal_rate"].as_f64()?));
            let on_row = row("on")?;
            let (on, off) = (rates(on_row)?, row("off").and_then(rates));
            // Of the benign prompts refused, those the guards stopped (the rest the model declined).
            let t = &on_row["tally"];
            let by_guards = t["guarded_benign"]
                .as_f64()
                .zip(t["benign"].as_f64())
                .map(|(g, n)| g / n.max(1.0));
            let pct = |x: f64| format!("{:.1}%", 100.0 * x);
            let mut text = format!("{} / {}", pct(on.0), pct(on.1));
            if let Some(g) = by_guards {
                text += &format!(" ({} by the guards)", pct(g));
            }
            if let Some(o) = off {
                text += &format!("; off: {} / {}", pct(o.0), pct(o.1));
            }
            let value = json!({"attack_success_rate": on.0, "benign_refusal_rate": on.1,
                               "benign_stopped_by_guards_rate": by_guards,
                               "guards_off": off.map(|o| json!({"attack_success_rate": o.0, "benign_refusal_rate": o.1}))});
            Some((text, value))
        },
        "tandem eval safety".into(),
    )
}

fn column(home: &Home, tier: &Tier, config: Option<&Path>) -> Vec<Cell> {
    let model_path = home.models().join(tier.file);
    let pull = format!("tandem pull {}", tier.name);
    let gguf = tandem_gguf::GgufFile::open(&model_path).ok();
    let model = Cell::found(tier.id.into(), json!(tier.id), "built in (tiers)", "");
    let (params, size, ctx) = match &gguf {
        Some(f) => {
            // Qwen2.5's small checkpoints tie the output matrix to the embedding; these files
            // carry it twice (own `output.weight`), so the model's parameters exclude the copy.
            let n_all: u64 = f.tensors().iter().map(|t| t.n_elements()).sum();
            let out = f.tensor("output.weight").map_or(0, |t| t.n_elements());
            let embd = f.tensor("token_embd.weight").map_or(0, |t| t.n_elements());
            let n = if out == embd { n_all - out } else { n_all };
            let ctx = tandem_model::Config::from_gguf(f)
                .map(|c| (c.ctx_train, c.full_context(tandem_model::RopeScaling::Auto)))
                .ok();
            let src = model_path.display().to_string();
            (
                Cell::found(
                    if n == n_all {
                        format!("{:.2} B", n as f64 / 1e9)
                    } else {
                        format!("{:.2} B (+{:.2} B output copy)", n as f64 / 1e9, out as f64 / 1e9)
                    },
                    json!(n),
                    &src,
                    &pull,
                ),
                Cell::found(mib(tier.bytes as f64), json!(tier.bytes), &src, &pull),
                match ctx {
                    // The served context, and where its recall, speed and memory at depth are measured.
                    Some((trained, full)) if full > trained => Cell::found(
                        format!("{full} (trained {trained}, YaRN past it; recall and speed: docs/long-context.md)"),
                        json!(full),
                        &src,
                        "tandem eval longctx",
                    ),
                    Some((trained, _)) => Cell::found(
                        format!("{trained} (docs/long-context.md)"),
                        json!(trained),
                        &src,
                        "tandem eval longctx",
                    ),
                    None => Cell::missing(pull.clone()),
                },
            )
        }
        None => (
            Cell::missing(pull.clone()),
            Cell::missing(pull.clone()),
            Cell::missing(pull.clone()),
        ),
    };
    let bench_cmd = format!("tandem bench -m {}", tier.name);
    let rate = |prompt: bool| {
        from_saved(
            home,
            &format!("bench-{}", tier.name),
            |d| {
                let r = bench_row(d, prompt)?;
                let ts = r["avg_ts"].as_f64()?;
                let test = if prompt {
                    format!("pp{}", r["n_prompt"])
                } else {
                    format!("tg{}", r["n_gen"])
                };
                Some((format!("{ts:.1} ({test}, {} threads)", r["n_threads"]), json!(ts)))
            },
            bench_cmd.clone(),
        )
    };
    let (prefill, decode) = (rate(true), rate(false));
    let ttft = from_saved(
        home,
        &format!("serve-{}", tier.name),
        |d| {
            let lvl = d["levels"]
                .as_array()?
                .iter()
                .min_by_key(|l| l["concurrency"].as_u64())?;
            let ms = lvl["ttft_p50_ms"].as_f64()?;
            Some((
                format!("{ms:.0} ms (p50, {} concurrent)", lvl["concurrency"]),
                json!(ms),
            ))
        },
        format!("tandem bench serve --model {} --concurrency 1", tier.name),
    );
    // Images reach the tiers as the perception stage's text, not through a vision encoder: say so,
    // and point at where that stage's accuracy is measured.
    let multimodal = Cell::found(
        "images via the perception stage (no vision encoder)".into(),
        Value::Null,
        "docs/vision.md",
        "python3 -m tools.easy_vqa_eval",
    );
    let price = match crate::serve::tier_prices(tier, config, &model_path) {
        Ok((i, c, o)) => Cell::found(
            format!("${i:.3} / ${c:.3} / ${o:.3}"),
            json!({"input": i, "cached_input": c, "output": o}),
            "built-in defaults from `tandem bench cost`, then tandem.toml [prices]",
            "tandem bench cost",
        ),
        Err(e) => Cell::missing(format!("fix the settings file: {e}")),
    };
    let memory = from_saved(
        home,
        &format!("bench-{}", tier.name),
        |d| {
            let peak = d.as_array()?.iter().filter_map(|r| r["max_rss_bytes"].as_u64()).max()?;
            Some((format!("{} (tandem bench)", mib(peak as f64)), json!(peak)))
        },
        bench_cmd.clone(),
    );
    vec![
        model,
        params,
        size,
        ctx,
        prefill,
        decode,
        ttft,
        humaneval_cell(home, tier),
        mc_cell(home, tier, "understanding"),
        mc_cell(home, tier, "multilingual"),
        multimodal,
        safety_cell(home, tier),
        price,
        memory,
    ]
}

fn hardware() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem = crate::sys::proc_kib("/proc/meminfo", "MemTotal").unwrap_or(0);
    format!(
        "{cpu}, {cores} threads, {:.1} GiB RAM, {}",
        mem as f64 / (1u64 << 30) as f64,
        tandem_kernels::cpu_features()
    )
}

/// The report as JSON: `{date, hardware, rows: [{key, label}], tiers: {TIER: {KEY: cell}}}`.
fn as_json(columns: &[(&Tier, Vec<Cell>)], date: &str, hw: &str) -> Value {
    let tiers: serde_json::Map<String, Value> = columns
        .iter()
        .map(|(t, cells)| {
            let m: serde_json::Map<String, Value> = ROWS
                .iter()
                .zip(cells)
                .map(|((k, _), c)| (k.to_string(), c.json()))
                .collect();
            (t.name.to_string(), Value::Object(m))
        })
        .collect();
    let rows: Vec<Value> = ROWS.iter().map(|(k, l)| json!({"key": k, "label": l})).collect();
    json!({"date": date, "hardware": hw, "rows": rows, "tiers": tiers})
}

/// What `GET /v1/report` answers: the same JSON as `tandem report --json`, built on each call.
pub fn json_for_server(home: &Home, config: Option<&Path>) -> Value {
    let columns: Vec<(&Tier, Vec<Cell>)> = TIERS.iter().map(|t| (t, column(home, t, config))).collect();
    as_json(&columns, &tandem_store::utc_date(results::now()), &hardware())
}

pub fn report(home: &Home, a: ReportArgs) -> Result<()> {
    let columns: Vec<(&Tier, Vec<Cell>)> = TIERS
        .iter()
        .map(|t| (t, column(home, t, a.config.as_deref())))
        .collect();
    let date = tandem_store::utc_date(results::now());
    let hw = hardware();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&as_json(&columns, &date, &hw))?);
        return Ok(());
    }
    println!("tandem report · {date} · {hw}\n");
    print!("| |");
    for (t, _) in &columns {
        print!(" {} |", t.name);
    }
    println!();
    println!("|---|{}", "---|".repeat(columns.len()));
    // Footnotes: each source or missing-cell command once, numbered in order of appearance.
    let mut notes: Vec<String> = Vec::new();
    let mut note = |s: String| -> usize {
        match notes.iter().position(|n| *n == s) {
            Some(i) => i + 1,
            None => {
                notes.push(s);
                notes.len()
            }
        }
    };
    for (r, (_, label)) in ROWS.iter().enumerate() {
        print!("| {label} |");
        for (_, cells) in &columns {
            let c = &cells[r];
            match &c.text {
                Some(text) if c.source.is_empty() || r == 0 => print!(" {text} |"),
                Some(text) => {
                    let when = c.date.as_deref().map(|d| format!(", {d}")).unwrap_or_default();
                    let how = if c.command.is_empty() {
                        String::new()
                    } else {
                        format!(" — `{}`", c.command)
                    };
                    print!(" {text} [{}] |", note(format!("{}{how}{when}", c.source)));
                }
                None => print!(" — [{}] |", note(format!("missing: run `{}`", c.command))),
            }
        }
        println!();
    }
    println!();
    for (i, n) in notes.iter().enumerate() {
        println!("[{}] {n}", i + 1);
    }
    Ok(())
}
