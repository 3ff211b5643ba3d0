//! `tandem eval route`: does `model: "auto"` — the router head — buy more quality per dollar than
//! mixing the tiers at random?
//!
//! The items are the tiers' own stored results on generative work: HumanEval (`tandem eval
//! humaneval`), BFCL (`tandem eval bfcl`, labels `tandem-TIER-enforced`) and the short QA items
//! (`tandem eval qa`); an item counts when both tiers have a result. Greedy outputs do not depend
//! on what runs beside them, so routing an item to a tier gives exactly that tier's stored result:
//! nothing is generated here. Each item's routing text (`router_head::routing_text`, what the
//! server reads) is embedded by the small tier, as the server does.
//!
//! The split is fixed and stratified: within each kind, items ordered by a hash of their id
//! alternate between the training half (`--dump` writes it for `tools/router/train_head.py`) and
//! the held-out half, which only this report reads. "Above the line": the router's pass rate minus
//! the straight line from small-only to large-only at the router's cost (which includes the small
//! tier reading the routing text), with a bootstrap 95% interval over held-out items.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tandem_engine::{EngineConfig, EngineHandle, LoadedModel, EMBED_MAX_TOKENS};
use tandem_server::router_head::{routing_text, RouterHead};
use tandem_text::SpecialMode;

use crate::{tiers, Home};

