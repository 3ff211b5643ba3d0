//! Text → verdict: the text's tokens are embedded by the model the head was trained on (through
//! the engine's `Backend`, so moderation shares the model and the scheduler with generation), and
//! the head classifies the embedding.

use std::sync::Arc;

use tandem_engine::Backend;
use tandem_text::SpecialMode;

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
            model_id: model_id.to_string(),
        })
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
        let tok = &self.backend.model().tokenizer;
        let mut verdict: Option<Verdict> = None;
        for tokens in segments(text, |s| tok.encode(s, SpecialMode::None)) {
            let rx = self.backend.embed(tokens)?;
            let embedding = rx.await.map_err(|_| ModerationError::Stopped)??;
            let v = self.head.classify(&embedding);
            verdict = Some(match verdict {
                None => v,
                Some(acc) => acc.merge(v),
            });
        }
        Ok(verdict.unwrap_or_else(|| self.head.classify(&vec![0.0; self.head.embedding_width()]).cleared()))
    }
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
    use super::{segments, SEGMENT_TOKENS};

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
