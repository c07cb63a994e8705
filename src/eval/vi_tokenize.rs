//! The text tokenizer behind ROUGE: NFC, lowercase, split on anything that is not a
//! letter or a digit.
//!
//! Google's `rouge_score` lowercases and replaces `[^a-z0-9]+` with spaces, which
//! shatters Vietnamese ("Hà Nội" -> `h`, `n`, `i`; "đ" vanishes). This tokenizer keeps
//! every Unicode letter and digit (and the combining marks that belong to them), so a
//! Vietnamese syllable stays one token, while on ASCII text it yields exactly
//! `rouge_score`'s tokens (no stemming), which `tests/eval_text.rs` proves on the
//! committed goldens.

use unicode_normalization::char::is_combining_mark;

use crate::conversation::text::normalize;

/// Whether `c` belongs inside a token: a letter, a digit, or a combining mark
/// (which only occurs after NFC when no precomposed character exists).
fn is_token_char(c: char) -> bool {
    c.is_alphanumeric() || is_combining_mark(c)
}

/// Splits `text` into lowercase NFC tokens of letters and digits.
///
/// ```
/// use stylevn::eval::vi_tokenize::tokenize;
/// assert_eq!(tokenize("Đơn DH250004 đang giao, ạ!"), ["đơn", "dh250004", "đang", "giao", "ạ"]);
/// assert_eq!(tokenize("It's 9:30 a.m."), ["it", "s", "9", "30", "a", "m"]);
/// ```
pub fn tokenize(text: &str) -> Vec<String> {
    normalize(text).split(|c: char| !is_token_char(c)).filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use unicode_normalization::UnicodeNormalization;

    #[test]
    fn decomposed_and_composed_vietnamese_give_the_same_tokens() {
        let composed = "Hà Nội là thủ đô";
        let decomposed: String = composed.nfd().collect();
        assert_ne!(composed, decomposed);
        assert_eq!(tokenize(composed), tokenize(&decomposed));
        assert_eq!(tokenize(composed), ["hà", "nội", "là", "thủ", "đô"]);
    }

    #[test]
    fn uppercase_vietnamese_lowercases() {
        assert_eq!(tokenize("ĐÃ GIAO"), ["đã", "giao"]);
    }

    #[test]
    fn ascii_matches_rouge_score_rules() {
        assert_eq!(tokenize("Hello_world -- 3.14, OK?"), ["hello", "world", "3", "14", "ok"]);
        assert!(tokenize("  ... !!! ").is_empty());
    }
}
