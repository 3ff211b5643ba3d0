//! `tandem bench serve`: a load generator for any OpenAI-compatible server (tandem's own, or
//! llama-server for comparison). At each concurrency level it keeps N streaming chat requests in
//! flight and reports time to first token and inter-token latency (p50/p95) and aggregate decode
//! throughput. Without `--url` it starts `tandem serve` itself on a free 127.0.0.1 port.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

#[derive(Args)]
pub struct BenchServeArgs {
    /// Base URL of a running server (e.g. http://127.0.0.1:8080); default: start tandem serve.
    #[arg(long)]
    url: Option<String>,
    /// Model to request (and to serve, when tandem is started here).
    #[arg(long, default_value = "mini")]
    model: String,
    /// Comma-separated concurrency levels.
    #[arg(long, default_value = "1,2,4,8")]
    concurrency: String,
    /// Requests per level (default: 2 × concurrency, at least 4).
    #[arg(long)]
    requests: Option<usize>,
    /// Tokens generated per request.
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    #[arg(long)]
    json: bool,
    /// Label for the table (e.g. "llama-server").
    #[arg(long)]
    label: Option<String>,
    /// The batch scenario instead of the levels: N requests sent interactively and then as one
    /// batch (throughput of each), and interactive TTFT with and without a batch running.
    #[arg(long)]
    batch: Option<usize>,
    /// Interactive requests timed in the batch scenario, and alone in the long-prompt one (one at a time).
    #[arg(long, default_value_t = 12)]
    probes: usize,
    /// Put the same system prompt of about this many tokens before every request's own (unique)
    /// message, as an application with a fixed instruction block does: what a prefix cache saves.
    #[arg(long, default_value_t = 0)]
    shared_prefix: usize,
    /// The long-prompt scenario instead of the levels: `--probes` short requests one at a time
    /// alone, then short requests one after another for as long as one request with a unique
    /// prompt of about N tokens prefills (their TTFT and token gaps both times, and the long
    /// request's own TTFT).
    #[arg(long)]
    long_prompt: Option<usize>,
}

/// A system prompt of about `tokens` tokens (~12 tokens a sentence), the same on every call.
pub fn shared_system(tokens: usize) -> String {
    let sentences = [
        "You are the code-review assistant of a small team that ships a Rust web service.",
        "Answer in plain English, cite the line you mean, and prefer the standard library.",
        "Point out correctness problems before style, and say how to test every fix you suggest.",
        "Never invent an API; when unsure, say so and propose how to find out.",
    ];
    let mut out = String::new();
    for i in 0..tokens.div_ceil(16) {
        out.push_str(&format!("Rule {}: {} ", i + 1, sentences[i % sentences.len()]));
    }
    out
}

/// A ~114-token instruction (the size BENCHMARKS.md's TTFT anchor uses), made unique per request
/// at its start so no server can answer it from a prefix cache.
pub fn prompt(i: usize) -> String {
    format!(
        "Request {i}. You are reviewing a pull request for a small Rust web service. The service exposes a JSON API for \
         creating, listing and deleting notes, stores them in SQLite, and uses tokio and axum. The change adds pagination \
         to the list endpoint, a new index on the created_at column, and a migration. Write a detailed review: point out \
         possible bugs in the pagination logic (off-by-one errors, stable ordering, cursor encoding), discuss whether the \
         migration is safe to run on a live database, and suggest tests that should be added. Be specific and thorough."
    )
}

#[derive(Default)]
pub struct RequestStats {
    pub ttft: f64,
    pub gaps: Vec<f64>,
    pub tokens: usize,
}

