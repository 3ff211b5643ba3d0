//! Whisper's vocabulary (`vocabulary.txt`: one GPT-2 byte-level token per line) and its special
//! tokens, found by name so English-only and multilingual models both work.

use std::collections::HashMap;

use crate::{AudioError, Result};

pub struct Vocab {
    /// Each token's bytes (special tokens: their name's bytes).
    bytes: Vec<Vec<u8>>,
    by_name: HashMap<String, u32>,
    pub eot: u32,
    pub sot: u32,
    pub transcribe: u32,
    pub translate: Option<u32>,
    pub no_timestamps: u32,
    /// `<|startofprev|>`: what precedes a prompt.
    pub start_of_prev: Option<u32>,
    /// `<|0.00|>`: timestamp i is `timestamp_begin + i`, i × 20 ms.
    pub timestamp_begin: u32,
    pub no_speech: Option<u32>,
    /// Language tokens (`<|en|>` …) in id order; empty for English-only models.
    pub languages: Vec<(String, u32)>,
}

/// GPT-2's byte ↔ printable character table: bytes that are printable stay themselves, the
/// others map to U+0100 onwards in order.
fn byte_decoder() -> HashMap<char, u8> {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
    let mut next = 256u32;
    (0..=255u8)
        .map(|b| {
            if printable(b) {
                (char::from(b), b)
            } else {
                let c = char::from_u32(next).expect("below the surrogates");
                next += 1;
                (c, b)
            }
        })
        .collect()
}

impl Vocab {
    pub fn parse(text: &str) -> Result<Self> {
        let dec = byte_decoder();
        let lines: Vec<&str> = text.lines().collect();
        let mut by_name = HashMap::new();
        let bytes = lines
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if t.starts_with("<|") && t.ends_with("|>") {
                    by_name.insert(t.to_string(), i as u32);
                    return t.as_bytes().to_vec();
                }
                t.chars().map(|c| dec.get(&c).copied().unwrap_or(b'?')).collect()
            })
            .collect();
        let id = |n: &str| {
            by_name
                .get(n)
                .copied()
                .ok_or_else(|| AudioError::Format(format!("vocabulary.txt has no {n}")))
        };
        let mut languages: Vec<(String, u32)> = by_name
            .iter()
            .filter_map(|(n, &i)| {
                let code = n.strip_prefix("<|")?.strip_suffix("|>")?;
                (code.len() <= 3
                    && code.chars().all(|c| c.is_ascii_lowercase())
                    && i > id("<|startoftranscript|>").ok()?)
                .then(|| (code.to_string(), i))
            })
            .collect();
        languages.sort_by_key(|l| l.1);
        Ok(Self {
            eot: id("<|endoftext|>")?,
            sot: id("<|startoftranscript|>")?,
            transcribe: id("<|transcribe|>")?,
            translate: id("<|translate|>").ok(),
            no_timestamps: id("<|notimestamps|>")?,
            start_of_prev: id("<|startofprev|>").ok(),
            timestamp_begin: id("<|0.00|>")?,
            no_speech: id("<|nospeech|>").or_else(|_| id("<|nocaptions|>")).ok(),
            languages,
            bytes,
            by_name,
        })
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn id(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// The bytes of one ordinary token (empty for specials and timestamps).
    pub fn token_bytes(&self, t: u32) -> &[u8] {
        match t < self.eot {
            true => self.bytes.get(t as usize).map_or(&[], |b| b.as_slice()),
            false => &[],
        }
    }

    /// The text of ordinary tokens (specials and timestamps are skipped); invalid UTF-8 across a
    /// cut becomes U+FFFD.
    pub fn text(&self, tokens: &[u32]) -> String {
        let mut out = Vec::new();
        for &t in tokens.iter().filter(|&&t| t < self.eot) {
            if let Some(b) = self.bytes.get(t as usize) {
                out.extend_from_slice(b);
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}
