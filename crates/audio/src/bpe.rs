//! Text to Whisper tokens, for `prompt`: tiktoken's byte-pair encoding, which needs only the
//! vocabulary — a token's id is its merge rank — and GPT-2's pre-tokenising pattern, as
//! openai-whisper's tokenizer encodes. Checked against tiktoken itself (test-only reference,
//! `tools/whisper_bpe_reference.py`).

use std::collections::HashMap;

use fancy_regex::Regex;

use crate::Vocab;

const GPT2_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

pub struct Encoder {
    ranks: HashMap<Vec<u8>, u32>,
    pattern: Regex,
}

impl Encoder {
    pub fn new(vocab: &Vocab) -> Self {
        let mut ranks = HashMap::new();
        for id in 0..vocab.eot {
            let b = vocab.token_bytes(id);
            if !b.is_empty() {
                ranks.entry(b.to_vec()).or_insert(id);
            }
        }
        Self {
            ranks,
            pattern: Regex::new(GPT2_PATTERN).expect("the GPT-2 pattern compiles"),
        }
    }

    /// The ids of `text` (no special tokens).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        let mut rest = 0;
        // A match error (backtracking limit on hostile input) encodes the rest as one piece.
        for m in self.pattern.find_iter(text) {
            let Ok(m) = m else { break };
            self.merge(&text.as_bytes()[m.start()..m.end()], &mut out);
            rest = m.end();
        }
        if rest < text.len() {
            self.merge(&text.as_bytes()[rest..], &mut out);
        }
        out
    }

    /// tiktoken's byte-pair merge of one piece: start from single bytes, repeatedly join the
    /// adjacent pair whose joined bytes have the lowest rank.
    fn merge(&self, piece: &[u8], out: &mut Vec<u32>) {
        if let Some(&id) = self.ranks.get(piece) {
            out.push(id);
            return;
        }
        // Part boundaries: part i is piece[b[i]..b[i + 1]].
        let mut b: Vec<usize> = (0..=piece.len()).collect();
        loop {
            let best = (0..b.len().saturating_sub(2))
                .filter_map(|i| self.ranks.get(&piece[b[i]..b[i + 2]]).map(|&r| (r, i)))
                .min();
            let Some((_, i)) = best else { break };
            b.remove(i + 1);
        }
        out.extend(b.windows(2).filter_map(|w| self.ranks.get(&piece[w[0]..w[1]]).copied()));
    }
}