#[derive(Args)]
pub struct RouteArgs {
    /// The tier that answers when the head does not escalate.
    #[arg(long, default_value = "mini")]
    small: String,
    /// The tier it escalates to.
    #[arg(long, default_value = "flagship")]
    large: String,
    /// Settings file whose [prices.TIER] apply (default: ./tandem.toml if present).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write every item (both halves: id, kind, half, results, costs, embedding) as JSONL for the
    /// trainer, and stop.
    #[arg(long)]
    dump: Option<PathBuf>,
    /// A head file to measure instead of the built-in one.
    #[arg(long)]
    head: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

/// One tier's stored result on an item.
#[derive(Clone, Copy)]
struct Result1 {
    passed: bool,
    /// Dollars.
    cost: f64,
}

/// One item as the router sees it.
struct Case {
    id: String,
    kind: String,
    text: String,
    small: Result1,
    large: Result1,
    held_out: bool,
    /// Dollars for the small tier to read the routing text.
    route_cost: f64,
}

/// USD per 1M tokens (input, output) of a tier.
type Prices = (f64, f64);

fn cost(p: Prices, prompt: usize, completion: usize) -> f64 {
    (prompt as f64 * p.0 + completion as f64 * p.1) / 1e6
}

/// (kind, routing text) of each item id, from the evaluations' own definitions.
fn texts(home: &Home) -> Result<HashMap<String, (String, String)>> {
    let dir = home.0.join("eval");
    let mut out = HashMap::new();
    for p in crate::eval_cmd::problems(&dir)? {
        let text = routing_text([], &[tandem_eval::humaneval::instruction(&p)]);
        out.insert(p.task_id.clone(), ("humaneval".to_string(), text));
    }
    for i in tandem_eval::qa::items() {
        let text = routing_text([], &[tandem_eval::qa::instruction(&i)]);
        out.insert(i.id, ("qa".to_string(), text));
    }
    let cats: Vec<&str> = tandem_eval::bfcl::CATEGORIES.iter().map(|c| c.0).collect();
    // Every item: the lookup is by id, whatever sample size the results came from.
    for i in crate::eval_bfcl::items(&dir, &cats, usize::MAX)? {
        let names: Vec<String> = i
            .functions
            .iter()
            .map(|f| tandem_eval::bfcl::tool_name(f["name"].as_str().unwrap_or_default()))
            .collect();
        let user: Vec<String> = i
            .messages
            .iter()
            .filter(|m| m["role"] == "user")
            .map(|m| m["content"].as_str().unwrap_or_default().to_string())
            .collect();
        let text = routing_text(names.iter().map(String::as_str), &user);
        out.insert(i.id.clone(), (format!("bfcl-{}", i.category), text));
    }
    Ok(out)
}

/// Every stored result of a tier: id → (passed, prompt tokens, completion tokens). Results
/// without usage (a failed request, an old file) are left out: their cost is unknown.
fn results(home: &Home, tier: &str) -> Result<HashMap<String, (bool, usize, usize)>> {
    let mut out = HashMap::new();
    let he = crate::eval_cmd::humaneval_results_path(home, tier);
    if let Ok(f) = std::fs::File::open(&he) {
        for line in std::io::BufReader::new(f).lines() {
            let s: tandem_eval::humaneval::Scored = serde_json::from_str(&line?)?;
            if let Some(prompt) = s.prompt_tokens {
                out.insert(s.task_id, (s.passed, prompt, s.completion_tokens));
            }
        }
    }
    for (id, s) in crate::eval_qa::read_results(&crate::eval_qa::results_path(home, tier))? {
        out.insert(id, (s.passed, s.prompt_tokens, s.completion_tokens));
    }
    let bfcl = home
        .0
        .join("eval")
        .join("bfcl")
        .join(format!("tandem-{tier}-enforced.jsonl"));
    for (id, v) in crate::eval_bfcl::stored(&bfcl)? {
        let n = |k: &str| v[k].as_u64().map(|n| n as usize);
        if let (Some(prompt), Some(completion)) = (n("prompt_tokens"), n("completion_tokens")) {
            out.insert(id, (v["valid"] == true, prompt, completion));
        }
    }
    Ok(out)
}

fn fnv1a(s: &str) -> u64 {
    s.bytes()
        .fold(0xcbf29ce484222325, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// Marks the items whose id hashes odd as held out: an item's half never depends on which other
/// results exist, so a head trained on one dump is never scored on its own training items.
fn split(cases: &mut [Case]) {
    for c in cases {
        c.held_out = fnv1a(&c.id) & 1 == 1;
    }
}

/// The small tier's embedding of each text, cached in `$TANDEM_HOME/eval/route-embed-TIER.jsonl`
/// by the text's SHA-256, with the tokens it read.
fn embed_all(home: &Home, tier: &tiers::Tier, texts: &[&str]) -> Result<Vec<(Vec<f32>, usize)>> {
    let path = home.0.join("eval").join(format!("route-embed-{}.jsonl", tier.name));
    let key = |t: &str| {
        Sha256::digest(t.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let mut cache: HashMap<String, (Vec<f32>, usize)> = HashMap::new();
    if let Ok(f) = std::fs::File::open(&path) {
        for line in std::io::BufReader::new(f).lines() {
            let v: Value = serde_json::from_str(&line?)?;
            let e: Vec<f32> = serde_json::from_value(v["embedding"].clone())?;
            cache.insert(
                v["key"].as_str().unwrap_or_default().into(),
                (e, v["tokens"].as_u64().unwrap_or(0) as usize),
            );
        }
    }
    let missing: Vec<&str> = texts.iter().copied().filter(|t| !cache.contains_key(&key(t))).collect();
    if !missing.is_empty() {
        let lm = Arc::new(LoadedModel::load(&home.resolve_model(tier.name)?)?);
        let engine = EngineHandle::spawn(lm.clone(), EngineConfig::new(1, 2048));
        let mut out = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        let bar = crate::eval_cmd::progress(missing.len(), 0, "embed", false);
        for t in missing {
            let tokens = lm.tokenizer.encode(t, SpecialMode::None);
            let n = tokens.len().min(EMBED_MAX_TOKENS);
            let e = engine.embed(tokens)?.blocking_recv().context("the engine stopped")??;
            writeln!(out, "{}", json!({"key": key(t), "tokens": n, "embedding": e}))?;
            cache.insert(key(t), (e, n));
            bar.inc(1);
        }
        bar.finish();
    }
    Ok(texts.iter().map(|t| cache[&key(t)].clone()).collect())
}

/// Pass rate and mean cost of a policy over `idx`.
#[derive(Clone, Copy, Default)]
struct Point {
    quality: f64,
    cost: f64,
    escalated: f64,
}

fn point(cases: &[Case], idx: &[usize], choice: impl Fn(usize) -> Option<bool>) -> Point {
    let n = idx.len().max(1) as f64;
    let mut p = Point::default();
    for &i in idx {
        let c = &cases[i];
        let (r, extra) = match choice(i) {
            None => (c.small, 0.0),
            Some(false) => (c.small, c.route_cost),
            Some(true) => (c.large, c.route_cost),
        };
        p.quality += r.passed as u8 as f64 / n;
        p.cost += (r.cost + extra) / n;
        p.escalated += (choice(i) == Some(true)) as u8 as f64 / n;
    }
    p
}

/// Quality points above (+) or below (−) the line from `small` to `large` at `p`'s cost.
fn above_line(p: Point, small: Point, large: Point) -> f64 {
    let slope = (large.quality - small.quality) / (large.cost - small.cost);
    p.quality - (small.quality + slope * (p.cost - small.cost))
}

/// (router, small-only, large-only, router's points above the line) on `idx`.
fn measure(cases: &[Case], idx: &[usize], escalate: &[bool]) -> (Point, Point, Point, f64) {
    let router = point(cases, idx, |i| Some(escalate[i]));
    let small = point(cases, idx, |_| None);
    // Large-only does not pay for reading the routing text.
    let large = Point {
        cost: idx.iter().map(|&i| cases[i].large.cost).sum::<f64>() / idx.len().max(1) as f64,
        ..point(cases, idx, |_| Some(true))
    };
    (router, small, large, above_line(router, small, large))
}

/// The 2.5th and 97.5th percentiles of the points above the line over bootstrap resamples.
fn bootstrap(cases: &[Case], idx: &[usize], escalate: &[bool], rounds: usize) -> (f64, f64) {
    let mut state = 0x2026_1206_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    };
    let mut gains: Vec<f64> = (0..rounds)
        .map(|_| {
            let sample: Vec<usize> = (0..idx.len())
                .map(|_| idx[(next() % idx.len() as u64) as usize])
                .collect();
            measure(cases, &sample, escalate).3
        })
        .collect();
    gains.sort_by(f64::total_cmp);
    (gains[rounds * 25 / 1000], gains[rounds * 975 / 1000])
}

/// The items with results from both tiers, split, with their embeddings by the small tier
/// ([2 · dim] each, in `cases` order).
struct Loaded {
    cases: Vec<Case>,
    embeddings: Vec<Vec<f32>>,
    small: &'static tiers::Tier,
}

fn load_cases(home: &Home, a: &RouteArgs) -> Result<Loaded> {
    let tier = |name: &str| tiers::find(name).with_context(|| format!("{name} is not a tier"));
    let (small_t, large_t) = (tier(&a.small)?, tier(&a.large)?);
    let price = |t: &tiers::Tier| -> Result<Prices> {
        let (i, _, o) = crate::serve::tier_prices(t, a.config.as_deref(), &home.models().join(t.file))?;
        Ok((i, o))
    };
    let (sp, lp) = (price(small_t)?, price(large_t)?);
    let (small, large) = (results(home, small_t.name)?, results(home, large_t.name)?);
    let texts = texts(home)?;
    let mut cases: Vec<Case> = small
        .iter()
        .filter_map(|(id, s)| {
            let l = large.get(id)?;
            let (kind, text) = texts.get(id)?;
            Some(Case {
                id: id.clone(),
                kind: kind.clone(),
                text: text.clone(),
                small: Result1 {
                    passed: s.0,
                    cost: cost(sp, s.1, s.2),
                },
                large: Result1 {
                    passed: l.0,
                    cost: cost(lp, l.1, l.2),
                },
                held_out: false,
                route_cost: 0.0,
            })
        })
        .collect();
    cases.sort_by(|x, y| x.id.cmp(&y.id));
    if cases.len() < 40 {
        bail!(
            "{} items have results from both tiers: too few (run `tandem eval humaneval`, `tandem eval qa` and \
             `tandem eval bfcl --label tandem-TIER-enforced` for --model {} and {})",
            cases.len(),
            a.small,
            a.large
        );
    }
    split(&mut cases);
    let all: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
    let embedded = embed_all(home, small_t, &all)?;
    for (c, (_, n)) in cases.iter_mut().zip(&embedded) {
        c.route_cost = cost(sp, *n, 0);
    }
    let embeddings: Vec<Vec<f32>> = embedded.into_iter().map(|(e, _)| e).collect();
    Ok(Loaded {
        cases,
        embeddings,
        small: small_t,
    })
}

fn dump(path: &PathBuf, model: &str, cases: &[Case], embeddings: &[Vec<f32>]) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (c, e) in cases.iter().zip(embeddings) {
        let row = json!({"id": c.id, "kind": c.kind, "half": if c.held_out {"held_out"} else {"train"}, "model": model,
            "small_passed": c.small.passed, "large_passed": c.large.passed, "small_cost": c.small.cost,
            "large_cost": c.large.cost, "route_cost": c.route_cost, "embedding": e});
        writeln!(f, "{row}")?;
    }
    Ok(())
}

pub fn eval_route(home: &Home, a: RouteArgs) -> Result<()> {
    let Loaded {
        cases,
        embeddings,
        small: small_t,
    } = load_cases(home, &a)?;
    if let Some(path) = &a.dump {
        dump(path, small_t.id, &cases, &embeddings)?;
        eprintln!("wrote {} items to {}", cases.len(), path.display());
        return Ok(());
    }
    let from_file = match &a.head {
        Some(p) => {
            Some(RouterHead::parse(&std::fs::read_to_string(p)?).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?)
        }
        None => None,
    };
    let head = match &from_file {
        Some(h) => h,
        None => RouterHead::builtin().map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    if !head.fits(small_t.id, embeddings[0].len() / 2) {
        bail!("the router head does not read {}'s embeddings", small_t.name);
    }
    let escalate: Vec<bool> = embeddings.iter().map(|e| head.predict(e).escalate).collect();
    let held: Vec<usize> = (0..cases.len()).filter(|&i| cases[i].held_out).collect();
    let (router, small, large, gain) = measure(&cases, &held, &escalate);
    let (lo, hi) = bootstrap(&cases, &held, &escalate, 2000);
    let kinds = per_kind(&cases, &held, &escalate);
    report(
        &a,
        held.len(),
        cases.len(),
        [small, large, router],
        gain,
        (lo, hi),
        &kinds,
    )
}

/// Per kind: (n, small passed, large passed, router passed, escalated).
fn per_kind(cases: &[Case], held: &[usize], escalate: &[bool]) -> BTreeMap<String, [usize; 5]> {
    let mut out: BTreeMap<String, [usize; 5]> = BTreeMap::new();
    for &i in held {
        let c = &cases[i];
        let e = out.entry(c.kind.clone()).or_default();
        let routed = if escalate[i] { c.large.passed } else { c.small.passed };
        for (k, on) in [true, c.small.passed, c.large.passed, routed, escalate[i]]
            .into_iter()
            .enumerate()
        {
            e[k] += on as usize;
        }
    }
    out
}

fn report(
    a: &RouteArgs,
    held: usize,
    all: usize,
    [small, large, router]: [Point; 3],
    gain: f64,
    (lo, hi): (f64, f64),
    kinds: &BTreeMap<String, [usize; 5]>,
) -> Result<()> {
    if a.json {
        let row = |p: Point| json!({"pass_rate": p.quality, "usd_per_1k_requests": p.cost * 1000.0, "escalated": p.escalated});
        let kinds: BTreeMap<_, _> = kinds
            .iter()
            .map(|(k, v)| {
                (
                    k,
                    json!({"n": v[0], "small": v[1], "large": v[2], "auto": v[3], "escalated": v[4]}),
                )
            })
            .collect();
        let out = json!({"small": a.small, "large": a.large, "held_out": held, "items": all,
            "small_only": row(small), "large_only": row(large), "auto": row(router),
            "above_line_points": 100.0 * gain, "ci95_points": [100.0 * lo, 100.0 * hi], "kinds": kinds});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("model \"auto\" (router head) on {held} held-out items of {all} with results from both tiers");
    println!("| held-out | pass rate | $ per 1k requests | escalated |");
    println!("|---|---:|---:|---:|");
    for (name, p) in [(a.small.as_str(), small), (a.large.as_str(), large), ("auto", router)] {
        println!(
            "| {name} | {:.1}% | {:.4} | {:.0}% |",
            100.0 * p.quality,
            1000.0 * p.cost,
            100.0 * p.escalated
        );
    }
    println!("| kind | n | {} | {} | auto | escalated |", a.small, a.large);
    println!("|---|---:|---:|---:|---:|---:|");
    for (k, v) in kinds {
        println!("| {k} | {} | {} | {} | {} | {} |", v[0], v[1], v[2], v[3], v[4]);
    }
    println!(
        "auto is {:+.1} points (95% bootstrap interval {:+.1} to {:+.1}) {} the line from {} to {} at its cost",
        100.0 * gain,
        100.0 * lo,
        100.0 * hi,
        if gain >= 0.0 { "above" } else { "below" },
        a.small,
        a.large
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(id: &str, small: bool, large: bool) -> Case {
        Case {
            id: id.into(),
            kind: "k".into(),
            text: String::new(),
            small: Result1 {
                passed: small,
                cost: 1.0,
            },
            large: Result1 {
                passed: large,
                cost: 3.0,
            },
            held_out: true,
            route_cost: 0.0,
        }
    }

    #[test]
    fn escalating_where_only_the_large_tier_passes_is_above_the_line() {
        let cases = [
            case("a", true, true),
            case("b", true, true),
            case("c", false, true),
            case("d", false, true),
        ];
        let idx = [0, 1, 2, 3];
        let (r, s, l, gain) = measure(&cases, &idx, &[false, false, true, true]);
        assert_eq!((s.quality, s.cost), (0.5, 1.0));
        assert_eq!((l.quality, l.cost), (1.0, 3.0));
        assert_eq!((r.quality, r.cost, r.escalated), (1.0, 2.0, 0.5));
        assert!((gain - 0.25).abs() < 1e-12, "the line at cost 2 is at 0.75");
        // Escalating the wrong half lands below the line.
        assert!(measure(&cases, &idx, &[true, true, false, false]).3 < 0.0);
        let (lo, hi) = bootstrap(&cases, &idx, &[false, false, true, true], 200);
        assert!(lo <= gain && gain <= hi);
    }

    #[test]
    fn the_split_depends_on_the_id_alone() {
        let mut cases: Vec<Case> = (0..200).map(|i| case(&format!("x{i}"), true, true)).collect();
        split(&mut cases);
        let held = cases.iter().filter(|c| c.held_out).count();
        assert!((80..=120).contains(&held), "{held} of 200 held out");
        let mut fewer: Vec<Case> = (100..200).map(|i| case(&format!("x{i}"), true, true)).collect();
        split(&mut fewer);
        assert!(fewer.iter().zip(&cases[100..]).all(|(a, b)| a.held_out == b.held_out));
    }
}
