//! Text → verdict: the text's tokens are embedded by the model the head was trained on (through
//! the engine's `Backend`, so moderation shares the model and the scheduler with generation), and
//! the head classifies the embedding.

use std::sync::Arc;

use tandem_engine::{Backend, EMBED_MAX_TOKENS};
use tandem_text::SpecialMode;

use crate::attack::{AttackHead, AttackVerdict};
use crate::head::{Head, HeadError, Verdict};

#[derive(Debug, thiserror::Error)]
pub enum ModerationError {
    #[error(transparent)]
    Head(#[from] HeadError),
    #[error(transparent)]
    Engine(#[from] tandem_engine::EngineError),
    #[error("the engine stopped before answering")]
    Stopped,
}

#[derive(Clone)]
pub struct Moderator {
    backend: Arc<dyn Backend>,
    head: &'static Head,
    /// The prompt-attack head, when attack detection is available.
    attack: Option<&'static AttackHead>,
    /// The canonical id reported as the moderation `model`.
    model_id: String,
}

impl Moderator {
    /// A moderator over `backend`, whose model must be the one `head` was trained on.
    pub fn new(backend: Arc<dyn Backend>, head: &'static Head, model_id: &str) -> Result<Self, ModerationError> {
        head.check_model(model_id, backend.model().model.config.dim)?;
        Ok(Self {
            backend,
            head,
            attack: None,
            model_id: model_id.to_string(),
        })
    }

    /// This moderator with prompt-attack detection (`detect_attack`) by `head`, which must read the
    /// same model's embeddings.
    pub fn with_attack_head(mut self, head: &'static AttackHead) -> Result<Self, ModerationError> {
        head.check_model(&self.model_id, self.backend.model().model.config.dim)?;
        self.attack = Some(head);
        Ok(self)
    }

    /// Whether `detect_attack` can run.
    pub fn detects_attacks(&self) -> bool {
        self.attack.is_some()
    }

    /// Whether a text is a jailbreak or a prompt injection. The head was trained on whole prompts
    /// (a jailbreak's frame is spread over hundreds of tokens, so sentences alone would miss it):
    /// a text is read in windows of `EMBED_MAX_TOKENS` tokens, the last window ending at the text's
    /// end, and is flagged if any window is — so an attack cannot hide behind a long harmless
    /// preamble. (A short injection at the end of a long document is diluted in its window: the
    /// mean embedding is mostly the document's. Measured in `tests/model_moderation.rs`.) `None`
    /// without an attack head.
    pub async fn detect_attack(&self, text: &str) -> Result<Option<AttackVerdict>, ModerationError> {
        let Some(head) = self.attack else { return Ok(None) };
        let tokens = self.backend.model().tokenizer.encode(text, SpecialMode::None);
        let mut verdict: Option<AttackVerdict> = None;
        for window in windows(&tokens, EMBED_MAX_TOKENS) {
            let rx = self.backend.embed(window.to_vec())?;
            let v = head.classify(&rx.await.map_err(|_| ModerationError::Stopped)??);
            verdict = Some(verdict.map_or(v, |acc| acc.merge(v)));
        }
        Ok(Some(verdict.unwrap_or(AttackVerdict {
            flagged: false,
            score: 0.0,
        })))
    }

    /// The name responses report: the head's model with a suffix, so clients can tell it from a
    /// chat model.
    pub fn name(&self) -> String {
        format!("{}-moderation", self.model_id)
    }

    /// Classifies one text. The head reads mean embeddings, in which one harmful sentence among
    /// many harmless ones would fade; so a text longer than `SEGMENT_TOKENS` is read in segments
    /// of whole sentences (`segments`), and flagged if any segment is (scores: each category's
    /// maximum). Every token is embedded once. An empty text is not harmful.
    pub async fn classify(&self, text: &str) -> Result<Verdict, ModerationError> {
        self.classify_with(text, Head::classify).await
    }

    /// Classifies a window of generated text, as `classify` does but against the head's output
    /// threshold (`Head::classify_output`).
    pub async fn classify_output(&self, text: &str) -> Result<Verdict, ModerationError> {
        self.classify_with(text, Head::classify_output).await
    }

    async fn classify_with(&self, text: &str, rule: fn(&Head, &[f32]) -> Verdict) -> Result<Verdict, ModerationError> {
        let tok = &self.backend.model().tokenizer;
        let mut verdict: Option<Verdict> = None;
        for tokens in segments(text, |s| tok.encode(s, SpecialMode::None)) {
            let rx = self.backend.embed(tokens)?;
            let embedding = rx.await.map_err(|_| ModerationError::Stopped)??;
            let v = rule(self.head, &embedding);
            verdict = Some(match verdict {
                None => v,
                Some(acc) => acc.merge(v),
            });
        }
        Ok(verdict.unwrap_or_else(|| self.head.classify(&vec![0.0; self.head.embedding_width()]).cleared()))
    }
}

/// `tokens` cut into windows of `width`: consecutive, the last one ending at the end (and so
/// overlapping the one before when the length is not a multiple); none for no tokens.
pub fn windows(tokens: &[u32], width: usize) -> Vec<&[u32]> {
    if tokens.len() <= width {
        return if tokens.is_empty() { Vec::new() } else { vec![tokens] };
    }
    let mut out: Vec<&[u32]> = tokens.chunks_exact(width).collect();
    if !tokens.len().is_multiple_of(width) {
        out.push(&tokens[tokens.len() - width..]);
    }
    out
}

/// Longest segment the moderator embeds at once: about the length of the texts the head was trained
/// on (a request or a few sentences).
pub const SEGMENT_TOKENS: usize = 64;

/// The token segments of `text`: the whole text if it fits `SEGMENT_TOKENS`, else each sentence
/// (split after `.`, `!`, `?` or a newline) on its own — packing neighbours together would dilute
/// a harmful sentence among harmless ones again — with a longer sentence cut into pieces of that
/// size, and blank pieces skipped.
pub fn segments(text: &str, encode: impl Fn(&str) -> Vec<u32>) -> Vec<Vec<u32>> {
    let all = encode(text);
    if all.len() <= SEGMENT_TOKENS {
        return if all.is_empty() { Vec::new() } else { vec![all] };
    }
    let mut sentences = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let end_of_sentence =
            b == b'\n' || (matches!(b, b'.' | b'!' | b'?') && bytes.get(i + 1).is_none_or(|c| c.is_ascii_whitespace()));
        if end_of_sentence {
            sentences.push(&text[start..=i]);
            start = i + 1;
        }
    }
    if start < text.len() {
        sentences.push(&text[start..]);
    }
    sentences
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .flat_map(|s| {
            encode(s)
                .chunks(SEGMENT_TOKENS)
                .map(<[u32]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

impl Verdict {
    /// Two parts of one text: flagged if either is, each category set if set in either, each
    /// score the larger.
    pub fn merge(mut self, other: Verdict) -> Verdict {
        self.flagged |= other.flagged;
        self.harmful_score = self.harmful_score.max(other.harmful_score);
        for ((_, a), (_, b)) in self.categories.iter_mut().zip(other.categories) {
            *a |= b;
        }
        for ((_, a), (_, b)) in self.category_scores.iter_mut().zip(other.category_scores) {
            *a = a.max(b);
        }
        self
    }
}

impl Verdict {
    /// The same scores with nothing flagged (for inputs with no text).
    fn cleared(mut self) -> Self {
        self.flagged = false;
        self.categories.iter_mut().for_each(|(_, on)| *on = false);
        self.category_scores.iter_mut().for_each(|(_, s)| *s = 0.0);
        self.harmful_score = 0.0;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::{segments, windows, SEGMENT_TOKENS};

    #[test]
    fn windows_cover_the_text_and_the_last_one_ends_at_its_end() {
        let t: Vec<u32> = (0..10).collect();
        assert!(windows(&[], 4).is_empty());
        assert_eq!(windows(&t[..3], 4), vec![&t[..3]]);
        assert_eq!(windows(&t[..8], 4), vec![&t[..4], &t[4..8]]);
        assert_eq!(windows(&t, 4), vec![&t[..4], &t[4..8], &t[6..10]]);
    }

    /// One "token" per byte, to see the packing.
    fn bytes(s: &str) -> Vec<u32> {
        s.bytes().map(u32::from).collect()
    }

    #[test]
    fn short_texts_are_one_segment_and_long_ones_split_at_sentences() {
        assert_eq!(segments("hello there.", bytes), vec![bytes("hello there.")]);
        assert!(segments("", bytes).is_empty());
        let a = "a".repeat(30) + ". ";
        let b = "b".repeat(30) + "!\n";
        let c = "c".repeat(150) + "?";
        let text = format!("{a}{b}{c}");
        let segs = segments(&text, bytes);
        // a and b alone (the space after a's full stop starts b's sentence); c (151) cut into 64, 64, 23.
        assert_eq!(segs.len(), 5, "{segs:?}");
        assert_eq!(segs[0], bytes(&a[..31]));
        assert_eq!(
            segs[1],
            bytes(&format!(" {}", &b[..31])),
            "the newline alone is blank, skipped"
        );
        assert!(segs.iter().all(|s| s.len() <= SEGMENT_TOKENS));
        let total: usize = segs.iter().map(Vec::len).sum();
        assert_eq!(total, text.len() - 1, "every non-blank piece is read once");
        // Decimal points and version numbers do not end a sentence.
        assert_eq!(segments(&("v1.2.3 ".repeat(20)), bytes).len(), 3);
    }
}
