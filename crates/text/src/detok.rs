//! Incremental detokenisation: bytes accumulate until they form whole UTF-8 characters, so a
//! character split across tokens is never emitted broken.

use crate::Tokenizer;

#[derive(Default)]
pub struct Detokenizer {
    pending: Vec<u8>,
}

impl Detokenizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a token; returns the text that became complete (possibly empty). Control tokens
    /// (`<|im_end|>`…) produce no text.
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> String {
        if tok.is_control(id) {
            return String::new();
        }
        self.pending.extend_from_slice(tok.token_bytes(id));
        self.take_valid()
    }

    fn take_valid(&mut self) -> String {
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) => match e.error_len() {
                // An incomplete sequence at the end: hold it for the next token.
                None => e.valid_up_to(),
                // A sequence that can never become valid: emit everything up to and past it as
                // replacement characters rather than stall forever.
                Some(_) => {
                    let s = String::from_utf8_lossy(&self.pending).into_owned();
                    self.pending.clear();
                    return s;
                }
            },
        };
        let rest = self.pending.split_off(valid);
        let done = std::mem::replace(&mut self.pending, rest);
        String::from_utf8(done).expect("checked valid")
    }

    /// Whatever is left at the end of generation (an incomplete sequence becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}
