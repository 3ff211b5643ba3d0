//! `tandem bench store`: what the state costs per request on each backend — usage records written
//! per second (one transaction each, as the server writes them), batch lines claimed and answered
//! per second (a claim, then the result with its usage), and on PostgreSQL the shared rate
//! limiter's admission + settlement per request. SQLite runs in a temporary directory; PostgreSQL in
//! a scratch database created beside the one `--database-url` names and dropped afterwards, so
//! no real state is touched.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use tandem_store::{BatchLine, BatchRecord, LineOutcome, LineResult, PgStore, SqliteStore, Store, UsageRecord};

use crate::Home;

#[derive(Args)]
pub struct BenchStoreArgs {
    /// Operations per measure.
    #[arg(short = 'n', long, default_value_t = 2000)]
    ops: usize,
    /// A PostgreSQL server to measure too (a scratch database is created there and dropped).
    #[arg(long, env = "TANDEM_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    #[arg(long)]
    json: bool,
}

/// One backend's figures.
struct Figures {
    usage_per_s: f64,
    lines_per_s: f64,
    /// Median milliseconds of one admission plus its settlement (shared stores only).
    limiter_ms: Option<f64>,
}

pub fn bench_store(_home: &Home, a: BenchStoreArgs) -> Result<()> {
    let mut rows = Vec::new();
    let dir = tempfile::tempdir()?;
    let lite = SqliteStore::open(&dir.path().join("bench.sqlite"))?;
    rows.push(("sqlite", measure(&lite, a.ops)?));
    if let Some(url) = a.database_url.as_deref() {
        let scratch = Scratch::create(url)?;
        let pg = PgStore::open(&scratch.url)?;
        rows.push(("postgres", measure(&pg, a.ops)?));
        drop(pg);
        scratch.drop_db()?;
    }
    print(&rows, a.ops, a.json);
    Ok(())
}

fn measure(s: &dyn Store, n: usize) -> Result<Figures> {
    let t = Instant::now();
    for i in 0..n {
        s.insert_usage(&usage(i, None))?;
    }
    let usage_per_s = n as f64 / t.elapsed().as_secs_f64();

    s.insert_batch(&BatchRecord::new(
        "batch_bench".into(),
        "/v1/chat/completions".into(),
        "file-bench".into(),
        0,
        u64::MAX / 2,
    ))?;
    let lines: Vec<BatchLine> = (1..=n as u32)
        .map(|i| BatchLine {
            line: i,
            custom_id: format!("r{i}"),
            body: "{}".into(),
        })
        .collect();
    s.start_batch("batch_bench", "mini", &lines, 1)?;
    let t = Instant::now();
    loop {
        let got = s.claim_lines("batch_bench", "bench", 1, 10, 100)?;
        let Some(&line) = got.first() else { break };
        let r = LineResult {
            line,
            outcome: LineOutcome::Completed,
            json: "{}".into(),
        };
        s.complete_line("batch_bench", line, &r, Some(&usage(line as usize, Some(line))))?;
    }
    let lines_per_s = n as f64 / t.elapsed().as_secs_f64();

    let limiter_ms = if s.is_shared() {
        let mut ms: Vec<f64> = (0..n.min(1000))
            .map(|i| {
                let t = Instant::now();
                let id = s.rate_admit(&format!("key_{}", i % 8), 60.0, 100, &mut |held| held.len() < 1_000_000)?;
                if let Some(id) = id {
                    s.rate_settle(id, 42)?;
                }
                Ok(t.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<tandem_store::Result<_>>()?;
        ms.sort_by(f64::total_cmp);
        Some(ms[ms.len() / 2])
    } else {
        None
    };
    Ok(Figures {
        usage_per_s,
        lines_per_s,
        limiter_ms,
    })
}

fn usage(i: usize, line: Option<u32>) -> UsageRecord {
    UsageRecord {
        created_at: 1_800_000_000 + i as u64,
        request_id: format!("req_bench_{i}"),
        batch_id: line.map(|_| "batch_bench".into()),
        line,
        model: "qwen2.5-coder-0.5b-instruct".into(),
        tier: "mini".into(),
        prompt_tokens: 114,
        cached_tokens: 0,
        completion_tokens: 64,
        cost: 0.00004,
        key_id: None,
        latency_ms: 900,
        status: 200,
        project_id: None,
    }
}

fn print(rows: &[(&str, Figures)], n: usize, as_json: bool) {
    if as_json {
        let v: Vec<_> = rows
            .iter()
            .map(|(b, f)| {
                json!({"backend": b, "ops": n, "usage_records_per_s": f.usage_per_s,
                       "batch_lines_per_s": f.lines_per_s, "shared_limiter_ms_p50": f.limiter_ms})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return;
    }
    println!(
        "| backend | usage records/s | batch lines claimed + answered/s | shared rate limit, ms per request (p50) |"
    );
    println!("|---|---:|---:|---:|");
    for (b, f) in rows {
        let lim = f.limiter_ms.map_or("— (in memory)".to_string(), |m| format!("{m:.3}"));
        println!("| {b} | {:.0} | {:.0} | {lim} |", f.usage_per_s, f.lines_per_s);
    }
    println!("\n{n} operations each; one transaction per write, as the server writes them.");
}

/// A database created for the bench on the server `url` names, dropped afterwards.
struct Scratch {
    admin: String,
    name: String,
    url: String,
}

impl Scratch {
    fn create(url: &str) -> Result<Self> {
        let name = format!("tandem_bench_{}", std::process::id());
        let mut c = postgres::Client::connect(url, postgres::NoTls).with_context(|| "connecting to --database-url")?;
        // Two statements, two implicit transactions: CREATE/DROP DATABASE refuse to share one.
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))?;
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .context("creating a scratch database (the bench needs CREATEDB there)")?;
        Ok(Self {
            admin: url.to_string(),
            url: with_database(url, &name),
            name,
        })
    }

    fn drop_db(self) -> Result<()> {
        let mut c = postgres::Client::connect(&self.admin, postgres::NoTls)?;
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))?;
        Ok(())
    }
}

/// `postgres://u@h:5432/db?x=y` with the database `name` instead of `db`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_scratch_database_replaces_the_named_one() {
        let w = super::with_database;
        assert_eq!(w("postgres://u:p@h:5432/app", "b"), "postgres://u:p@h:5432/b");
        assert_eq!(
            w("postgres://u@h/app?sslmode=disable", "b"),
            "postgres://u@h/b?sslmode=disable"
        );
        assert_eq!(w("postgres://u@h", "b"), "postgres://u@h/b");
    }
}
