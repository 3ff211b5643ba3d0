//! `tandem eval moderation`: the shipped moderation head on the hand-labelled held-out set, through
//! the same path the server uses (the mini's engine → embedding → head): harmful recall, benign
//! false-positive rate (look-alikes apart), and precision/recall per category.

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use serde::Deserialize;
use serde_json::json;
use tandem_engine::{EngineConfig, EngineHandle, LoadedModel};
use tandem_safety::{Head, Moderator, CATEGORIES, HELDOUT};

use crate::Home;

#[derive(Args)]
pub struct ModerationArgs {
    #[arg(long)]
    json: bool,
    /// Worker threads (default: all cores).
    #[arg(long, short)]
    threads: Option<usize>,
}

#[derive(Deserialize)]
struct Item {
    text: String,
    categories: Vec<String>,
    kind: String,
}

pub fn eval_moderation(home: &Home, a: ModerationArgs) -> Result<()> {
    crate::commands::set_threads(a.threads)?;
    let items: Vec<Item> = HELDOUT
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("the held-out set")?;
    let head = Head::builtin().map_err(|e| anyhow::anyhow!("{e}"))?;
    let tier = crate::tiers::find(head.model()).context("the head's model is not a tier")?;
    let lm = Arc::new(LoadedModel::load(home.resolve_model(tier.name)?)?);
    let engine = EngineHandle::spawn(lm, EngineConfig::new(1, 1024));
    let moderator = Moderator::new(Arc::new(engine), head, tier.id)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let bar = indicatif::ProgressBar::new(items.len() as u64);
    if a.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let verdicts = rt.block_on(async {
        let mut out = Vec::with_capacity(items.len());
        for it in &items {
            out.push(moderator.classify(&it.text).await?);
            bar.inc(1);
        }
        anyhow::Ok(out)
    })?;
    bar.finish_and_clear();

    let count = |kind: &str| {
        let of: Vec<bool> = items
            .iter()
            .zip(&verdicts)
            .filter(|(i, _)| i.kind == kind)
            .map(|(_, v)| v.flagged)
            .collect();
        (of.iter().filter(|&&f| f).count(), of.len())
    };
    let (tp, pos) = count("harmful");
    let (fl, nl) = count("lookalike");
    let (fb, nb) = count("benign");
    let per_cat: Vec<_> = CATEGORIES
        .iter()
        .map(|&c| {
            let (mut tp, mut fp, mut n) = (0, 0, 0);
            for (it, v) in items.iter().zip(&verdicts) {
                let truth = it.categories.iter().any(|x| x == c);
                let said = v.categories.iter().any(|&(k, on)| k == c && on);
                n += usize::from(truth);
                tp += usize::from(truth && said);
                fp += usize::from(!truth && said);
            }
            (c, tp, fp, n)
        })
        .collect();
    let ratio = |a: usize, b: usize| a as f64 / b.max(1) as f64;
    if a.json {
        let cats: serde_json::Map<String, serde_json::Value> = per_cat
            .iter()
            .map(|&(c, tp, fp, n)| {
                (
                    c.to_string(),
                    json!({"n": n, "precision": ratio(tp, tp + fp), "recall": ratio(tp, n)}),
                )
            })
            .collect();
        println!(
            "{}",
            json!({"model": tier.id, "n": items.len(), "harmful_recall": ratio(tp, pos),
                   "false_positive_rate": ratio(fl + fb, nl + nb), "lookalike_flagged": fl, "lookalikes": nl,
                   "benign_flagged": fb, "benign": nb, "categories": cats})
        );
        return Ok(());
    }
    println!(
        "moderation (head over {}'s embeddings), held-out set of {} texts",
        tier.id,
        items.len()
    );
    println!("harmful recall        {:.1}% ({tp}/{pos})", 100.0 * ratio(tp, pos));
    println!(
        "false-positive rate   {:.1}% ({}/{}: look-alikes {fl}/{nl}, plain benign {fb}/{nb})",
        100.0 * ratio(fl + fb, nl + nb),
        fl + fb,
        nl + nb
    );
    println!("{:<24} {:>4} {:>10} {:>8}", "category", "n", "precision", "recall");
    for (c, tp, fp, n) in per_cat {
        println!(
            "{c:<24} {n:>4} {:>9.0}% {:>7.0}%",
            100.0 * ratio(tp, tp + fp),
            100.0 * ratio(tp, n)
        );
    }
    Ok(())
}
