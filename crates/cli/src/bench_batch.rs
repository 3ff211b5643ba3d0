//! `tandem bench serve --batch N`: what batch work costs interactive users and what it gains.
//! 1. Interactive TTFT alone: `probes` streaming requests, one at a time.
//! 2. N requests sent interactively, `concurrency` at a time: wall time, requests/min, tokens/s.
//! 3. The same N requests (fresh prompts of the same shape) as one batch through the Files and
//!    Batch APIs: wall time from upload to `completed`.
//! 4. Interactive TTFT while a batch runs: another batch is started, the probes run again, and the
//!    batch is cancelled.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::bench_serve::{one, pct, prompt};

pub struct Scenario {
    pub model: String,
    pub requests: usize,
    pub max_tokens: usize,
    pub concurrency: usize,
    pub probes: usize,
}

/// Ids of prompts per phase, far apart so no phase reuses another's prompt prefix.
const PHASE: usize = 1_000_000;

/// `n` streaming requests one after another, each after a pause spread over 0–400 ms: arrivals
/// that follow the previous answer at once would all land just after a step starts, which no
/// real user does.
async fn ttfts(client: &reqwest::Client, url: &str, model: &str, base: usize, n: usize) -> Result<Vec<f64>> {
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        tokio::time::sleep(Duration::from_millis((i as u64 * 7919) % 401)).await;
        v.push(one(client, url, model, base + i, 16, None).await?.ttft);
    }
    Ok(v)
}

fn batch_body(model: &str, i: usize, max_tokens: usize) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": prompt(i)}], "max_tokens": max_tokens,
           "temperature": 0.7, "seed": i})
}

async fn ok_json(r: reqwest::Response) -> Result<Value> {
    let status = r.status();
    let v: Value = r.json().await.context("a response that is not JSON")?;
    if !status.is_success() {
        bail!("HTTP {status}: {v}");
    }
    Ok(v)
}

