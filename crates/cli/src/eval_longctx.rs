//! `tandem eval longctx`: needles in real text (`tandem_eval::longctx`) asked of one model in this
//! process, a grid of lengths × depths × tasks, one request at a time (each prefills its whole
//! prompt). Results go to a JSONL file, a line per case, so a run that stops resumes; the report
//! is a table and an SVG heatmap beside the results.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use tandem_engine::{EngineConfig, EngineHandle, Event, GenRequest, LoadedModel, SamplingParams};
use tandem_eval::longctx::{self, Case, Scored};
use tandem_text::{ChatMessage, SpecialMode};

use crate::{Home, ModelArg};

#[derive(Args)]
pub struct LongctxArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Prompt lengths in tokens, comma-separated.
    #[arg(long, default_value = "8192,32768,65536,131072", value_delimiter = ',')]
    lengths: Vec<usize>,
    /// Where the (first) needle sits, 0..1, comma-separated.
    #[arg(long, default_value = "0.1,0.3,0.5,0.7,0.9", value_delimiter = ',')]
    depths: Vec<f64>,
    #[arg(long, default_value = "lookup,sum,multi,value", value_delimiter = ',')]
    tasks: Vec<String>,
    /// As `serve --rope-scaling` (auto: YaRN for the prompts past the trained context).
    #[arg(long, default_value = "auto")]
    rope_scaling: String,
    /// KV-cache element type: f16, f32, q8_0 or q4_0.
    #[arg(long, default_value = "f16")]
    kv_type: String,
    /// Directory of text files for the haystack (default: the Python standard library's sources).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Results file (default: $TANDEM_HOME/eval/longctx-MODEL-ROPE-KV.jsonl); done cases are kept.
    #[arg(long)]
    results: Option<PathBuf>,
    #[arg(long)]
    threads: Option<usize>,
}

/// The haystack's lines: the corpus's `.py` files in name order, split after each newline.
fn corpus_lines(dir: Option<&Path>) -> Result<Vec<String>> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => python_stdlib().context("no --corpus and no Python standard library found")?,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("--corpus {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
        .collect();
    files.sort();
    let mut lines = Vec::new();
    for f in files {
        let text = String::from_utf8_lossy(&std::fs::read(&f)?).into_owned();
        lines.extend(text.split_inclusive('\n').map(str::to_string));
    }
    if lines.len() < 100 {
        bail!("the corpus {} has too little text", dir.display());
    }
    Ok(lines)
}

fn python_stdlib() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("os.py").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn read_done(path: &Path) -> HashMap<String, Scored> {
    let Ok(f) = std::fs::File::open(path) else {
        return HashMap::new();
    };
    std::io::BufReader::new(f)
        .lines()
        .map_while(|l| l.ok())
        .filter_map(|l| serde_json::from_str::<Scored>(&l).ok())
        .map(|s| (s.id.clone(), s))
        .collect()
}

