//! Vietnamese text normalisation for keyword search.
//!
//! Vietnamese writes one syllable per space-separated unit ("áo khoác nữ"), so
//! syllables are the tokens: text is NFC-normalised (the same letter typed as a
//! precomposed character or as base + combining marks becomes one form),
//! lowercased, and split on every character that is not a letter or digit. The
//! folded form drops the tone and vowel marks and maps `đ` to `d`, so a customer
//! typing without diacritics ("ao khoac nu") matches "Áo khoác nữ".

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// NFC + lowercase.
pub fn normalize(text: &str) -> String {
    text.nfc().collect::<String>().to_lowercase()
}

/// Syllable tokens of `text`: NFC, lowercase, split on non-alphanumerics.
pub fn syllables(text: &str) -> Vec<String> {
    split_words(&normalize(text))
}

/// `text` without diacritics: NFD, combining marks dropped, `đ`/`Đ` -> `d`/`D`.
pub fn fold_diacritics(text: &str) -> String {
    text.nfd()
        .filter(|c| !is_combining_mark(*c))
        .map(|c| match c {
            'đ' => 'd',
            'Đ' => 'D',
            c => c,
        })
        .collect()
}

/// Syllable tokens of `text` with diacritics folded away ("Áo khoác" -> "ao", "khoac").
pub fn folded_syllables(text: &str) -> Vec<String> {
    split_words(&fold_diacritics(&text.to_lowercase()))
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
        assert_eq!(fold_diacritics("Giày thể thao"), "Giay the thao");
    }
}
