//! Measurements kept under `$TANDEM_HOME` for `tandem report`: the benchmarks write
//! `results/NAME.json` (the latest run of each kind and model) with the command line that produced
//! them and the date; the evaluations keep their per-item JSONL files under `eval/`.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::{tiers, Home};

/// The name measurements of `spec` are filed under: the tier name for a tier (by name or id), the
/// file name otherwise.
pub fn key(spec: &str) -> String {
    match tiers::find(spec) {
        Some(t) => t.name.to_string(),
        None => spec.replace(['/', '\\'], "_"),
    }
}

pub fn dir(home: &Home) -> PathBuf {
    home.0.join("results")
}

/// The command line of this process, as a user would type it again.
pub fn command_line() -> String {
    let mut args = std::env::args();
    args.next();
    std::iter::once("tandem".to_string())
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Writes `results/NAME.json` (through a temporary file and a rename, so a reader never sees half
/// a file): `{"command", "date", "unix_time", "data"}`.
pub fn save(home: &Home, name: &str, data: Value) -> Result<PathBuf> {
    let d = dir(home);
    std::fs::create_dir_all(&d)?;
    let path = d.join(format!("{name}.json"));
    let tmp = d.join(format!(".{name}.json.tmp"));
    let t = now();
    let doc = json!({"command": command_line(), "date": tandem_store::utc_date(t), "unix_time": t, "data": data});
    std::fs::write(&tmp, serde_json::to_string_pretty(&doc)?)?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// A saved measurement: (its file, the whole document), or None if it was never made.
pub fn load(home: &Home, name: &str) -> Option<(PathBuf, Value)> {
    let path = dir(home).join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).ok()?;
    Some((path, serde_json::from_str(&text).ok()?))
}
