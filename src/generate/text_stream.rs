//! Incremental detokenization: turns a growing list of token ids into text pieces
//! as soon as they form complete UTF-8 (byte-level BPE splits characters such as
//! Vietnamese letters with diacritics across tokens).
//!
//! Each step decodes only a short window: the tokens from the start of the last
//! emitted piece (`prefix`) on. The new text is what the window decodes to beyond
//! the already-emitted part of it, so a decoder that treats the first token
//! specially (a leading-space rule) sees the same context both times.

use tokenizers::Tokenizer;

use crate::Result;

/// Decodes tokens one at a time and yields only text that is final.
pub struct TextStream<'a> {
    tokenizer: &'a Tokenizer,
    tokens: Vec<u32>,
    /// Start of the window: the first token of the last emitted piece.
    prefix: usize,
    /// End of what has been emitted.
    read: usize,
}

impl<'a> TextStream<'a> {
    /// A stream over `tokenizer`, starting empty.
    pub fn new(tokenizer: &'a Tokenizer) -> Self {
        TextStream { tokenizer, tokens: Vec::new(), prefix: 0, read: 0 }
    }

    /// Adds `token` and returns the new final text, if any.
    pub fn push(&mut self, token: u32) -> Result<Option<String>> {
        self.tokens.push(token);
        let done = self.tokenizer.decode(&self.tokens[self.prefix..self.read], true)?;
        let text = self.tokenizer.decode(&self.tokens[self.prefix..], true)?;
        // An incomplete UTF-8 sequence decodes to U+FFFD: wait for the next token.
        if text.ends_with('\u{fffd}') || text.len() <= done.len() || !text.is_char_boundary(done.len()) {
            return Ok(None);
        }
        let piece = text[done.len()..].to_string();
        self.prefix = self.read;
        self.read = self.tokens.len();
        Ok(Some(piece))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    use tokenizers::pre_tokenizers::byte_level::ByteLevel;

    /// A byte-level tokenizer with one token per byte: multi-byte characters span tokens.
    fn bytes_tokenizer() -> Tokenizer {
        let vocab: serde_json::Map<String, serde_json::Value> =
            ByteLevel::alphabet().into_iter().enumerate().map(|(i, c)| (c.to_string(), i.into())).collect();
        let byte_level = serde_json::json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false});
        let json = serde_json::json!({
            "version": "1.0", "added_tokens": [], "normalizer": null, "pre_tokenizer": byte_level,
            "post_processor": null, "decoder": byte_level, "truncation": null, "padding": null,
            "model": {"type": "BPE", "vocab": vocab, "merges": []},
        });
        Tokenizer::from_str(&json.to_string()).unwrap()
    }

    #[test]
    fn pieces_join_to_the_full_decode_and_never_split_a_character() {
        let tok = bytes_tokenizer();
        let text = "Dạ, áo khoác nữ còn size M ạ 👗";
        let ids = tok.encode(text, false).unwrap().get_ids().to_vec();
        assert!(ids.len() > text.chars().count(), "multi-byte characters span several tokens");
        let mut stream = TextStream::new(&tok);
        let mut joined = String::new();
        for id in ids {
            if let Some(piece) = stream.push(id).unwrap() {
                assert!(!piece.contains('\u{fffd}'));
                joined.push_str(&piece);
            }
        }
        assert_eq!(joined, text);
    }
}
