//! BERT's tokenizer, configured by the model's `tokenizer.json` (`BertNormalizer`,
//! `BertPreTokenizer`, `WordPiece`, `[CLS] … [SEP]`). Written here rather than taken from the
//! `tokenizers` crate: these ~150 lines are the whole of what this model uses, and that crate
//! brings a regex engine and C code for the pre-tokenizers BERT does not have.
//!
//! Steps, as HF tokenizers runs them: clean (drop NUL, U+FFFD and control characters; any
//! whitespace becomes a space), space out CJK ideographs, strip accents (NFD, drop marks — on by
//! default when lower-casing), lower-case; split on whitespace and around every punctuation
//! character; each word into the longest vocabulary pieces left to right (`##` continues a word),
//! a word with no such split (or over 100 characters) being `[UNK]`.

use std::collections::HashMap;

use serde_json::Value;
use unicode_general_category::{get_general_category, GeneralCategory as Gc};
use unicode_normalization::UnicodeNormalization;

use crate::{EmbedError, Result};

#[derive(Debug, Clone)]
pub struct WordPiece {
    vocab: HashMap<String, u32>,
    unk: u32,
    cls: u32,
    sep: u32,
    prefix: String,
    max_word_chars: usize,
    clean_text: bool,
    chinese: bool,
    strip_accents: bool,
    lowercase: bool,
}

fn bad(what: &str) -> EmbedError {
    EmbedError::Format(format!("tokenizer.json: {what}"))
}

