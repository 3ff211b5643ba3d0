//! `tandem eval humaneval` end to end on a small slice: the pinned problems, real generation by the
//! mini, each answer run in the sandbox, a results file that a second run resumes from.

mod common;

use std::process::Command;

#[test]
fn humaneval_slice_runs_scores_and_resumes() {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: the eval sandbox needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("he.jsonl");
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args([
                "eval",
                "humaneval",
                "--model",
                "mini",
                "--limit",
                "5",
                "--json",
                "--results",
            ])
            .arg(&results)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = run();
    assert_eq!(first["n"], 5);
    let p = first["pass_at_1"].as_f64().unwrap();
    // The mini solves most of the first problems; an inference bug would sink this.
    assert!(p >= 0.4, "pass@1 {p} on the first five problems: {first}");
    assert_eq!(std::fs::read_to_string(&results).unwrap().lines().count(), 5);
    let t = std::time::Instant::now();
    let again = run();
    assert_eq!(again["pass_at_1"], first["pass_at_1"]);
    assert!(
        t.elapsed().as_secs() < 20,
        "the second run resumes from the file instead of generating"
    );
}

/// Runs the tandem binary with `home` as TANDEM_HOME; returns stdout (the command must succeed).
fn tandem(home: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .env("TANDEM_HOME", home)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tandem {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn mc_slice_scores_resumes_and_reaches_the_report() {
    let home = common::home_with_models();
    let slice = [
        "eval",
        "mc",
        "--suite",
        "understanding",
        "--task",
        "date_understanding",
        "--limit",
        "8",
        "--model",
        "mini",
        "--json",
    ];
    let first: serde_json::Value = serde_json::from_str(&tandem(home.path(), &slice)).unwrap();
    assert_eq!(first["n"], 8, "{first}");
    assert_eq!(first["tasks"]["date_understanding"]["n"], 8, "{first}");
    let file = home.path().join("eval/mc-understanding-mini.jsonl");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8);
    for l in &lines {
        let lps: Vec<f64> = l["logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!(
            (5..=6).contains(&lps.len()),
            "date_understanding has five or six choices: {l}"
        );
        assert!(lps.iter().all(|&x| x.is_finite() && x < 0.0), "{l}");
    }
    // Scoring is deterministic: a fresh file gets the same log-likelihoods bit for bit.
    let other = home.path().join("again.jsonl");
    let mut args = slice.to_vec();
    args.extend(["--results", other.to_str().unwrap()]);
    tandem(home.path(), &args);
    assert_eq!(
        std::fs::read_to_string(&other).unwrap(),
        std::fs::read_to_string(&file).unwrap()
    );
    // A second run over the same file scores nothing new.
    let t = std::time::Instant::now();
    let again: serde_json::Value = serde_json::from_str(&tandem(home.path(), &slice)).unwrap();
    assert_eq!(again["acc"], first["acc"]);
    assert!(t.elapsed().as_secs() < 5, "resumed from the file");

    // The report finds the measurement, says where it came from, and how to make the missing ones.
    tandem(
        home.path(),
        &["bench", "-m", "mini", "-p", "16", "-n", "4", "-d", "0", "-r", "1"],
    );
    let report: serde_json::Value = serde_json::from_str(&tandem(home.path(), &["report", "--json"])).unwrap();
    let mini = &report["tiers"]["mini"];
    assert_eq!(mini["understanding"]["value"]["n"], 8, "{mini}");
    assert_eq!(mini["understanding"]["value"]["acc"], first["acc"]);
    assert!(mini["understanding"]["source"]
        .as_str()
        .unwrap()
        .ends_with("mc-understanding-mini.jsonl"));
    let params = mini["parameters"]["value"].as_u64().unwrap();
    assert!((480_000_000..510_000_000).contains(&params), "{params}");
    assert!(mini["decode_tok_s"]["value"].as_f64().unwrap() > 0.0, "{mini}");
    assert!(mini["decode_tok_s"]["text"].as_str().unwrap().contains("tg4"), "{mini}");
    assert!(mini["decode_tok_s"]["command"]
        .as_str()
        .unwrap()
        .starts_with("tandem bench -m mini"));
    assert!(mini["humaneval"]["value"].is_null());
    assert_eq!(mini["humaneval"]["command"], "tandem eval humaneval --model mini");
    assert_eq!(mini["multimodal"]["value"], serde_json::Value::Null);
    assert_eq!(
        mini["safety"]["command"], "tandem eval safety",
        "no safety run yet: {mini}"
    );
    assert!(mini["price"]["value"]["output"].as_f64().unwrap() > 0.0);
    let table = tandem(home.path(), &["report"]);
    assert!(table.contains("| language understanding (BIG-bench MC) |"), "{table}");
    assert!(
        table.contains("missing: run `tandem eval humaneval --model mini`"),
        "{table}"
    );

    // A full `tandem eval safety` leaves its rates where the report reads them (written here in
    // the shape `results::save` gives them: the run itself takes over an hour).
    let rows = serde_json::json!([
        {"tier": "mini", "guards": "off", "attack_success_rate": 0.269, "benign_refusal_rate": 0.13},
        {"tier": "mini", "guards": "on", "attack_success_rate": 0.011, "benign_refusal_rate": 0.205,
         "tally": {"benign": 200, "guarded_benign": 19}},
    ]);
    let saved = serde_json::json!({"command": "tandem eval safety", "date": "2026-11-28", "data": {"results": rows}});
    std::fs::write(home.path().join("results/eval-safety.json"), saved.to_string()).unwrap();
    let report: serde_json::Value = serde_json::from_str(&tandem(home.path(), &["report", "--json"])).unwrap();
    let safety = &report["tiers"]["mini"]["safety"];
    assert_eq!(
        safety["text"], "1.1% / 20.5% (9.5% by the guards); off: 26.9% / 13.0%",
        "{safety}"
    );
    assert_eq!(safety["value"]["benign_stopped_by_guards_rate"], 0.095);
    assert_eq!(safety["value"]["benign_refusal_rate"], 0.205);
    assert_eq!(report["tiers"]["flagship"]["safety"]["command"], "tandem eval safety");
    assert!(report["tiers"]["flagship"]["safety"]["value"].is_null());
}