pub async fn one(
    client: &reqwest::Client,
    url: &str,
    model: &str,
    i: usize,
    max_tokens: usize,
    system: Option<&str>,
) -> Result<RequestStats> {
    let mut messages = vec![json!({"role": "user", "content": prompt(i)})];
    if let Some(s) = system {
        messages.insert(0, json!({"role": "system", "content": s}));
    }
    let body = json!({"model": model, "messages": messages, "max_tokens": max_tokens,
                      "temperature": 0.7, "seed": i, "stream": true, "stream_options": {"include_usage": true}});
    let start = Instant::now();
    let resp = client
        .post(format!("{url}/v1/chat/completions"))
        .json(&body)
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("HTTP {}: {}", resp.status(), resp.text().await.unwrap_or_default());
    }
    let mut stats = RequestStats::default();
    let mut last: Option<Instant> = None;
    let mut usage_tokens = None;
    let mut events = crate::sse::Events::new(resp);
    while let Some(v) = events.next().await? {
        if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
            usage_tokens = Some(n as usize);
        }
        let content = v["choices"][0]["delta"]["content"].as_str().unwrap_or("");
        if content.is_empty() {
            continue;
        }
        let now = Instant::now();
        match last {
            None => stats.ttft = (now - start).as_secs_f64(),
            Some(l) => stats.gaps.push((now - l).as_secs_f64()),
        }
        last = Some(now);
        stats.tokens += 1;
    }
    if let Some(n) = usage_tokens {
        stats.tokens = n;
    }
    Ok(stats)
}

pub fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// A `tandem serve` started for the benchmark, with a throwaway data directory; killed and
/// removed on drop.
pub struct Spawned(Child, PathBuf);
impl Spawned {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}
impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// A 2-thread runtime and an HTTP client for driving a server, each request limited to `timeout`.
/// No connection reuse: some servers close idle keep-alive connections, which a pooled client
/// only notices when its next request fails.
pub fn load_client(timeout: Duration) -> Result<(tokio::runtime::Runtime, reqwest::Client)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(0)
        .build()?;
    Ok((rt, client))
}

/// The server at `url`, or a `tandem serve` started here on a free port with `parallel` slots.
pub fn connect_or_start(url: Option<&str>, model: &str, parallel: usize) -> Result<(String, Option<Spawned>)> {
    if let Some(u) = url {
        return Ok((u.trim_end_matches('/').to_string(), None));
    }
    let (url, server) = start_server(model, parallel, &[])?;
    Ok((url, Some(server)))
}

/// A `tandem serve` of `models` started here on a free port with `parallel` slots, a throwaway
/// data directory and the `extra` flags; its URL. It logs warnings only (a request log line per
/// request would bury the caller's progress bar) unless RUST_LOG says otherwise.
pub fn start_server(models: &str, parallel: usize, extra: &[&str]) -> Result<(String, Spawned)> {
    static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let data = std::env::temp_dir().join(format!("tandem-bench-{}-{n}", std::process::id()));
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["serve", "--port", "0", "--models", models, "--parallel"])
        .arg(parallel.max(1).to_string())
        .args(extra)
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let out = child.stdout.take().expect("piped");
    let server = Spawned(child, data);
    for line in std::io::BufReader::new(out).lines() {
        let line = line?;
        if let Some(u) = line.strip_prefix("tandem: listening on ") {
            return Ok((u.to_string(), server));
        }
    }
    bail!("tandem serve did not start")
}