impl WordPiece {
    /// Reads a `tokenizer.json` of a WordPiece model with a BERT normalizer.
    pub fn from_json(text: &str) -> Result<Self> {
        let t: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
        let model = &t["model"];
        if model["type"] != "WordPiece" {
            return Err(bad("the model is not WordPiece"));
        }
        let vocab: HashMap<String, u32> = model["vocab"]
            .as_object()
            .ok_or_else(|| bad("no vocab"))?
            .iter()
            .map(|(k, v)| Some((k.clone(), u32::try_from(v.as_u64()?).ok()?)))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("a vocab id is not a number"))?;
        let id = |tok: &str| vocab.get(tok).copied().ok_or_else(|| bad(&format!("no {tok} token")));
        let norm = &t["normalizer"];
        if norm["type"] != "BertNormalizer" {
            return Err(bad("the normalizer is not BertNormalizer"));
        }
        let flag = |k: &str, default: bool| norm[k].as_bool().unwrap_or(default);
        let lowercase = flag("lowercase", true);
        Ok(Self {
            unk: id(model["unk_token"].as_str().unwrap_or("[UNK]"))?,
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            prefix: model["continuing_subword_prefix"].as_str().unwrap_or("##").to_string(),
            max_word_chars: model["max_input_chars_per_word"].as_u64().unwrap_or(100) as usize,
            clean_text: flag("clean_text", true),
            chinese: flag("handle_chinese_chars", true),
            // `strip_accents: null` follows `lowercase`.
            strip_accents: norm["strip_accents"].as_bool().unwrap_or(lowercase),
            lowercase,
            vocab,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// `[CLS]`, the text's pieces, `[SEP]`, cut to `max_len` tokens in all (the pieces are cut,
    /// the markers kept, as sentence-transformers truncates); also how many tokens the whole text
    /// would have made.
    pub fn encode(&self, text: &str, max_len: usize) -> (Vec<u32>, usize) {
        let mut ids = vec![self.cls];
        for word in pre_tokenize(&self.normalize(text)) {
            self.word_pieces(&word, &mut ids);
        }
        let full = ids.len() + 1;
        ids.truncate(max_len.max(2) - 1);
        ids.push(self.sep);
        (ids, full)
    }

    /// Wraps already-made ids (a caller's token arrays) in `[CLS] … [SEP]`, cut to `max_len`.
    pub fn wrap(&self, pieces: &[u32], max_len: usize) -> Vec<u32> {
        let mut ids = Vec::with_capacity(pieces.len() + 2);
        ids.push(self.cls);
        ids.extend(pieces.iter().take(max_len.max(2) - 2));
        ids.push(self.sep);
        ids
    }

    fn normalize(&self, text: &str) -> String {
        let mut s = String::with_capacity(text.len());
        for c in text.chars() {
            if self.clean_text {
                if c == '\0' || c == '\u{fffd}' || is_control(c) {
                    continue;
                }
                if is_whitespace(c) {
                    s.push(' ');
                    continue;
                }
            }
            if self.chinese && is_chinese(c) {
                s.extend([' ', c, ' ']);
            } else {
                s.push(c);
            }
        }
        if self.strip_accents {
            s = s
                .nfd()
                .filter(|&c| get_general_category(c) != Gc::NonspacingMark)
                .collect();
        }
        if self.lowercase {
            s = s.to_lowercase();
        }
        s
    }

    /// Greedy longest-match-first pieces of one word, or `[UNK]` for the whole word.
    fn word_pieces(&self, word: &str, out: &mut Vec<u32>) {
        if word.chars().count() > self.max_word_chars {
            out.push(self.unk);
            return;
        }
        let start_len = out.len();
        let mut start = 0;
        let mut key = String::new();
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while start < end {
                key.clear();
                if start > 0 {
                    key.push_str(&self.prefix);
                }
                key.push_str(&word[start..end]);
                if let Some(&id) = self.vocab.get(&key) {
                    found = Some(id);
                    break;
                }
                end = prev_boundary(word, end);
            }
            match found {
                Some(id) => out.push(id),
                None => {
                    out.truncate(start_len);
                    out.push(self.unk);
                    return;
                }
            }
            start = end;
        }
    }
}

/// The char boundary before `i` in `s`.
fn prev_boundary(s: &str, i: usize) -> usize {
    let mut j = i - 1;
    while !s.is_char_boundary(j) {
        j -= 1;
    }
    j
}

/// Words: whitespace splits, and every punctuation character is a word of its own.
fn pre_tokenize(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        if c.is_whitespace() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
        } else if is_punctuation(c) {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            words.push(c.to_string());
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

/// Control characters (Unicode "other": Cc, Cf, Cs, Co, Cn), tab and newlines excepted.
fn is_control(c: char) -> bool {
    if matches!(c, '\t' | '\n' | '\r') {
        return false;
    }
    matches!(
        get_general_category(c),
        Gc::Control | Gc::Format | Gc::Surrogate | Gc::PrivateUse | Gc::Unassigned
    )
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            get_general_category(c),
            Gc::ConnectorPunctuation
                | Gc::DashPunctuation
                | Gc::OpenPunctuation
                | Gc::ClosePunctuation
                | Gc::InitialPunctuation
                | Gc::FinalPunctuation
                | Gc::OtherPunctuation
        )
}

/// CJK Unified Ideographs and their extensions (BERT's ranges).
fn is_chinese(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> WordPiece {
        let vocab: Vec<&str> = vec![
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world", "!", "un", "##aff", "##able", "cafe", ",", "中",
        ];
        let v: serde_json::Map<String, Value> = vocab
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), Value::from(i)))
            .collect();
        let json = serde_json::json!({
            "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                           "strip_accents": null, "lowercase": true},
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": 100, "vocab": v}
        });
        WordPiece::from_json(&json.to_string()).unwrap()
    }

    #[test]
    fn splits_words_pieces_and_punctuation() {
        let t = tiny();
        assert_eq!(t.encode("Hello, WORLD!", 64).0, vec![2, 4, 11, 5, 6, 3]);
        assert_eq!(t.encode("unaffable", 64).0, vec![2, 7, 8, 9, 3]);
        assert_eq!(
            t.encode("Café\u{0}中", 64).0,
            vec![2, 10, 12, 3],
            "accents stripped, NUL dropped"
        );
        assert_eq!(t.encode("unknownword hello", 64).0, vec![2, 1, 4, 3]);
    }

    #[test]
    fn truncation_keeps_the_markers_and_counts_the_whole() {
        let t = tiny();
        let (ids, full) = t.encode("hello world hello world", 4);
        assert_eq!(ids, vec![2, 4, 5, 3]);
        assert_eq!(full, 6);
        assert_eq!(t.wrap(&[4, 5, 4], 4), vec![2, 4, 5, 3]);
    }

    #[test]
    fn hostile_text_never_panics() {
        let t = tiny();
        for s in [
            "",
            " ",
            "\u{fffd}\u{200b}",
            &"a".repeat(500),
            "ﬃ\u{0301}\u{0301}",
            "\u{10FFFF}",
        ] {
            let (ids, _) = t.encode(s, 8);
            assert!(ids.len() >= 2 && ids.len() <= 8);
        }
    }
}
