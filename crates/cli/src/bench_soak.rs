//! `tandem bench soak`: a long, mixed load on one server, to show that it stays steady. `streams`
//! clients loop for `minutes`; each request has a short (~15-token), a ~114-token or a
//! ~1,500-token prompt, unique from its first token (no prefix cache helps), and every
//! `disconnect_every`-th is dropped by its client after its first tokens. Each minute: requests
//! finished and dropped, 429s, failures, generated tokens per second and the server's resident
//! memory; at the end, once idle, the KV blocks still in use (`/metrics`, must be 0). Exits
//! non-zero on any failure but a 429, or on a block not returned.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

use crate::bench_serve::{load_client, prompt, shared_system, start_server};

#[derive(Args)]
pub struct BenchSoakArgs {
    /// Base URL of a running server; default: start tandem serve here with `--parallel STREAMS`.
    #[arg(long)]
    url: Option<String>,
    /// Model to request (and to serve, when tandem is started here).
    #[arg(long, default_value = "mini")]
    model: String,
    /// Clients, each with one request in flight at a time.
    #[arg(long, default_value_t = 32)]
    streams: usize,
    /// How long the load runs.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Tokens generated per request.
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    /// Every Nth request is dropped by its client after its first 4 tokens (0: none).
    #[arg(long, default_value_t = 5)]
    disconnect_every: usize,
    /// Seconds between report lines.
    #[arg(long, default_value_t = 60)]
    every: u64,
    #[arg(long)]
    json: bool,
}

/// What one request came to.
enum Outcome {
    Done(usize),
    Dropped(usize),
    Busy,
    Failed(String),
}

/// Counters of one report window.
#[derive(Default, Clone)]
struct Window {
    done: usize,
    dropped: usize,
    busy: usize,
    failed: usize,
    tokens: usize,
}

pub fn bench_soak(a: BenchSoakArgs) -> Result<()> {
    if a.streams == 0 || a.minutes <= 0.0 {
        bail!("--streams and --minutes must be positive");
    }
    let (url, server) = match &a.url {
        Some(u) => (u.trim_end_matches('/').to_string(), None),
        None => {
            let (u, s) = start_server(&a.model, a.streams, &[])?;
            (u, Some(s))
        }
    };
    let pid = server.as_ref().map(|s| s.pid());
    let (rt, client) = load_client(Duration::from_secs(900))?;
    let window = Arc::new(Mutex::new(Window::default()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let deadline = Instant::now() + Duration::from_secs_f64(a.minutes * 60.0);
    let rows = rt.block_on(async {
        // Warm-up: page the weights in before the clock matters.
        let _ = request(&client, &url, &a.model, usize::MAX, 4, None).await;
        let next = Arc::new(AtomicUsize::new(0));
        let mut clients = Vec::new();
        for _ in 0..a.streams {
            let (client, url, model) = (client.clone(), url.clone(), a.model.clone());
            let (next, window, failures) = (next.clone(), window.clone(), failures.clone());
            let (mt, every) = (a.max_tokens, a.disconnect_every);
            clients.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let drop_after = (every > 0 && i % every == every - 1).then_some(4);
                    let outcome = request(&client, &url, &model, i, mt, drop_after).await;
                    let mut w = window.lock().expect("window");
                    match outcome {
                        Outcome::Done(n) => (w.done, w.tokens) = (w.done + 1, w.tokens + n),
                        Outcome::Dropped(n) => (w.dropped, w.tokens) = (w.dropped + 1, w.tokens + n),
                        Outcome::Busy => w.busy += 1,
                        Outcome::Failed(e) => {
                            w.failed += 1;
                            failures.lock().expect("failures").push(e);
                        }
                    }
                }
            }));
        }
        let rows = report(&window, deadline, a.every, pid, a.json).await;
        for c in clients {
            c.await?;
        }
        anyhow::Ok(rows)
    })?;
    let in_use = rt.block_on(blocks_in_use(&client, &url))?;
    let failures = failures.lock().expect("failures").clone();
    summarise(&rows, &failures, in_use, a.json)
}

