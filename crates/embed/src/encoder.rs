//! `Encoder`: a sentence-embedding model directory loaded (tokenizer, config, weights) and texts
//! or token arrays turned into unit vectors, in batches that share each weight pass.

use std::path::Path;

use crate::bert;
use crate::weights::{BertConfig, Weights};
use crate::{EmbedError, Result, WordPiece};

/// What a model directory holds (as `tandem pull embeddings` writes it).
pub const MODEL_FILES: [&str; 4] = [
    "model.safetensors",
    "config.json",
    "tokenizer.json",
    "sentence_bert_config.json",
];

/// Tokens one forward pass takes at most: a batch is split into passes of whole sequences, so the
/// compute pool is free for generation steps between them (a pass of 2,048 tokens is ~0.1 s here).
const PASS_TOKENS: usize = 2048;

pub struct Encoder {
    tok: WordPiece,
    cfg: BertConfig,
    weights: Weights,
    /// Longest sequence embedded (`max_seq_length`), `[CLS]` and `[SEP]` included.
    max_tokens: usize,
}

/// One input's vector and the tokens it was made from (after truncation, markers included).
#[derive(Debug, Clone)]
pub struct Embedding {
    pub vector: Vec<f32>,
    pub tokens: usize,
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>> {
    let p = dir.join(name);
    std::fs::read(&p).map_err(|e| EmbedError::Io(format!("cannot read {}: {e}", p.display())))
}

fn read_text(dir: &Path, name: &str) -> Result<String> {
    String::from_utf8(read(dir, name)?).map_err(|_| EmbedError::Format(format!("{name} is not UTF-8")))
}

impl Encoder {
    pub fn load(dir: &Path) -> Result<Self> {
        let cfg = BertConfig::from_json(&read_text(dir, "config.json")?)?;
        let tok = WordPiece::from_json(&read_text(dir, "tokenizer.json")?)?;
        if tok.vocab_size() > cfg.vocab {
            return Err(EmbedError::Format(
                "the tokenizer's vocabulary exceeds the model's".into(),
            ));
        }
        let st: serde_json::Value = serde_json::from_str(&read_text(dir, "sentence_bert_config.json")?)
            .map_err(|e| EmbedError::Format(format!("sentence_bert_config.json: {e}")))?;
        let max_tokens = st["max_seq_length"].as_u64().unwrap_or(256) as usize;
        let weights = Weights::read(&read(dir, "model.safetensors")?, &cfg)?;
        Ok(Self {
            tok,
            max_tokens: max_tokens.clamp(2, cfg.max_positions),
            cfg,
            weights,
        })
    }

    /// Dimensions of every vector.
    pub fn dims(&self) -> usize {
        self.cfg.hidden
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    pub fn vocab(&self) -> usize {
        self.cfg.vocab
    }

    /// A text's tokens as the model reads it (`[CLS] … [SEP]`, cut to `max_tokens`).
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        self.tok.encode(text, self.max_tokens).0
    }

    /// A caller's token ids (this model's WordPiece ids) wrapped and cut the same way.
    pub fn wrap(&self, ids: &[u32]) -> Result<Vec<u32>> {
        if let Some(&t) = ids.iter().find(|&&t| t as usize >= self.cfg.vocab) {
            return Err(EmbedError::Input(format!(
                "token id {t} is outside the vocabulary of {}",
                self.cfg.vocab
            )));
        }
        Ok(self.tok.wrap(ids, self.max_tokens))
    }

    /// Embeds sequences made by `tokenize` or `wrap`, in passes of at most `PASS_TOKENS` tokens,
    /// each alone in the compute pool.
    pub fn embed(&self, seqs: &[Vec<u32>]) -> Vec<Embedding> {
        let mut out = Vec::with_capacity(seqs.len());
        let mut from = 0;
        while from < seqs.len() {
            let mut to = from;
            let mut tokens = 0;
            while to < seqs.len() && (to == from || tokens + seqs[to].len() <= PASS_TOKENS) {
                tokens += seqs[to].len();
                to += 1;
            }
            let batch = &seqs[from..to];
            let vectors = tandem_kernels::pool::install(|| bert::embed(&self.weights, &self.cfg, batch));
            out.extend(vectors.into_iter().zip(batch).map(|(vector, s)| Embedding {
                vector,
                tokens: s.len(),
            }));
            from = to;
        }
        out
    }

    /// Embeds texts.
    pub fn embed_texts(&self, texts: &[&str]) -> Vec<Embedding> {
        let seqs: Vec<Vec<u32>> = texts.iter().map(|t| self.tokenize(t)).collect();
        self.embed(&seqs)
    }
}
