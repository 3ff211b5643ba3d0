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
}

impl LoadedModel {
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let file = Arc::new(GgufFile::open(path)?);
        let model = Model::from_gguf(file.clone())?;
        let tokenizer = Tokenizer::from_gguf(&file)?;
        let template = ChatTemplate::from_gguf(&file)?;
        Ok(Self {
            model,
            tokenizer,
            template,
        })
    }

    /// Prompt token ids for a conversation, ending with the assistant's turn opened.
    pub fn chat_prompt(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        let pieces = self.template.render(messages, None, true)?;
        Ok(chat::tokenize_pieces(&self.tokenizer, &pieces))
    }

    /// Reference-mode tokenisation (`llama-tokenize --no-parse-special`).
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text, SpecialMode::UserDefined)
    }
}