/// One streamed request; `drop_after`: stop reading (and close) after that many content chunks.
async fn request(
    client: &reqwest::Client,
    url: &str,
    model: &str,
    i: usize,
    max_tokens: usize,
    drop_after: Option<usize>,
) -> Outcome {
    let content = match i % 3 {
        0 => format!("Request {i}: name three rivers of Europe and one fact about each."),
        1 => prompt(i),
        _ => format!("Request {i}. {}\n\n{}", shared_system(1500), prompt(i)),
    };
    let body = json!({"model": model, "messages": [{"role": "user", "content": content}],
                      "max_tokens": max_tokens, "temperature": 0.7, "seed": i, "stream": true,
                      "stream_options": {"include_usage": true}});
    let resp = match client
        .post(format!("{url}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("request {i}: {e}")),
    };
    if resp.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Outcome::Busy;
    }
    if !resp.status().is_success() {
        let status = resp.status();
        return Outcome::Failed(format!(
            "request {i}: HTTP {status}: {}",
            resp.text().await.unwrap_or_default()
        ));
    }
    let (mut chunks, mut usage) = (0usize, None);
    let mut events = crate::sse::Events::new(resp);
    loop {
        let v = match events.next().await {
            Ok(Some(v)) => v,
            Ok(None) => break,
            Err(e) => return Outcome::Failed(format!("request {i}: stream: {e:#}")),
        };
        if v.get("error").is_some() {
            return Outcome::Failed(format!("request {i}: error event: {v}"));
        }
        if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
            usage = Some(n as usize);
        }
        if v["choices"][0]["delta"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
        {
            chunks += 1;
            if drop_after.is_some_and(|d| chunks >= d) {
                return Outcome::Dropped(chunks);
            }
        }
    }
    Outcome::Done(usage.unwrap_or(chunks))
}

/// A line per `every` seconds until the deadline; the rows for the summary.
async fn report(
    window: &Mutex<Window>,
    deadline: Instant,
    every: u64,
    pid: Option<u32>,
    json: bool,
) -> Vec<serde_json::Value> {
    let (start, mut rows) = (Instant::now(), Vec::new());
    if !json {
        println!(
            "{:>6} {:>6} {:>8} {:>5} {:>7} {:>9} {:>9}",
            "min", "done", "dropped", "429", "failed", "tok/s", "RSS MiB"
        );
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let nap = left.min(Duration::from_secs(every.max(1)));
        tokio::time::sleep(nap).await;
        let w = std::mem::take(&mut *window.lock().expect("window"));
        let row = json!({"minute": start.elapsed().as_secs_f64() / 60.0, "done": w.done, "dropped": w.dropped,
                         "busy_429": w.busy, "failed": w.failed, "tok_s": w.tokens as f64 / nap.as_secs_f64().max(1e-3),
                         "rss_mib": pid.and_then(rss_mib)});
        if json {
            println!("{row}");
        } else {
            println!(
                "{:>6.1} {:>6} {:>8} {:>5} {:>7} {:>9.1} {:>9}",
                row["minute"].as_f64().unwrap_or(0.0),
                w.done,
                w.dropped,
                w.busy,
                w.failed,
                row["tok_s"].as_f64().unwrap_or(0.0),
                row["rss_mib"].as_u64().map_or("n/a".into(), |m| m.to_string())
            );
        }
        rows.push(row);
        if left <= nap {
            return rows;
        }
    }
}

/// Resident memory of process `pid` (Linux `/proc`), MiB.
fn rss_mib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// The sum of `tandem_kv_cache_blocks_in_use` over the server's models, after it has gone idle
/// (waits up to 30 s for dropped streams to be noticed).
async fn blocks_in_use(client: &reqwest::Client, url: &str) -> Result<f64> {
    let mut sum = f64::NAN;
    for _ in 0..60 {
        let text = client.get(format!("{url}/metrics")).send().await?.text().await?;
        sum = text
            .lines()
            .filter(|l| l.starts_with("tandem_kv_cache_blocks_in_use"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if sum == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(sum)
}

fn summarise(rows: &[serde_json::Value], failures: &[String], in_use: f64, json: bool) -> Result<()> {
    let tok: Vec<f64> = rows.iter().filter_map(|r| r["tok_s"].as_f64()).collect();
    let rss: Vec<u64> = rows.iter().filter_map(|r| r["rss_mib"].as_u64()).collect();
    let sum = |k: &str| rows.iter().filter_map(|r| r[k].as_u64()).sum::<u64>();
    let doc = json!({"windows": rows.len(), "done": sum("done"), "dropped": sum("dropped"),
                     "busy_429": sum("busy_429"), "failed": failures.len(),
                     "tok_s_min": tok.iter().copied().fold(f64::INFINITY, f64::min),
                     "tok_s_max": tok.iter().copied().fold(0.0, f64::max),
                     "rss_first_mib": rss.first(), "rss_last_mib": rss.last(), "rss_max_mib": rss.iter().max(),
                     "kv_blocks_in_use_at_end": in_use, "first_failures": &failures[..failures.len().min(5)]});
    if json {
        println!("{doc}");
    } else {
        println!("{}", serde_json::to_string_pretty(&doc).context("summary")?);
    }
    if !failures.is_empty() {
        bail!("{} requests failed (first: {})", failures.len(), failures[0]);
    }
    if in_use != 0.0 {
        bail!("{in_use} KV blocks still in use after the load ended");
    }
    Ok(())
}
