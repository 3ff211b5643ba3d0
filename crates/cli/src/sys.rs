//! Small readings of the machine and shared flag parsing.

use anyhow::{bail, Result};
use tandem_model::KvType;

/// A `Key:   123 kB` value from a /proc file (meminfo, self/status), in bytes.
pub fn proc_kib(file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text
        .lines()
        .find(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kib| kib * 1024)
}

/// `--kv-type`: f16 or f32.
/// `--speech-precision` / `--precision`: `int8`, `exact`, or unset for the fastest this CPU runs.
pub fn speech_precision(s: Option<&str>) -> Result<tandem_audio::Precision> {
    use tandem_audio::Precision;
    match s {
        None | Some("auto") => Ok(Precision::fastest()),
        Some("int8") => Ok(Precision::Int8),
        Some("exact") => Ok(Precision::Exact),
        Some(other) => bail!("speech precision {other:?}: expected int8, exact or auto"),
    }
}

/// `--rope-scaling auto|none|yarn|yarn:F`, as every command that takes it reads it.
pub fn rope_scaling(s: &str) -> Result<tandem_model::RopeScaling> {
    s.parse().map_err(|e: String| anyhow::anyhow!("--rope-scaling {e}"))
}

pub fn kv_type(s: &str) -> Result<KvType> {
    match s {
        "f16" => Ok(KvType::F16),
        "f32" => Ok(KvType::F32),
        "q8_0" | "q8" => Ok(KvType::Q8_0),
        "q4_0" | "q4" => Ok(KvType::Q4_0),
        other => bail!("--kv-type {other:?}: expected f16, f32, q8_0 or q4_0"),
    }
}
