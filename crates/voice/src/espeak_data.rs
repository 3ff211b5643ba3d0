//! The espeak-ng data Piper's phonemes come from, made readable by the 1.51 program.
//!
//! piper-tts 1.8.0 bundles espeak-ng at master commit 212928b (2025-03), whose IPA writer shows
//! the linking-j phoneme `;` as `ʲ` after an i-vowel before a vowel ("me at" `mˌiːʲ æt`, "real"
//! `ɹˈiːʲəl`): its commit 8afe77b made `prevPh(#i)` conditions false while writing IPA, so the
//! phoneme's `IF prevPh(#i) THEN ipa NULL` no longer hides it (audio is unaffected). The voice was
//! trained on those ids. Debian's 1.51 program runs the same phoneme programs correctly and
//! hides the glide; rewriting that one instruction in a copy of the 1.52 `phonindex` from
//! `ipa NULL` to `ipa ʲ` makes it print what Piper's build prints, pauses and all (the program
//! still drops the phoneme where no vowel follows or a pause intervenes).

use std::path::{Path, PathBuf};

use crate::{Result, VoiceError};

/// Byte offset of the `;` phoneme's IPA instruction in the pinned 1.52 `phonindex` (sha256
/// 093104ed…): `ipa NULL` (words 0x0d01 0x2000) becomes `ipa "ʲ"` (0x0d02, then U+02B2's UTF-8
/// bytes CA B2 as a little-endian word).
const GLIDE_AT: usize = 830;
const HIDDEN: [u8; 4] = [0x01, 0x0d, 0x00, 0x20];
const SHOWN: [u8; 4] = [0x02, 0x0d, 0xb2, 0xca];
const FILES: [&str; 5] = ["phondata", "phontab", "intonations", "en_dict", "lang/gmw/en-US"];

/// A sibling of `pulled` (a directory holding `espeak-ng-data`) whose `phonindex` shows the
/// linking glide, made once; every other file is copied unchanged.
pub fn with_linking_glide(pulled: &Path) -> Result<PathBuf> {
    let name = pulled
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let out = pulled.with_file_name(format!("{name}-piper"));
    let io = |e: std::io::Error| VoiceError::Io(format!("{}: {e}", out.display()));
    let index = std::fs::read(pulled.join("espeak-ng-data/phonindex")).map_err(io)?;
    let glide = patched(&index)?;
    if std::fs::read(out.join("espeak-ng-data/phonindex")).is_ok_and(|b| b == glide) {
        return Ok(out);
    }
    let tmp = pulled.with_file_name(format!("{name}-piper.partial"));
    let _ = std::fs::remove_dir_all(&tmp);
    for f in FILES {
        let to = tmp.join("espeak-ng-data").join(f);
        std::fs::create_dir_all(to.parent().expect("has a parent")).map_err(io)?;
        std::fs::copy(pulled.join("espeak-ng-data").join(f), &to).map_err(io)?;
    }
    std::fs::write(tmp.join("espeak-ng-data/phonindex"), glide).map_err(io)?;
    let _ = std::fs::remove_dir_all(&out);
    std::fs::rename(&tmp, &out).map_err(io)?;
    Ok(out)
}

/// `index` with the glide shown; an error when the bytes are not the pinned file's.
fn patched(index: &[u8]) -> Result<Vec<u8>> {
    let mut b = index.to_vec();
    match b.get(GLIDE_AT..GLIDE_AT + 4) {
        Some(w) if w == HIDDEN => b[GLIDE_AT..GLIDE_AT + 4].copy_from_slice(&SHOWN),
        _ => return Err(VoiceError::Format("phonindex is not espeak-ng 1.52's as pinned".into())),
    }
    Ok(b)
}
