//! Vietnamese text normalisation for keyword search.
//!
//! Vietnamese writes one syllable per space-separated unit ("áo khoác nữ"), so
//! syllables are the tokens: text is NFC-normalised (the same letter typed as a
//! precomposed character or as base + combining marks becomes one form),
//! lowercased, and split on every character that is not a letter or digit. The
//! folded form drops the tone and vowel marks and maps `đ` to `d`, so a customer
//! typing without diacritics ("ao khoac nu") matches "Áo khoác nữ". Both forms are
//! the conversation core's normaliser ([`crate::conversation::text`]).

use crate::conversation::text::{normalize, Normalize};

/// Syllable tokens of `text`: NFC, lowercase, split on non-alphanumerics.
pub fn syllables(text: &str) -> Vec<String> {
    split_words(&normalize(text))
}

/// Syllable tokens of `text` with diacritics folded away ("Áo khoác" -> "ao", "khoac").
pub fn folded_syllables(text: &str) -> Vec<String> {
    let folded = Normalize { lowercase: true, strip_marks: true, collapse_spaces: false };
    split_words(&folded.apply(text))
}

fn split_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfc_lowercase_syllables() {
        // "Áo" typed as A + combining acute + o: the same token as the precomposed form.
        assert_eq!(syllables("A\u{301}o KHOÁC-nữ, 2024!"), vec!["áo", "khoác", "nữ", "2024"]);
    }

    #[test]
    fn folding_drops_marks_and_d_stroke() {
        assert_eq!(folded_syllables("Áo khoác nữ Đỏ đậm"), vec!["ao", "khoac", "nu", "do", "dam"]);
        assert_eq!(folded_syllables("ao khoac nu"), vec!["ao", "khoac", "nu"]);
    }
}
