//! Byte-level BPE tokenizer built from a GGUF vocabulary (`tokenizer.ggml.*`), matching llama.cpp.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use fancy_regex::Regex;
use tandem_gguf::GgufFile;

use crate::bytes::{byte_to_char_table, char_to_byte};
use crate::{Result, TextError};

/// GGUF `tokenizer.ggml.token_type` values.
pub const TYPE_NORMAL: i32 = 1;
pub const TYPE_CONTROL: i32 = 3;
pub const TYPE_USER_DEFINED: i32 = 4;
pub const TYPE_BYTE: i32 = 6;

/// The qwen2 pre-tokenizer split (as llama.cpp and HF define it for Qwen2).
const QWEN2_SPLIT: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Which added tokens the text may produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialMode {
    /// None: the text is plain text and never becomes an added token (every message's content).
    None,
    /// llama.cpp's `--no-parse-special`: user-defined added tokens (`<tool_call>`) match, control tokens
    /// (`<|im_start|>`) do not. The reference mode of `tandem tokenize`.
    UserDefined,
    /// Every added token matches (a chat template's own markup).
    All,
}

pub struct Tokenizer {
    /// id → the bytes the token stands for.
    token_bytes: Vec<Vec<u8>>,
    token_types: Vec<i32>,
    /// (left id, right id) → (rank, merged id)
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// id of the one-byte token for each byte.
    byte_ids: [u32; 256],
    /// Added tokens, longest first: (text, id, is_control)
    added: Vec<(String, u32, bool)>,
    split: Regex,
    /// End-of-generation tokens (`eos`, `eot`, `<|im_end|>`, `<|endoftext|>`).
    pub eog: Vec<u32>,
    /// A SentencePiece vocabulary encodes plain text by scores instead of `split` and `merges`.
    spm: Option<crate::spm::Spm>,
    /// The token a raw prompt starts with (`tokenizer.ggml.add_bos_token`; Gemma's `<bos>`).
    pub bos: Option<u32>,
}

/// The vocabulary's token texts (`tokenizer.ggml.tokens`).
fn gguf_tokens(f: &GgufFile) -> Result<Vec<&str>> {
    f.get_array("tokenizer.ggml.tokens")?
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.as_str()
                .ok_or_else(|| TextError::Tokenizer(format!("token {i} is not a string")))
        })
        .collect()
}

/// The end-of-generation ids the file names (`eos`, `eot`).
fn gguf_eog(f: &GgufFile) -> Vec<u32> {
    ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"]
        .iter()
        .filter_map(|key| f.get_usize(key).ok().map(|id| id as u32))
        .collect()
}

impl Tokenizer {
    pub fn from_gguf(f: &GgufFile) -> Result<Self> {
        let err = |m: String| TextError::Tokenizer(m);
        let model = f.get_str("tokenizer.ggml.model")?;
        if model == "llama" {
            return Self::spm_from_gguf(f);
        }
        if model != "gpt2" {
            return Err(err(format!(
                "tokenizer model {model:?} is not supported (supported: gpt2 byte-level BPE, llama SentencePiece)"
            )));
        }
        let pre = f.get_str("tokenizer.ggml.pre").unwrap_or("default");
        if pre != "qwen2" {
            return Err(err(format!(
                "pre-tokenizer {pre:?} is not supported (supported: qwen2)"
            )));
        }
        let tokens = gguf_tokens(f)?;
        let types: Vec<i32> = match f.get_array("tokenizer.ggml.token_type") {
            Ok(a) => a.iter().map(|v| v.as_int().unwrap_or(1) as i32).collect(),
            Err(_) => vec![1; tokens.len()],
        };
        let merges = f.get_array("tokenizer.ggml.merges")?;
        let merges: Vec<&str> = merges
            .iter()
            .enumerate()
            .map(|(rank, m)| m.as_str().ok_or_else(|| err(format!("merge {rank} is not a string"))))
            .collect::<Result<_>>()?;
        Self::from_vocab(&tokens, &types, &merges, gguf_eog(f))
    }