/// Uploads `ids` as a batch input file and creates the batch; returns its id.
async fn start_batch(client: &reqwest::Client, url: &str, s: &Scenario, ids: std::ops::Range<usize>) -> Result<String> {
    let mut text = String::new();
    for i in ids {
        let line = json!({"custom_id": format!("r{i}"), "method": "POST", "url": "/v1/chat/completions",
                          "body": batch_body(&s.model, i, s.max_tokens)});
        text.push_str(&line.to_string());
        text.push('\n');
    }
    let form = reqwest::multipart::Form::new()
        .text("purpose", "batch")
        .part("file", reqwest::multipart::Part::text(text).file_name("bench.jsonl"));
    let f = ok_json(client.post(format!("{url}/v1/files")).multipart(form).send().await?).await?;
    let b = ok_json(
        client
            .post(format!("{url}/v1/batches"))
            .json(&json!({"input_file_id": f["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}))
            .send()
            .await?,
    )
    .await?;
    Ok(b["id"].as_str().context("batch id")?.to_string())
}

async fn batch_until(client: &reqwest::Client, url: &str, id: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
    loop {
        let b = ok_json(client.get(format!("{url}/v1/batches/{id}")).send().await?).await?;
        if done(&b) {
            return Ok(b);
        }
        if matches!(b["status"].as_str(), Some("failed" | "expired")) {
            bail!("batch {id} ended {}: {}", b["status"], b["errors"]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Scenario {
    pub async fn run(&self, client: &reqwest::Client, url: &str) -> Result<Value> {
        let m = &self.model;
        one(client, url, m, 9 * PHASE, 4, None).await?; // warm-up: page the weights in
        let mut alone = ttfts(client, url, m, PHASE, self.probes).await?;

        // The N requests interactively, `concurrency` in flight.
        let start = Instant::now();
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(self.concurrency.max(1)));
        let mut tasks = Vec::new();
        for i in 0..self.requests {
            let (client, url, m, sem, mt) = (client.clone(), url.to_string(), m.clone(), sem.clone(), self.max_tokens);
            tasks.push(tokio::spawn(async move {
                let _p = sem.acquire().await.expect("open");
                one(&client, &url, &m, 2 * PHASE + i, mt, None).await
            }));
        }
        let mut inter_tokens = 0;
        for t in tasks {
            inter_tokens += t.await??.tokens;
        }
        let inter_wall = start.elapsed().as_secs_f64();

        // The same shape as one batch.
        let start = Instant::now();
        let id = start_batch(client, url, self, 3 * PHASE..3 * PHASE + self.requests).await?;
        let b = batch_until(client, url, &id, |b| b["status"] == "completed").await?;
        let batch_wall = start.elapsed().as_secs_f64();
        let batch_tokens = b["usage"]["output_tokens"].as_u64().unwrap_or(0) as usize;

        // Interactive probes while another batch runs (it is cancelled afterwards).
        let id = start_batch(client, url, self, 4 * PHASE..4 * PHASE + self.requests.max(64)).await?;
        batch_until(client, url, &id, |b| {
            b["request_counts"]["completed"].as_u64().unwrap_or(0) >= 1
        })
        .await?;
        let mut busy = ttfts(client, url, m, 5 * PHASE, self.probes).await?;
        let during = batch_until(client, url, &id, |_| true).await?;
        ok_json(client.post(format!("{url}/v1/batches/{id}/cancel")).send().await?).await?;
        batch_until(client, url, &id, |b| b["status"] == "cancelled").await?;

        let rpm = |n: usize, wall: f64| n as f64 * 60.0 / wall;
        Ok(json!({
            "requests": self.requests, "max_tokens": self.max_tokens, "concurrency": self.concurrency,
            "interactive": {"wall_s": inter_wall, "requests_per_min": rpm(self.requests, inter_wall),
                            "tok_s": inter_tokens as f64 / inter_wall},
            "batch": {"wall_s": batch_wall, "requests_per_min": rpm(self.requests, batch_wall),
                      "tok_s": batch_tokens as f64 / batch_wall, "cost": b["usage"]["cost"]},
            "ttft_alone_ms": {"p50": pct(&mut alone, 0.5) * 1e3, "p95": pct(&mut alone, 0.95) * 1e3},
            "ttft_with_batch_ms": {"p50": pct(&mut busy, 0.5) * 1e3, "p95": pct(&mut busy, 0.95) * 1e3},
            "batch_lines_done_by_end_of_probes": during["request_counts"]["completed"],
        }))
    }
}

pub fn print(label: &str, s: &Scenario, r: &Value, as_json: bool) -> Result<()> {
    if as_json {
        println!("{}", json!({"server": label, "model": s.model, "batch_scenario": r}));
        return Ok(());
    }
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    println!(
        "{label} · model {} · {} requests of {} tokens · interactive at concurrency {}",
        s.model, s.requests, s.max_tokens, s.concurrency
    );
    println!("{:<28} {:>9} {:>10} {:>9}", "", "wall s", "req/min", "tok/s");
    for k in ["interactive", "batch"] {
        let x = &r[k];
        println!(
            "{:<28} {:>9.1} {:>10.1} {:>9.1}",
            format!("sent {k}"),
            f(&x["wall_s"]),
            f(&x["requests_per_min"]),
            f(&x["tok_s"])
        );
    }
    let (a, b) = (&r["ttft_alone_ms"], &r["ttft_with_batch_ms"]);
    println!("interactive TTFT ({} probes, one at a time):", s.probes);
    println!(
        "  alone          p50 {:>6.0} ms  p95 {:>6.0} ms",
        f(&a["p50"]),
        f(&a["p95"])
    );
    println!(
        "  batch running  p50 {:>6.0} ms  p95 {:>6.0} ms  (p95 ratio {:.2}×)",
        f(&b["p50"]),
        f(&b["p95"]),
        f(&b["p95"]) / f(&a["p95"])
    );
    Ok(())
}
