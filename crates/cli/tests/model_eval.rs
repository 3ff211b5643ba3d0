//! `tandem eval humaneval` end to end on a small slice: the pinned problems, real generation by the
//! mini, each answer run in the sandbox, a results file that a second run resumes from.

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
