//! `tandem eval route`: does `model: "auto"` buy more quality per dollar than either tier alone?
//!
//! The cascade (see the server's `router`) keeps the small tier's answer when the mean
//! log-probability of its tokens is at least a threshold, and pays for the large tier's answer as
//! well otherwise. Greedy decoding is deterministic and a sequence's output does not depend on
//! what runs beside it, so the cascade's outcome on a problem follows exactly from each tier's
//! stored HumanEval result (`tandem eval humaneval`, which keeps the small tier's confidence and
//! the prompt's length): nothing is generated here.
//!
//! The split is fixed: problems with an even number tune the threshold, those with an odd number
//! are held out and never looked at while tuning. The threshold chosen is the one whose point lies
//! furthest above the straight line from small-only to large-only (quality against cost) on the
//! tuning half, among those that cost no more than large-only (never escalating is a candidate);
//! the held-out half reports where that threshold lands.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use tandem_eval::humaneval::Scored;

use crate::{tiers, Home};

#[derive(Args)]
pub struct RouteArgs {
    /// The tier that answers first.
    #[arg(long, default_value = "mini")]
    small: String,
    /// The tier it escalates to.
    #[arg(long, default_value = "flagship")]
    large: String,
    /// Settings file whose [prices.TIER] apply (default: ./tandem.toml if present).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

/// One problem as the cascade sees it.
struct Case {
    number: usize,
    small_passed: bool,
    large_passed: bool,
    confidence: f64,
    small_cost: f64,
    large_cost: f64,
}

/// Quality (pass rate) and mean cost per request of a policy over `cases`.
#[derive(Clone, Copy)]
struct Point {
    quality: f64,
    cost: f64,
    escalated: f64,
}

fn evaluate(cases: &[&Case], threshold: f64) -> Point {
    let n = cases.len().max(1) as f64;
    let (mut q, mut c, mut e) = (0.0, 0.0, 0.0);
    for x in cases {
        if x.confidence >= threshold {
            q += x.small_passed as u8 as f64;
            c += x.small_cost;
        } else {
            q += x.large_passed as u8 as f64;
            c += x.small_cost + x.large_cost;
            e += 1.0;
        }
    }
    Point {
        quality: q / n,
        cost: c / n,
        escalated: e / n,
    }
}

/// Asking the large tier directly: its quality at its own cost only.
fn large_only(cases: &[&Case]) -> Point {
    let n = cases.len().max(1) as f64;
    Point {
        quality: cases.iter().filter(|c| c.large_passed).count() as f64 / n,
        cost: cases.iter().map(|c| c.large_cost).sum::<f64>() / n,
        escalated: 0.0,
    }
}

/// Quality points above (+) or below (−) the line from `small` to `large` at `p`'s cost.
fn above_line(p: Point, small: Point, large: Point) -> f64 {
    let slope = (large.quality - small.quality) / (large.cost - small.cost);
    p.quality - (small.quality + slope * (p.cost - small.cost))
}

fn read(path: &PathBuf) -> Result<HashMap<String, Scored>> {
    let f = std::fs::File::open(path)
        .with_context(|| format!("{}: run `tandem eval humaneval` for this tier first", path.display()))?;
    let mut out = HashMap::new();
    for line in std::io::BufReader::new(f).lines() {
        let s: Scored = serde_json::from_str(&line?)?;
        out.insert(s.task_id.clone(), s);
    }
    Ok(out)
}

pub fn eval_route(home: &Home, a: RouteArgs) -> Result<()> {
    let tier = |name: &str| tiers::find(name).with_context(|| format!("{name} is not a tier"));
    let (small_t, large_t) = (tier(&a.small)?, tier(&a.large)?);
    let price = |t: &tiers::Tier| {
        let path = home.models().join(t.file);
        crate::serve::tier_prices(t, a.config.as_deref(), &path)
    };
    let ((si, _, so), (li, _, lo)) = (price(small_t)?, price(large_t)?);
    let small = read(&crate::eval_cmd::humaneval_results_path(home, small_t.name))?;
    let large = read(&crate::eval_cmd::humaneval_results_path(home, large_t.name))?;
    let mut cases: Vec<Case> = small
        .values()
        .filter_map(|s| {
            let l = large.get(&s.task_id)?;
            let prompt = s.prompt_tokens? as f64;
            Some(Case {
                number: s.task_id.rsplit('/').next()?.parse().ok()?,
                small_passed: s.passed,
                large_passed: l.passed,
                confidence: s.mean_logprob?,
                small_cost: (prompt * si + s.completion_tokens as f64 * so) / 1e6,
                large_cost: (prompt * li + l.completion_tokens as f64 * lo) / 1e6,
            })
        })
        .collect();
    cases.sort_by_key(|c| c.number);
    let tune: Vec<&Case> = cases.iter().filter(|c| c.number % 2 == 0).collect();
    let held: Vec<&Case> = cases.iter().filter(|c| c.number % 2 == 1).collect();
    if tune.len() < 10 || held.len() < 10 {
        bail!(
            "{} problems have results from both tiers with the small tier's confidence: too few (run \
             `tandem eval humaneval --model {}` and `--model {}`)",
            cases.len(),
            a.small,
            a.large
        );
    }
    // Candidate thresholds: every confidence seen while tuning (escalate below it), plus never.
    let mut candidates: Vec<f64> = tune.iter().map(|c| c.confidence).collect();
    candidates.push(f64::NEG_INFINITY);
    candidates.sort_by(f64::total_cmp);
    let ends = |set: &[&Case]| (evaluate(set, f64::NEG_INFINITY), large_only(set));
    let (ts, tl) = ends(&tune);
    // Only policies between the two ends count: one that costs more than asking the large tier
    // directly is never better value, whatever a line extrapolated past it says.
    let threshold = candidates
        .iter()
        .copied()
        .filter(|&t| evaluate(&tune, t).cost <= tl.cost)
        .max_by(|&x, &y| {
            let (px, py) = (evaluate(&tune, x), evaluate(&tune, y));
            above_line(px, ts, tl)
                .total_cmp(&above_line(py, ts, tl))
                .then(py.cost.total_cmp(&px.cost))
        })
        .expect("candidates");
    let (hs, hl) = ends(&held);
    let auto = evaluate(&held, threshold);
    let gap = above_line(auto, hs, hl);
    let tuned = evaluate(&tune, threshold);
    let row = |name: &str, p: Point| {
        json!({"policy": name, "pass_at_1": p.quality, "usd_per_1k_requests": p.cost * 1000.0,
               "escalated": p.escalated})
    };
    let out = json!({
        "small": a.small, "large": a.large,
        "threshold": threshold,
        "split": "HumanEval: even task numbers tune the threshold, odd ones are held out",
        "tuning": {"n": tune.len(), "auto": row("auto", tuned), "small": row(&a.small, ts), "large": row(&a.large, tl),
                   "above_line_points": 100.0 * above_line(tuned, ts, tl)},
        "held_out": {"n": held.len(), "results": [row(&a.small, hs), row(&a.large, hl), row("auto", auto)],
                     "above_line_points": 100.0 * gap},
        "auto_pays": gap > 0.0,
        "prices_usd_per_1m": {"small": [si, so], "large": [li, lo]},
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "model \"auto\" on HumanEval ({} tuning / {} held-out problems with results from both tiers)",
        tune.len(),
        held.len()
    );
    println!(
        "threshold tuned on the even problems: escalate when the {}'s mean token log-probability < {threshold:.4}",
        a.small
    );
    println!("| held-out | pass@1 | $ per 1k requests | escalated |");
    println!("|---|---:|---:|---:|");
    for (name, p) in [(a.small.as_str(), hs), (a.large.as_str(), hl), ("auto", auto)] {
        println!(
            "| {name} | {:.1}% | {:.4} | {:.0}% |",
            100.0 * p.quality,
            1000.0 * p.cost,
            100.0 * p.escalated
        );
    }
    println!(
        "auto is {:+.1} points {} the line from {} to {} at its cost: {}",
        100.0 * gap,
        if gap >= 0.0 { "above" } else { "below" },
        a.small,
        a.large,
        if gap > 0.0 {
            "more quality per dollar than mixing the tiers at random"
        } else {
            "it does not pay on this split"
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(number: usize, small: bool, large: bool, confidence: f64) -> Case {
        Case {
            number,
            small_passed: small,
            large_passed: large,
            confidence,
            small_cost: 1.0,
            large_cost: 3.0,
        }
    }

    #[test]
    fn a_confidence_that_predicts_failure_puts_auto_above_the_line() {
        // The small tier fails exactly where it is unsure; the large one passes everything.
        let cases = [
            case(0, true, true, -0.01),
            case(1, true, true, -0.02),
            case(2, false, true, -0.5),
            case(3, false, true, -0.6),
        ];
        let all: Vec<&Case> = cases.iter().collect();
        let (s, l) = (evaluate(&all, f64::NEG_INFINITY), large_only(&all));
        assert_eq!((s.quality, s.cost), (0.5, 1.0));
        assert_eq!((l.quality, l.cost), (1.0, 3.0));
        let always = evaluate(&all, f64::INFINITY);
        assert_eq!(
            (always.quality, always.cost),
            (1.0, 4.0),
            "always escalating pays both tiers"
        );
        let auto = evaluate(&all, -0.1);
        assert_eq!((auto.quality, auto.cost, auto.escalated), (1.0, 2.5, 0.5));
        assert!(
            (above_line(auto, s, l) - 0.125).abs() < 1e-12,
            "the line at cost 2.5 is at 0.875"
        );
        // A useless signal (escalating the confident half) lands on or below the line.
        let inverse = [
            case(0, false, true, -0.01),
            case(1, false, true, -0.02),
            case(2, true, true, -0.5),
            case(3, true, true, -0.6),
        ];
        let inv: Vec<&Case> = inverse.iter().collect();
        assert!(above_line(evaluate(&inv, -0.1), s, l) <= 0.0);
    }
}