pub fn eval_longctx(home: &Home, a: LongctxArgs) -> Result<()> {
    crate::commands::set_threads(a.threads)?;
    let tasks: Vec<&'static str> = a
        .tasks
        .iter()
        .map(|t| {
            longctx::TASKS
                .iter()
                .find(|k| **k == t)
                .copied()
                .with_context(|| format!("--tasks: unknown task {t}"))
        })
        .collect::<Result<_>>()?;
    let path = a.results.clone().unwrap_or_else(|| {
        let name = format!(
            "longctx-{}-{}-{}.jsonl",
            crate::results::key(&a.model.model),
            a.rope_scaling,
            a.kv_type
        );
        home.0.join("eval").join(name)
    });
    let mut done = read_done(&path);
    let mut grid: Vec<(&'static str, usize, f64)> = Vec::new();
    for &l in &a.lengths {
        for &d in &a.depths {
            grid.extend(tasks.iter().map(|&t| (t, l, d)));
        }
    }
    let todo: Vec<_> = grid
        .iter()
        .filter(|(t, l, d)| !done.contains_key(&format!("{t}-{l}-{d:.2}")))
        .collect();
    if !todo.is_empty() {
        let mut lm = LoadedModel::load(home.resolve_model(&a.model.model)?)?;
        let ctx = a.lengths.iter().copied().max().unwrap_or(0) + 128;
        let mode = crate::sys::rope_scaling(&a.rope_scaling)?;
        let kv_type = crate::sys::kv_type(&a.kv_type)?;
        let plan = crate::context_plan::plan(&mut lm.model.config, Some(ctx), mode, usize::MAX, kv_type);
        if plan.ctx < ctx {
            bail!(
                "{} tokens are past the model's {} under --rope-scaling {}",
                ctx,
                plan.ctx,
                a.rope_scaling
            );
        }
        let lm = Arc::new(lm);
        let lines = corpus_lines(a.corpus.as_deref())?;
        let count = |s: &str| lm.tokenizer.encode(s, SpecialMode::None).len();
        let engine = EngineHandle::spawn(
            lm.clone(),
            EngineConfig {
                step_tokens: 512,
                kv_type,
                yarn_past: plan.yarn_past,
                queue_timeout: Duration::from_secs(7 * 24 * 3600),
                ..EngineConfig::new(1, ctx)
            },
        );
        let bar = crate::eval_cmd::progress(grid.len(), grid.len() - todo.len(), "longctx", false);
        let mut out = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        for &&(task, length, depth) in &todo {
            let case = longctx::case(task, length, depth, &lines, &count);
            let s = ask(&engine, &lm, &case)?;
            writeln!(out, "{}", serde_json::to_string(&s)?)?;
            out.flush()?;
            bar.set_message(format!(
                "{} {:.0}% ({} tokens, {:.0} s)",
                s.id,
                100.0 * s.score,
                s.prompt_tokens,
                s.seconds
            ));
            done.insert(s.id.clone(), s);
            bar.inc(1);
        }
        bar.finish();
    }
    report(&grid, &done, &path)
}

/// One case, greedily, its whole reply scored.
fn ask(engine: &EngineHandle, lm: &LoadedModel, case: &Case) -> Result<Scored> {
    let prompt = lm.chat_prompt(&[ChatMessage::new("user", &case.prompt)])?;
    let greedy = SamplingParams {
        temperature: 0.0,
        ..SamplingParams::default()
    };
    let prompt_tokens = prompt.len();
    let t = Instant::now();
    let mut rx = engine.submit(GenRequest::new(prompt, greedy, 48))?;
    let mut reply = String::new();
    loop {
        match rx.blocking_recv() {
            Some(Event::Token { text, .. }) => reply.push_str(&text),
            Some(Event::Finished { .. }) => break,
            Some(Event::Prefilled { .. }) => {}
            Some(other) => bail!("{}: generation failed: {other:?}", case.id),
            None => bail!("the engine stopped"),
        }
    }
    Ok(Scored {
        id: case.id.clone(),
        task: case.task.to_string(),
        length: case.length,
        depth: case.depth,
        prompt_tokens,
        score: longctx::score(&reply, &case.answers),
        reply,
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// Mean score per (task, depth) row and length column: a table, and the same as an SVG heatmap
/// beside the results.
fn report(grid: &[(&'static str, usize, f64)], done: &HashMap<String, Scored>, path: &Path) -> Result<()> {
    let mut lengths: Vec<usize> = grid.iter().map(|g| g.1).collect();
    lengths.sort();
    lengths.dedup();
    let mut rows: BTreeMap<(usize, String), BTreeMap<usize, f64>> = BTreeMap::new();
    for (t, l, d) in grid {
        if let Some(s) = done.get(&format!("{t}-{l}-{d:.2}")) {
            let task_at = longctx::TASKS.iter().position(|k| k == t).unwrap_or(0);
            rows.entry((task_at, format!("{t} @ {d:.1}")))
                .or_default()
                .insert(*l, s.score);
        }
    }
    let head: Vec<String> = lengths.iter().map(|l| format!("{}k", l / 1024)).collect();
    println!("| task @ depth | {} |", head.join(" | "));
    println!("|---|{}", "---:|".repeat(lengths.len()));
    for ((_, name), by_len) in &rows {
        let cells: Vec<String> = lengths
            .iter()
            .map(|l| by_len.get(l).map_or("–".into(), |s| format!("{s:.2}")))
            .collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
    let svg = path.with_extension("svg");
    std::fs::write(&svg, heatmap(&rows, &lengths))?;
    eprintln!("tandem: results in {} (heatmap {})", path.display(), svg.display());
    Ok(())
}

fn heatmap(rows: &BTreeMap<(usize, String), BTreeMap<usize, f64>>, lengths: &[usize]) -> String {
    let (cw, ch, left, top) = (70, 22, 120, 30);
    let (w, h) = (left + cw * lengths.len() + 10, top + ch * rows.len() + 10);
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n");
    for (j, l) in lengths.iter().enumerate() {
        s += &format!(
            "<text x=\"{}\" y=\"20\" text-anchor=\"middle\">{}k</text>\n",
            left + cw * j + cw / 2,
            l / 1024
        );
    }
    for (i, ((_, name), by_len)) in rows.iter().enumerate() {
        let y = top + ch * i;
        s += &format!("<text x=\"4\" y=\"{}\">{name}</text>\n", y + 15);
        for (j, l) in lengths.iter().enumerate() {
            let Some(&v) = by_len.get(l) else { continue };
            // Red (0) through yellow to green (1).
            let (r, g) = (
                (255.0 * (2.0 - 2.0 * v).min(1.0)) as u8,
                (200.0 * (2.0 * v).min(1.0)) as u8,
            );
            let x = left + cw * j;
            s += &format!(
                "<rect x=\"{x}\" y=\"{y}\" width=\"{cw}\" height=\"{ch}\" fill=\"rgb({r},{g},60)\" stroke=\"white\"/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{v:.2}</text>\n",
                x + cw / 2,
                y + 15
            );
        }
    }
    s + "</svg>\n"
}
