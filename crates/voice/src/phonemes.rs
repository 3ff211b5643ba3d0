//! Phonemes as Piper makes them, from the `espeak-ng` program (GPL-3: run, never linked): IPA per
//! clause (`espeak-ng -q --ipa -v VOICE`, one line per clause), language-switch flags removed, the
//! punctuation that ended each clause kept (`,` `:` `;` followed by a space), clauses gathered
//! into sentences at `.` `?` `!`, each phoneme string decomposed (NFD) into code points.
//!
//! The program prints clauses but not the punctuation that ended them, so that is read back from
//! the text: the clause-ending marks in order (a mark followed by a space, a closing quote or the
//! end; an ellipsis ends a clause with no mark, as espeak-ng reports it), matched to the printed
//! clauses. When espeak-ng kept a mark inside a clause (its abbreviations: "Mr.", "U.S."), the
//! likeliest abbreviations' periods are dropped until the counts agree.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use unicode_normalization::UnicodeNormalization;

use crate::{Result, VoiceError};

/// Far above what 4,096 characters take (~50 ms); only a wedged program reaches it.
const ESPEAK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

pub struct Phonemizer {
    program: PathBuf,
    voice: String,
    /// A directory holding `espeak-ng-data` to read instead of the program's own (`--path`).
    data: Option<PathBuf>,
}

/// A clause-ending mark found in the text: what Piper keeps (`""` for an ellipsis), whether it
/// ends a sentence, and how likely a period is an abbreviation's (higher: dropped first).
#[derive(Debug, Clone)]
struct Mark {
    kept: &'static str,
    sentence_end: bool,
    abbreviation: u8,
}

impl Phonemizer {
    /// `espeak-ng` from PATH, speaking as `voice` (the voice config's `espeak.voice`), reading
    /// `data/espeak-ng-data` when given (the data the voice was trained with); `None` when the
    /// program is not installed.
    pub fn find(voice: &str, data: Option<&std::path::Path>) -> Option<Self> {
        let ok = Command::new("espeak-ng")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self {
            program: PathBuf::from("espeak-ng"),
            voice: voice.to_string(),
            data: data.map(PathBuf::from),
        })
    }

    /// Each sentence's phonemes (code points, NFD), ready for the voice's id map.
    pub fn sentences(&self, text: &str) -> Result<Vec<Vec<char>>> {
        let clauses = self.clauses(text)?;
        let marks = align(marks(text), clauses.len());
        let mut out = Vec::new();
        let mut sentence = String::new();
        for (clause, mark) in clauses.iter().zip(marks) {
            sentence.push_str(&strip_flags(clause));
            sentence.push_str(mark.kept);
            if matches!(mark.kept, "," | ":" | ";") {
                sentence.push(' ');
            }
            if mark.sentence_end {
                out.push(std::mem::take(&mut sentence).nfd().collect());
            }
        }
        if !sentence.is_empty() {
            out.push(sentence.nfd().collect());
        }
        Ok(out)
    }

    /// espeak-ng's IPA, one string per clause.
    fn clauses(&self, text: &str) -> Result<Vec<String>> {
        let mut cmd = Command::new(&self.program);
        if let Some(d) = &self.data {
            cmd.arg(format!("--path={}", d.display()));
        }
        cmd.args(["-q", "--ipa", "-v", &self.voice]);
        // One line: espeak-ng would read a line break as a pause of its own.
        let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let out = tandem_process::run(cmd, line.into_bytes(), ESPEAK_TIMEOUT).map_err(VoiceError::Phonemes)?;
        let text = String::from_utf8_lossy(&out);
        Ok(text
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect())
    }
}

/// Removes language-switch flags such as `(en)` (words espeak-ng read in another language).
fn strip_flags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The clause-ending marks of `text`, in order.
fn marks(text: &str) -> Vec<Mark> {
    let c: Vec<char> = text.chars().collect();
    let closes = |i: usize| c.get(i).is_none_or(|&n| n.is_whitespace() || "\"')]}”’".contains(n));
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ellipsis = c[i] == '…' || (c[i] == '.' && c.get(i + 1) == Some(&'.') && c.get(i + 2) == Some(&'.'));
        if ellipsis {
            let len = if c[i] == '…' { 1 } else { 3 };
            if closes(i + len) && i + len < c.len() {
                out.push(Mark {
                    kept: "",
                    sentence_end: false,
                    abbreviation: 0,
                });
            }
            i += len;
            continue;
        }
        let kept = match c[i] {
            '.' => ".",
            ',' => ",",
            '?' => "?",
            '!' => "!",
            ':' => ":",
            ';' => ";",
            _ => "",
        };
        if !kept.is_empty() && closes(i + 1) {
            out.push(Mark {
                kept,
                sentence_end: matches!(kept, "." | "?" | "!"),
                abbreviation: abbreviation(&c, i),
            });
        }
        i += 1;
    }
    out
}

/// How likely the period at `i` is an abbreviation's: 2 after a single letter ("U.S."), 1 after a
/// short capitalised word ("Mr."), else 0.
fn abbreviation(c: &[char], i: usize) -> u8 {
    if c[i] != '.' {
        return 0;
    }
    let word: Vec<char> = c[..i]
        .iter()
        .rev()
        .take_while(|ch| ch.is_alphabetic())
        .copied()
        .collect();
    match word.len() {
        1 => 2,
        2..=3 if word.last().is_some_and(|ch| ch.is_uppercase()) => 1,
        _ => 0,
    }
}

/// `n` marks for `n` clauses: likeliest abbreviations dropped while there are too many (the
/// earliest first among equals), and clauses the text shows no mark for end with none.
fn align(mut marks: Vec<Mark>, n: usize) -> Vec<Mark> {
    while marks.len() > n {
        let drop = (0..marks.len())
            .rev()
            .max_by_key(|&i| (marks[i].abbreviation, usize::MAX - i))
            .filter(|&i| marks[i].abbreviation > 0)
            .unwrap_or(marks.len() - 1);
        marks.remove(drop);
    }
    while marks.len() < n {
        marks.push(Mark {
            kept: "",
            sentence_end: false,
            abbreviation: 0,
        });
    }
    marks
}
