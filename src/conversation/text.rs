//! The one Vietnamese text normaliser behind every comparison of what people write:
//! grounding, tool-argument matching, search, routing, the answer cache, the input
//! guard and synth's noise.
//!
//! [`Normalize`] names each step; the three uses are constants:
//!
//! | variant | NFC | lowercase | marks | spaces | "Đã  Giao" |
//! |---|---|---|---|---|---|
//! | [`Normalize::CASE`] ([`normalize`]) | yes | yes | kept | kept | `đã  giao` |
//! | [`Normalize::MARKS`] ([`strip_diacritics`]) | - | no | dropped, `đ` -> `d` | kept | `Da  Giao` |
//! | [`Normalize::FOLD`] ([`fold`]) | - | yes | dropped, `đ` -> `d` | collapsed | `da giao` |
//!
//! Marks are dropped after NFD, so a letter typed precomposed or as base + combining
//! marks folds the same; `đ`/`Đ` have no decomposition and map to `d`/`D` by hand.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Which normalisation steps to apply, in this order: lowercase, strip marks,
/// collapse whitespace. The result is NFC unless marks are stripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Normalize {
    /// Fold case (Unicode lowercase).
    pub lowercase: bool,
    /// Drop tone and vowel marks (every combining mark after NFD) and map `đ` -> `d`.
    pub strip_marks: bool,
    /// Collapse runs of whitespace to one space and trim the ends.
    pub collapse_spaces: bool,
}

impl Normalize {
    /// NFC + lowercase: compares spellings that differ only in case or Unicode form.
    pub const CASE: Normalize = Normalize { lowercase: true, strip_marks: false, collapse_spaces: false };
    /// Diacritics removed, case kept: how customers type without marks.
    pub const MARKS: Normalize = Normalize { lowercase: false, strip_marks: true, collapse_spaces: false };
    /// Lowercase, no diacritics, spaces collapsed: the key for matching what a customer
    /// typed against the store's names.
    pub const FOLD: Normalize = Normalize { lowercase: true, strip_marks: true, collapse_spaces: true };

    /// `text` normalised.
    pub fn apply(&self, text: &str) -> String {
        let mut out: String = text.nfc().collect();
        if self.lowercase {
            out = out.chars().flat_map(char::to_lowercase).collect::<String>().nfc().collect();
        }
        if self.strip_marks {
            out = out
                .nfd()
                .filter(|c| !is_combining_mark(*c))
                .map(|c| match c {
                    'đ' => 'd',
                    'Đ' => 'D',
                    c => c,
                })
                .collect();
        }
        if self.collapse_spaces {
            out = out.split_whitespace().collect::<Vec<_>>().join(" ");
        }
        out
    }
}

/// NFC + lowercase ([`Normalize::CASE`]).
pub fn normalize(text: &str) -> String {
    Normalize::CASE.apply(text)
}

/// Removes Vietnamese diacritics, keeping case ([`Normalize::MARKS`]): "Đã giao" -> "Da giao".
pub fn strip_diacritics(text: &str) -> String {
    Normalize::MARKS.apply(text)
}

/// Lowercase, diacritics removed, whitespace collapsed ([`Normalize::FOLD`]).
pub fn fold(text: &str) -> String {
    Normalize::FOLD.apply(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_variants() {
        assert_eq!(normalize("Đã  Giao"), "đã  giao");
        assert_eq!(strip_diacritics("Đã  Giao"), "Da  Giao");
        assert_eq!(fold("  Đã  Giao "), "da giao");
        assert_eq!(fold("  Áo Thun  ĐEN "), "ao thun den");
    }

    #[test]
    fn strips_marks_and_d_stroke() {
        assert_eq!(strip_diacritics("Đã giao hàng"), "Da giao hang");
        assert_eq!(strip_diacritics("Giày thể thao"), "Giay the thao");
        assert_eq!(fold("Áo khoác nữ Đỏ đậm"), "ao khoac nu do dam");
    }

    #[test]
    fn composed_and_decomposed_agree() {
        let composed = "Hà Nội là thủ đô";
        let decomposed: String = composed.nfd().collect();
        assert_ne!(composed, decomposed);
        assert_eq!(normalize(composed), normalize(&decomposed));
        assert_eq!(fold(composed), fold(&decomposed));
        assert_eq!(normalize("ĐÃ GIAO"), "đã giao");
    }
}
