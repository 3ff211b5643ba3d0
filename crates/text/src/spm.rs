//! SentencePiece BPE over a GGUF vocabulary (`tokenizer.ggml.model` = "llama", e.g. Gemma 3), as
//! llama.cpp's `llm_tokenizer_spm` and SentencePiece itself encode: spaces become `▁`, the text
//! starts as one symbol per character, and the adjacent pair whose concatenation is the
//! highest-scoring piece merges first (leftmost on ties) until no pair is a piece; a symbol that is
//! no piece falls back to its bytes (`<0xXX>`). User-defined pieces are atomic: matched whole in
//! the raw text before merging, as llama.cpp does (SentencePiece itself, given the GGUF's pieces,
//! cannot match the pieces made of spaces: the one place the two references differ).

use std::collections::{BinaryHeap, HashMap};

/// The SPM side of a `Tokenizer`.
pub(crate) struct Spm {
    /// Pieces merges may form (normal and user-defined) → id.
    pieces: HashMap<String, u32>,
    scores: Vec<f32>,
    /// User-defined pieces, longest first.
    user: Vec<(String, u32)>,
}

/// A merge candidate: the merged piece's score, then the leftmost pair first.
#[derive(PartialEq)]
struct Pair {
    score: f32,
    left: usize,
    /// Lengths (bytes) of both sides when queued: a side that changed since makes it stale.
    sizes: (usize, usize),
}

impl Eq for Pair {}

impl PartialOrd for Pair {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Pair {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.score.total_cmp(&o.score).then(o.left.cmp(&self.left))
    }
}

impl Spm {
    /// `pieces` with their scores and GGUF token types (1 normal, 4 user-defined merge; controls,
    /// bytes and unused pieces never come out of text).
    pub fn new(pieces: &[&str], scores: &[f32], types: &[i32]) -> Self {
        let mut map = HashMap::new();
        let mut user = Vec::new();
        for (i, (&p, &ty)) in pieces.iter().zip(types).enumerate() {
            if ty == crate::TYPE_NORMAL || ty == crate::TYPE_USER_DEFINED {
                map.entry(p.to_string()).or_insert(i as u32);
            }
            if ty == crate::TYPE_USER_DEFINED && !p.is_empty() {
                user.push((p.to_string(), i as u32));
            }
        }
        user.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        Self {
            pieces: map,
            scores: scores.to_vec(),
            user,
        }
    }

    /// Encodes plain text (no control tokens come out of it); `byte_ids` maps each byte to its
    /// `<0xXX>` token.
    pub fn encode(&self, text: &str, byte_ids: &[u32; 256], out: &mut Vec<u32>) {
        // User-defined pieces match the raw text (Gemma's runs of spaces are pieces of their
        // own), as llama.cpp splits them out before the rest becomes ▁-text.
        let mut rest = text;
        while !rest.is_empty() {
            match self.find_user(rest) {
                Some((at, len, id)) => {
                    self.merge(&rest[..at].replace(' ', "▁"), byte_ids, out);
                    out.push(id);
                    rest = &rest[at + len..];
                }
                None => {
                    self.merge(&rest.replace(' ', "▁"), byte_ids, out);
                    break;
                }
            }
        }
    }

    /// The leftmost user-defined piece in `text` (the longest there): (offset, length, id).
    fn find_user(&self, text: &str) -> Option<(usize, usize, u32)> {
        let mut best: Option<(usize, usize, u32)> = None;
        for (s, id) in &self.user {
            if let Some(at) = text.find(s.as_str()) {
                if best.is_none_or(|(b, _, _)| at < b) {
                    best = Some((at, s.len(), *id));
                }
            }
        }
        best
    }

    /// The merges over one run of text. Symbols are byte ranges `[start, start + len)` of `text`
    /// in a linked list; a merge grows the left one and unlinks the right.
    fn merge(&self, text: &str, byte_ids: &[u32; 256], out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        let start: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        let n = start.len();
        let mut len: Vec<usize> = (0..n)
            .map(|i| start.get(i + 1).copied().unwrap_or(text.len()) - start[i])
            .collect();
        let mut next: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        // What each merged piece was made of (by its text), to resegment a symbol that is no piece.
        let mut made_of: HashMap<(usize, usize), (usize, usize)> = HashMap::new();
        let mut heap = BinaryHeap::new();
        let try_pair = |heap: &mut BinaryHeap<Pair>, l: usize, r: usize, start: &[usize], len: &[usize]| {
            let s = &text[start[l]..start[r] + len[r]];
            if let Some(&id) = self.pieces.get(s) {
                heap.push(Pair {
                    score: self.scores[id as usize],
                    left: l,
                    sizes: (len[l], len[r]),
                });
            }
        };
        for i in 0..n - 1 {
            try_pair(&mut heap, i, i + 1, &start, &len);
        }
        while let Some(p) = heap.pop() {
            let (l, r) = (p.left, next[p.left]);
            if r >= n || len[l] == 0 || (len[l], len[r]) != p.sizes {
                continue; // stale: a side merged since
            }
            made_of.insert((start[l], len[l] + len[r]), (len[l], len[r]));
            len[l] += len[r];
            len[r] = 0;
            next[l] = next[r];
            if next[l] < n {
                prev[next[l]] = l;
            }
            if prev[l] < n {
                try_pair(&mut heap, prev[l], l, &start, &len);
            }
            if next[l] < n {
                try_pair(&mut heap, l, next[l], &start, &len);
            }
        }
        let mut i = 0;
        while i < n {
            self.emit(text, start[i], len[i], &made_of, byte_ids, out);
            i = next[i];
        }
    }

    /// A final symbol: its piece, else the pieces it was merged from, else its bytes.
    fn emit(
        &self,
        text: &str,
        at: usize,
        len: usize,
        made_of: &HashMap<(usize, usize), (usize, usize)>,
        byte_ids: &[u32; 256],
        out: &mut Vec<u32>,
    ) {
        if let Some(&id) = self.pieces.get(&text[at..at + len]) {
            out.push(id);
        } else if let Some(&(a, b)) = made_of.get(&(at, len)) {
            self.emit(text, at, a, made_of, byte_ids, out);
            self.emit(text, at + a, b, made_of, byte_ids, out);
        } else {
            out.extend(text.as_bytes()[at..at + len].iter().map(|&b| byte_ids[b as usize]));
        }
    }
}
