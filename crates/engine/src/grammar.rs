//! Constrained decoding with llguidance: a grammar (a JSON schema, or Lark for tool calls) becomes
//! a `Matcher` per sequence, which masks the logits before each sample so only tokens that keep
//! the output inside the grammar can be chosen. Enforcement, not validate-and-retry.
//!
//! The token trie is built once per model from the tokenizer's bytes; added tokens get llguidance's
//! special-token marker byte first, so no grammar can produce them as text.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{ApproximateTokEnv, SimpleVob, TokEnv, TokRxInfo, TokTrie};
use llguidance::{Matcher, ParserFactory};
use tandem_text::Tokenizer;

/// A grammar a request asks for: compiled at admission, one matcher per choice.
#[derive(Debug, Clone)]
pub struct Grammar(pub Arc<TopLevelGrammar>);

impl Grammar {
    /// Output must be JSON valid against `schema`, written compactly (no free whitespace, which
    /// could otherwise eat the token budget): `{"a": 1, "b": [2, 3]}`.
    pub fn json_schema(mut schema: serde_json::Value) -> Self {
        if let Some(o) = schema.as_object_mut() {
            o.insert(
                "x-guidance".into(),
                serde_json::json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}),
            );
        }
        Self(Arc::new(TopLevelGrammar::from_json_schema(schema)))
    }

    /// A grammar in llguidance's Lark dialect (it may embed `%json{…}` schemas).
    pub fn lark(src: String) -> Self {
        Self(Arc::new(TopLevelGrammar::from_lark(src)))
    }
}

/// Per-model grammar compiler.
pub struct Grammars {
    factory: ParserFactory,
    /// Time spent computing masks, and how many (for the per-token cost).
    pub mask_ns: AtomicU64,
    pub masks: AtomicU64,
    /// The model's end-of-generation tokens: where the grammar may end, any of them may.
    eog: Vec<u32>,
}

impl Grammars {
    pub fn new(tok: &Tokenizer, vocab: usize, eos: u32) -> Result<Self, String> {
        let words: Vec<Vec<u8>> = (0..vocab as u32)
            .map(|id| {
                let b = tok.token_bytes(id);
                if tok.is_added(id) {
                    let mut m = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                    m.extend_from_slice(b);
                    m
                } else {
                    b.to_vec()
                }
            })
            .collect();
        let info = TokRxInfo::new(vocab as u32, eos);
        let trie = TokTrie::from(&info, &words);
        let env: TokEnv = Arc::new(ApproximateTokEnv::new(trie));
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| e.to_string())?;
        factory.quiet();
        Ok(Self {
            factory,
            eog: tok.eog.clone(),
            mask_ns: AtomicU64::new(0),
            masks: AtomicU64::new(0),
        })
    }

    /// Compiles `g` into a fresh matcher; the error names what the grammar cannot express.
    pub fn matcher(&self, g: &Grammar) -> Result<Matcher, String> {
        let parser = self.factory.create_parser((*g.0).clone()).map_err(|e| e.to_string())?;
        let m = Matcher::new(Ok(parser));
        match m.get_error() {
            Some(e) => Err(e),
            None => Ok(m),
        }
    }

    /// Sets every token the matcher forbids to −∞. `false` if the matcher failed (then the
    /// sequence must end).
    pub fn mask(&self, m: &mut Matcher, logits: &mut [f32]) -> bool {
        let t = std::time::Instant::now();
        let allowed: SimpleVob = match m.compute_mask() {
            Ok(v) => v,
            Err(_) => return false,
        };
        let may_end = self.eog.iter().any(|&t| allowed.is_allowed(t));
        let ends: Vec<(usize, f32)> = match may_end {
            true => self
                .eog
                .iter()
                .filter_map(|&t| Some((t as usize, *logits.get(t as usize)?)))
                .collect(),
            false => Vec::new(),
        };
        for (i, l) in logits.iter_mut().enumerate() {
            if !allowed.is_allowed(i as u32) {
                *l = f32::NEG_INFINITY;
            }
        }
        for (i, l) in ends {
            logits[i] = l;
        }
        self.mask_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.masks.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// The compiler of a model, built on first use (the trie over ~150k tokens takes a moment).
pub struct LazyGrammars(OnceLock<Result<Grammars, String>>);

impl Default for LazyGrammars {
    fn default() -> Self {
        Self(OnceLock::new())
    }
}

impl LazyGrammars {
    /// The compiler if it was built.
    pub fn peek(&self) -> Option<&Grammars> {
        self.0.get().and_then(|r| r.as_ref().ok())
    }

    pub fn get(&self, tok: &Tokenizer, vocab: usize) -> Result<&Grammars, String> {
        // `<|im_end|>` ends a chat turn; fall back to the first end-of-generation token.
        let eos = tok
            .added_id("<|im_end|>")
            .or_else(|| tok.eog.first().copied())
            .unwrap_or(0);
        self.0
            .get_or_init(|| Grammars::new(tok, vocab, eos))
            .as_ref()
            .map_err(|e| e.clone())
    }
}
