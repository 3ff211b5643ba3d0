//! `tandem run` end to end on the mini tier: streaming text, the --json summary, stopping at the
//! end-of-generation token, and seeds that reproduce.

mod common;

use std::process::Command;

fn run(args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("run")
        .args(args)
        .output()
        .unwrap();
    let (o, e) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert!(out.status.success(), "tandem run {args:?} failed: {e}");
    (o, e)
}

#[test]
fn json_summary_and_stop_at_end_of_generation() {
    let (out, _) = run(&[
        "--model",
        "mini",
        "--temperature",
        "0",
        "--max-tokens",
        "24",
        "--json",
        "What is 2+2? Answer with the number only.",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["text"].as_str().unwrap().contains('4'), "{v}");
    assert_eq!(v["finish_reason"], "stop", "a short answer ends on <|im_end|>: {v}");
    let u = &v["usage"];
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
    );
    assert!(v["timings"]["decode_tokens_per_s"].as_f64().unwrap() >= 0.0);
}

#[test]
fn streams_text_then_a_one_line_summary() {
    let (out, err) = run(&["--model", "mini", "--max-tokens", "8", "--seed", "3", "Say hello."]);
    assert!(!out.trim().is_empty());
    let summary = err.lines().last().unwrap();
    for part in ["prompt tokens", "generated", "prefill", "decode", "TTFT"] {
        assert!(summary.contains(part), "{summary}");
    }
}

#[test]
fn the_same_seed_gives_the_same_text() {
    let args = [
        "--model",
        "mini",
        "--temperature",
        "1.0",
        "--seed",
        "1234",
        "--max-tokens",
        "12",
        "--json",
        "Name a colour.",
    ];
    let a: serde_json::Value = serde_json::from_str(run(&args).0.trim()).unwrap();
    let b: serde_json::Value = serde_json::from_str(run(&args).0.trim()).unwrap();
    assert_eq!(a["text"], b["text"]);
}

#[test]
fn bench_reports_llama_bench_fields() {
    // Its own TANDEM_HOME (the model cache linked in): `tandem bench` saves its run for `tandem
    // report`, and a test must not overwrite the user's measurements.
    let home = common::home_with_models();
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .env("TANDEM_HOME", home.path())
        .args(["bench", "-m", "mini", "-p", "8", "-n", "2", "-r", "2", "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tests = v.as_array().unwrap();
    assert_eq!(tests.len(), 2, "one prompt test and one generation test");
    assert_eq!(
        (tests[0]["n_prompt"].as_u64(), tests[0]["n_gen"].as_u64()),
        (Some(8), Some(0))
    );
    assert_eq!(
        (tests[1]["n_prompt"].as_u64(), tests[1]["n_gen"].as_u64()),
        (Some(0), Some(2))
    );
    assert!(
        home.path().join("results/bench-mini.json").exists(),
        "saved for tandem report"
    );
    for t in tests {
        assert_eq!(t["samples_ts"].as_array().unwrap().len(), 2);
        assert!(t["avg_ts"].as_f64().unwrap() > 0.0 && t["stddev_ts"].as_f64().unwrap() >= 0.0);
        assert!(
            t["max_rss_bytes"].as_u64().unwrap() > 100 << 20,
            "the model is resident"
        );
    }
}