pub fn bench_serve(home: &crate::Home, a: BenchServeArgs) -> Result<()> {
    let levels: Vec<usize> = a
        .concurrency
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()
        .context("--concurrency: comma-separated integers")?;
    let max_c = levels.iter().copied().max().unwrap_or(1);
    let (url, _server) = connect_or_start(a.url.as_deref(), &a.model, max_c)?;
    let label = a
        .label
        .clone()
        .unwrap_or_else(|| if a.url.is_some() { url.clone() } else { "tandem".into() });
    let (rt, client) = load_client(Duration::from_secs(600))?;
    if let Some(n) = a.batch {
        let w = crate::bench_batch::Scenario {
            model: a.model.clone(),
            requests: n,
            max_tokens: a.max_tokens,
            concurrency: max_c,
            probes: a.probes,
        };
        let r = rt.block_on(w.run(&client, &url))?;
        return crate::bench_batch::print(&label, &w, &r, a.json);
    }
    if let Some(tokens) = a.long_prompt {
        let w = crate::bench_long::Scenario {
            model: a.model.clone(),
            tokens,
            probes: a.probes,
        };
        let r = rt.block_on(w.run(&client, &url))?;
        crate::bench_long::print(&label, &w, &r, a.json);
        return Ok(());
    }
    let mut rows = Vec::new();
    rt.block_on(async {
        // Warm-up: page the weights in (and compute the shared system prompt once).
        let system = (a.shared_prefix > 0).then(|| shared_system(a.shared_prefix));
        one(&client, &url, &a.model, 1_000_000, 4, system.as_deref()).await?;
        let mut next_id = 0usize;
        for &c in &levels {
            let n = a.requests.unwrap_or((2 * c).max(4));
            let start = Instant::now();
            let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(c));
            let mut tasks = Vec::new();
            for _ in 0..n {
                let (client, url, model, sem) = (client.clone(), url.clone(), a.model.clone(), sem.clone());
                let system = system.clone();
                next_id += 1;
                let id = next_id;
                let mt = a.max_tokens;
                tasks.push(tokio::spawn(async move {
                    let _p = sem.acquire().await.expect("semaphore open");
                    one(&client, &url, &model, id, mt, system.as_deref()).await
                }));
            }
            let mut ttft = Vec::new();
            let mut gaps = Vec::new();
            let mut tokens = 0;
            for t in tasks {
                let s = t.await??;
                ttft.push(s.ttft);
                gaps.extend(s.gaps);
                tokens += s.tokens;
            }
            let wall = start.elapsed().as_secs_f64();
            rows.push(json!({
                "concurrency": c, "requests": n, "completion_tokens": tokens, "wall_s": wall,
                "ttft_p50_ms": pct(&mut ttft, 0.5) * 1e3, "ttft_p95_ms": pct(&mut ttft, 0.95) * 1e3,
                "itl_p50_ms": pct(&mut gaps, 0.5) * 1e3, "itl_p95_ms": pct(&mut gaps, 0.95) * 1e3,
                "aggregate_tok_s": tokens as f64 / wall,
            }));
        }
        anyhow::Ok(())
    })?;
    let doc = json!({"server": label, "model": a.model, "max_tokens": a.max_tokens,
                     "shared_prefix": a.shared_prefix, "levels": rows});
    if a.url.is_none() && a.shared_prefix == 0 {
        // tandem measured itself: keep it for `tandem report` (TTFT).
        let saved = crate::results::save(home, &format!("serve-{}", crate::results::key(&a.model)), doc.clone())?;
        eprintln!("tandem: results saved to {}", saved.display());
    }
    if a.json {
        println!("{}", doc);
    } else {
        println!("{label} · model {} · {} tokens per request", a.model, a.max_tokens);
        if a.shared_prefix > 0 {
            println!(
                "every request after a shared system prompt of ~{} tokens",
                a.shared_prefix
            );
        }
        println!(
            "{:>5} {:>5} {:>10} {:>10} {:>9} {:>9} {:>10}",
            "conc", "reqs", "TTFT p50", "TTFT p95", "ITL p50", "ITL p95", "agg tok/s"
        );
        for r in &rows {
            println!(
                "{:>5} {:>5} {:>8.0}ms {:>8.0}ms {:>7.1}ms {:>7.1}ms {:>10.1}",
                r["concurrency"].as_u64().unwrap_or(0),
                r["requests"].as_u64().unwrap_or(0),
                r["ttft_p50_ms"].as_f64().unwrap_or(0.0),
                r["ttft_p95_ms"].as_f64().unwrap_or(0.0),
                r["itl_p50_ms"].as_f64().unwrap_or(0.0),
                r["itl_p95_ms"].as_f64().unwrap_or(0.0),
                r["aggregate_tok_s"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(())
}
