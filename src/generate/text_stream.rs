//! Incremental detokenization: turns a growing list of token ids into text pieces
//! as soon as they form complete UTF-8 (byte-level BPE splits characters such as
//! Vietnamese letters with diacritics across tokens).

use tokenizers::Tokenizer;

use crate::Result;

/// Decodes tokens one at a time and yields only text that is final.
pub struct TextStream<'a> {
    tokenizer: &'a Tokenizer,
    tokens: Vec<u32>,
    /// Characters (bytes) of the decoded text already handed out.
    emitted: usize,
}

impl<'a> TextStream<'a> {
    /// A stream over `tokenizer`, starting empty.
    pub fn new(tokenizer: &'a Tokenizer) -> Self {
        TextStream { tokenizer, tokens: Vec::new(), emitted: 0 }
    }

    /// Adds `token` and returns the new final text, if any.
    pub fn push(&mut self, token: u32) -> Result<Option<String>> {
        self.tokens.push(token);
        let text = self.tokenizer.decode(&self.tokens, true)?;
        // An incomplete UTF-8 sequence decodes to U+FFFD: wait for the next token.
        if text.ends_with('\u{fffd}') || text.len() <= self.emitted || !text.is_char_boundary(self.emitted) {
            return Ok(None);
        }
        let piece = text[self.emitted..].to_string();
        self.emitted = text.len();
        Ok(Some(piece))
    }

    /// The whole decoded text so far.
    pub fn text(&self) -> Result<String> {
        Ok(self.tokenizer.decode(&self.tokens, true)?)
    }
}
