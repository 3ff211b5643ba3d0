//! A model file made usable: weights, tokenizer and chat template read from one GGUF.

use std::path::Path;
use std::sync::Arc;

use tandem_gguf::GgufFile;
use tandem_model::Model;
use tandem_text::{chat, ChatMessage, ChatTemplate, SpecialMode, Tokenizer};

use crate::Result;

pub struct LoadedModel {
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    grammars: crate::grammar::LazyGrammars,
}

impl LoadedModel {
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let file = Arc::new(GgufFile::open(path)?);
        let model = Model::from_gguf(file.clone())?;
        let tokenizer = Tokenizer::from_gguf(&file)?;
        let bos = tokenizer
            .bos
            .map(|b| String::from_utf8_lossy(tokenizer.token_bytes(b)).into_owned());
        let template = ChatTemplate::from_gguf(&file)?.with_bos(bos.unwrap_or_default());
        Ok(Self {
            model,
            tokenizer,
            template,
            grammars: Default::default(),
        })
    }

    /// Prompt token ids for a conversation, ending with the assistant's turn opened.
    pub fn chat_prompt(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        let pieces = self.template.render(messages, None, true)?;
        Ok(chat::tokenize_pieces(&self.tokenizer, &pieces))
    }

    /// The model's grammar compiler (built on first use).
    pub fn grammars(&self) -> std::result::Result<&crate::Grammars, String> {
        self.grammars.get(&self.tokenizer, self.model.config.vocab)
    }

    /// (nanoseconds, count) of the token masks computed so far; zeros before the first grammar.
    pub fn grammar_stats(&self) -> (u64, u64) {
        self.grammars.peek().map_or((0, 0), |g| {
            use std::sync::atomic::Ordering::Relaxed;
            (g.mask_ns.load(Relaxed), g.masks.load(Relaxed))
        })
    }

    /// Reference-mode tokenisation (`llama-tokenize --no-parse-special`).
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text, SpecialMode::UserDefined)
    }
}
