//! `tandem bench serve --long-prompt N`: what one long prompt's prefill costs everyone else.
//! 1. Alone: `probes` short streaming requests one at a time (TTFT, gaps between tokens).
//! 2. A long answer starts streaming (so a sequence is decoding throughout), then one request with
//!    a unique ~N-token prompt; until the long prompt has prefilled, probes run one after another,
//!    so they meet it at every depth. Reported: the probes' TTFT and token gaps alone, beside the
//!    whole prefill and beside its second half (the deeper positions), and the long request's own
//!    time to first token.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{json, Value};

use crate::bench_serve::{one, pct, shared_system, RequestStats};

pub struct Scenario {
    pub model: String,
    /// Tokens of the long prompt (about).
    pub tokens: usize,
    pub probes: usize,
}

/// Ids of the probes per phase, apart so no phase reuses another's prompt.
const PHASE: usize = 2_000_000;

/// Probes one at a time, each after a pause spread over 0–400 ms, until `n` ran or `until` says
/// stop (checked before each).
async fn probes(
    client: &reqwest::Client,
    url: &str,
    model: &str,
    base: usize,
    n: usize,
    until: impl Fn() -> bool,
) -> Result<Vec<RequestStats>> {
    let mut v = Vec::new();
    for i in 0..n {
        if until() {
            break;
        }
        tokio::time::sleep(Duration::from_millis((i as u64 * 7919) % 401)).await;
        v.push(one(client, url, model, base + i, 16, None).await?);
    }
    Ok(v)
}

/// The long request: a unique ~`tokens`-token prompt, one token of answer; its TTFT in seconds.
/// It may take 60 ms per prompt token, at least the client's 10 minutes (a 64k-token prompt
/// prefills in ~20 minutes on 2 cores beside the probes).
async fn long_request(client: &reqwest::Client, url: &str, model: &str, tokens: usize) -> Result<(f64, u64)> {
    let body = json!({"model": model, "max_tokens": 1, "stream": false,
        "messages": [{"role": "user", "content": format!("Session {}. {}\nHow many rules are there?",
            std::process::id(), shared_system(tokens))}]});
    let start = Instant::now();
    let v: Value = client
        .post(format!("{url}/v1/chat/completions"))
        .timeout(Duration::from_millis(60 * tokens as u64).max(Duration::from_secs(600)))
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((
        start.elapsed().as_secs_f64(),
        v["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
    ))
}

fn summary(stats: &[RequestStats]) -> Value {
    let mut ttft: Vec<f64> = stats.iter().map(|s| s.ttft).collect();
    let mut gaps: Vec<f64> = stats.iter().flat_map(|s| s.gaps.iter().copied()).collect();
    json!({"requests": stats.len(), "ttft_p50_ms": pct(&mut ttft, 0.5) * 1e3, "ttft_p95_ms": pct(&mut ttft, 0.95) * 1e3,
           "itl_p50_ms": pct(&mut gaps, 0.5) * 1e3, "itl_p95_ms": pct(&mut gaps, 0.95) * 1e3})
}

impl Scenario {
    pub async fn run(&self, client: &reqwest::Client, url: &str) -> Result<Value> {
        let m = self.model.as_str();
        one(client, url, m, PHASE - 1, 4, None).await?;
        let alone = probes(client, url, m, PHASE, self.probes, || false).await?;
        // A stream decoding through the whole prefill (far more tokens than it can make meanwhile).
        let stream = {
            let (client, url, model) = (client.clone(), url.to_string(), self.model.clone());
            tokio::spawn(async move { one(&client, &url, &model, 3 * PHASE, 4096, None).await })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let long = {
            let (client, url, model, done) = (client.clone(), url.to_string(), self.model.clone(), done.clone());
            let tokens = self.tokens;
            tokio::spawn(async move {
                let r = long_request(&client, &url, &model, tokens).await;
                done.store(true, std::sync::atomic::Ordering::Release);
                r
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        let finished = || done.load(std::sync::atomic::Ordering::Acquire);
        let beside = probes(client, url, m, 2 * PHASE, usize::MAX, finished).await?;
        let (long_ttft, prompt_tokens) = long.await??;
        stream.abort();
        Ok(json!({"alone": summary(&alone), "beside_prefill": summary(&beside),
                  "beside_second_half": summary(&beside[beside.len() / 2..]),
                  "long_prompt_tokens": prompt_tokens, "long_ttft_s": long_ttft}))
    }
}

pub fn print(label: &str, s: &Scenario, r: &Value, as_json: bool) {
    if as_json {
        println!(
            "{}",
            json!({"server": label, "model": s.model, "long_prompt_scenario": r})
        );
        return;
    }
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    println!(
        "{label} · model {} · one prompt of {} tokens: time to first token {:.1} s",
        s.model,
        r["long_prompt_tokens"],
        f(&r["long_ttft_s"])
    );
    println!("short requests, one at a time (16 tokens each):");
    for (k, name) in [
        ("alone", "alone"),
        ("beside_prefill", "beside the prefill"),
        ("beside_second_half", " … its second half"),
    ] {
        let x = &r[k];
        println!(
            "  {name:<19} {:>3} reqs  TTFT p50 {:>7.0} ms  p95 {:>7.0} ms  ITL p50 {:>6.0} ms  p95 {:>6.0} ms",
            x["requests"],
            f(&x["ttft_p50_ms"]),
            f(&x["ttft_p95_ms"]),
            f(&x["itl_p50_ms"]),
            f(&x["itl_p95_ms"])
        );
    }
}