    /// A tokenizer from its vocabulary: each token's text in GPT-2's byte alphabet (added tokens
    /// literally), its GGUF type, the merges by rank ("a b"), and end-of-generation ids besides
    /// the chat markers found by name. Tests build small vocabularies with it.
    pub fn from_vocab(tokens: &[&str], types: &[i32], merge_list: &[&str], mut eog: Vec<u32>) -> Result<Self> {
        let err = |m: String| TextError::Tokenizer(m);
        if types.len() != tokens.len() {
            return Err(err("token_type and tokens differ in length".into()));
        }
        let table = byte_to_char_table();
        let mut ids: HashMap<&str, u32> = HashMap::with_capacity(tokens.len());
        let mut token_bytes = Vec::with_capacity(tokens.len());
        let mut added = Vec::new();
        for (i, &s) in tokens.iter().enumerate() {
            ids.insert(s, i as u32);
            let ty = types[i];
            if ty == TYPE_CONTROL || ty == TYPE_USER_DEFINED {
                token_bytes.push(s.as_bytes().to_vec());
                if !s.is_empty() {
                    added.push((s.to_string(), i as u32, ty == TYPE_CONTROL));
                }
            } else {
                // A normal token's text is in the byte alphabet; anything else is taken literally.
                let bytes: Option<Vec<u8>> = s.chars().map(|c| char_to_byte(c, &table)).collect();
                token_bytes.push(bytes.unwrap_or_else(|| s.as_bytes().to_vec()));
            }
        }
        added.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));

        let mut byte_ids = [0u32; 256];
        for b in 0..256 {
            let c = table[b].to_string();
            byte_ids[b] = *ids
                .get(c.as_str())
                .ok_or_else(|| err(format!("vocabulary lacks the byte token {c:?}")))?;
        }

        let mut merges = HashMap::with_capacity(merge_list.len());
        for (rank, &m) in merge_list.iter().enumerate() {
            let (a, b) = m
                .split_once(' ')
                .ok_or_else(|| err(format!("merge {rank} {m:?} has no space")))?;
            let merged = format!("{a}{b}");
            if let (Some(&ia), Some(&ib), Some(&im)) = (ids.get(a), ids.get(b), ids.get(merged.as_str())) {
                merges.entry((ia, ib)).or_insert((rank as u32, im));
            }
        }

        for name in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>"] {
            if let Some(&id) = ids.get(name) {
                eog.push(id);
            }
        }
        eog.sort_unstable();
        eog.dedup();

        let split = Regex::new(QWEN2_SPLIT).map_err(|e| err(format!("split regex: {e}")))?;
        Ok(Self {
            token_bytes,
            token_types: types.to_vec(),
            merges,
            byte_ids,
            added,
            split,
            eog,
            spm: None,
            bos: None,
        })
    }

    fn spm_from_gguf(f: &GgufFile) -> Result<Self> {
        let tokens = gguf_tokens(f)?;
        let scores: Vec<f32> = f
            .get_array("tokenizer.ggml.scores")?
            .iter()
            .map(|v| v.as_f64().unwrap_or(0.0) as f32)
            .collect();
        let types: Vec<i32> = f
            .get_array("tokenizer.ggml.token_type")?
            .iter()
            .map(|v| v.as_int().unwrap_or(1) as i32)
            .collect();
        let mut tok = Self::from_spm_vocab(&tokens, &scores, &types, gguf_eog(f))?;
        let add_bos = f.get("tokenizer.ggml.add_bos_token").and_then(|v| v.as_bool()) == Some(true);
        tok.bos = f
            .get_usize("tokenizer.ggml.bos_token_id")
            .ok()
            .filter(|&b| add_bos && b < tokens.len())
            .map(|b| b as u32);
        Ok(tok)
    }

    /// A SentencePiece tokenizer from its pieces (`▁` for a space, `<0xXX>` byte pieces), their
    /// scores and GGUF types, and end-of-generation ids besides the chat markers found by name.
    pub fn from_spm_vocab(pieces: &[&str], scores: &[f32], types: &[i32], mut eog: Vec<u32>) -> Result<Self> {
        let err = |m: String| TextError::Tokenizer(m);
        if types.len() != pieces.len() || scores.len() != pieces.len() {
            return Err(err("token_type, scores and tokens differ in length".into()));
        }
        let mut byte_ids = [u32::MAX; 256];
        let mut token_bytes = Vec::with_capacity(pieces.len());
        let mut added = Vec::new();
        for (i, (&p, &ty)) in pieces.iter().zip(types).enumerate() {
            let byte = (ty == TYPE_BYTE)
                .then(|| p.strip_prefix("<0x")?.strip_suffix('>'))
                .flatten()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match byte {
                Some(b) => {
                    byte_ids[b as usize] = i as u32;
                    token_bytes.push(vec![b]);
                }
                None => token_bytes.push(p.replace('▁', " ").into_bytes()),
            }
            if (ty == TYPE_CONTROL || ty == TYPE_USER_DEFINED) && !p.is_empty() {
                added.push((p.to_string(), i as u32, ty == TYPE_CONTROL));
            }
        }
        if let Some(b) = byte_ids.iter().position(|&id| id == u32::MAX) {
            return Err(err(format!("vocabulary lacks the byte piece <0x{b:02X}>")));
        }
        added.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        for name in ["<end_of_turn>", "<eos>"] {
            if let Some(i) = pieces.iter().position(|&p| p == name) {
                eog.push(i as u32);
            }
        }
        eog.sort_unstable();
        eog.dedup();
        let split = Regex::new(QWEN2_SPLIT).map_err(|e| err(format!("split regex: {e}")))?;
        Ok(Self {
            token_bytes,
            token_types: types.to_vec(),
            merges: HashMap::new(),
            byte_ids,
            added,
            split,
            eog,
            spm: Some(crate::spm::Spm::new(pieces, scores, types)),
            bos: None,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// Every added token (control and user-defined): (text, id).
    pub fn added_tokens(&self) -> impl Iterator<Item = (&str, u32)> {
        self.added.iter().map(|a| (a.0.as_str(), a.1))
    }

    /// The id of an added token by its text (e.g. `<|im_start|>`).
    pub fn added_id(&self, text: &str) -> Option<u32> {
        self.added.iter().find(|a| a.0 == text).map(|a| a.1)
    }

    pub fn is_control(&self, id: u32) -> bool {
        self.token_types.get(id as usize) == Some(&TYPE_CONTROL)
    }

    /// An added token (control or user-defined): never produced from chat content.
    pub fn is_added(&self, id: u32) -> bool {
        matches!(
            self.token_types.get(id as usize),
            Some(&TYPE_CONTROL) | Some(&TYPE_USER_DEFINED)
        )
    }

    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// The bytes a token stands for (control tokens: their text).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes.get(id as usize).map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// Tokenises `text`; `mode` says which added tokens may appear.
    pub fn encode(&self, text: &str, mode: SpecialMode) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        self.encode_into(text, mode, &mut out);
        out
    }

    pub fn encode_into(&self, text: &str, mode: SpecialMode, out: &mut Vec<u32>) {
        let mut rest = text;
        while !rest.is_empty() {
            match self.find_added(rest, mode) {
                Some((at, len, id)) => {
                    self.encode_plain(&rest[..at], out);
                    out.push(id);
                    rest = &rest[at + len..];
                }
                None => {
                    self.encode_plain(rest, out);
                    break;
                }
            }
        }
    }

    /// Leftmost added token of any kind in `text`: (byte offset, byte length, id).
    pub fn find_special(&self, text: &str) -> Option<(usize, usize, u32)> {
        self.find_added(text, SpecialMode::All)
    }

    /// Leftmost added token allowed by `mode` (the longest one at that position).
    fn find_added(&self, text: &str, mode: SpecialMode) -> Option<(usize, usize, u32)> {
        if mode == SpecialMode::None {
            return None;
        }
        let mut best: Option<(usize, usize, u32)> = None;
        for (s, id, control) in &self.added {
            if *control && mode == SpecialMode::UserDefined {
                continue;
            }
            if let Some(at) = text.find(s.as_str()) {
                // `added` is longest-first, so a later hit at the same position is never longer.
                if best.is_none_or(|(b, _, _)| at < b) {
                    best = Some((at, s.len(), *id));
                }
            }
        }
        best
    }

    /// Plain text: pre-tokenise, then BPE each piece (or SentencePiece merges by score).
    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) {
        if let Some(spm) = &self.spm {
            return spm.encode(text, &self.byte_ids, out);
        }
        let mut start = 0;
        for m in self.split.find_iter(text) {
            let Ok(m) = m else {
                // The regex engine gave up (backtrack limit): treat the rest as one piece.
                self.bpe(&text.as_bytes()[start..], out);
                return;
            };
            if m.start() > start {
                // Text the pattern did not cover (cannot happen with its final `\s+|…` branches,
                // but never drop bytes).
                self.bpe(&text.as_bytes()[start..m.start()], out);
            }
            self.bpe(m.as_str().as_bytes(), out);
            start = m.end();
        }
        if start < text.len() {
            self.bpe(&text.as_bytes()[start..], out);
        }
    }

    /// Byte-pair merges over one piece, lowest rank first, leftmost on ties.
    fn bpe(&self, piece: &[u8], out: &mut Vec<u32>) {
        if piece.is_empty() {
            return;
        }
        if piece.len() == 1 {
            out.push(self.byte_ids[piece[0] as usize]);
            return;
        }
        // Doubly linked symbols over the piece; a merge keeps the left one and kills the right.
        let mut id: Vec<u32> = piece.iter().map(|&b| self.byte_ids[b as usize]).collect();
        let n = id.len();
        let mut next: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        let mut alive = vec![true; n];
        let mut heap = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<Reverse<(u32, usize, u32, u32)>>, i: usize, j: usize, id: &[u32]| {
            if let Some(&(rank, _)) = self.merges.get(&(id[i], id[j])) {
                heap.push(Reverse((rank, i, id[i], id[j])));
            }
        };
        for i in 0..n - 1 {
            push(&mut heap, i, i + 1, &id);
        }
        while let Some(Reverse((_, i, li, ri))) = heap.pop() {
            let j = next[i];
            // Skip stale entries: a side was merged away or changed since this pair was queued.
            if !alive[i] || j >= n || id[i] != li || id[j] != ri {
                continue;
            }
            id[i] = self.merges[&(li, ri)].1;
            alive[j] = false;
            next[i] = next[j];
            if next[j] < n {
                prev[next[j]] = i;
            }
            if prev[i] < n {
                push(&mut heap, prev[i], i, &id);
            }
            if next[i] < n {
                push(&mut heap, i, next[i], &id);
            }
        }
        let mut i = 0;
        while i < n {
            out.push(id[i]);
            i = next[i];
        }
    }

    /// All bytes of `ids` joined, control tokens included as their text.
    pub fn decode_bytes(&self, ids: &[u32]) -> Vec<u8> {
        ids.iter().flat_map(|&i| self.token_bytes(i).iter().copied()).collect()
    }
}
