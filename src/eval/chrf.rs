//! chrF (Popović 2015) at the sentence level, as sacreBLEU's `CHRF` defaults compute it:
//! character n-grams of orders 1..=6 over the text with all whitespace removed, no
//! word n-grams, beta = 2, case-sensitive. Precision and recall are averaged over the
//! orders that both sides have, then combined: F = (1 + b²)PR / (b²P + R).
//!
//! Unlike sacreBLEU, which reports 0-100, [`chrf`] returns a fraction in [0, 1] like
//! every other score in the report. Text is NFC-normalized first, so composed and
//! decomposed Vietnamese score the same (sacreBLEU counts code points as given).

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

/// sacreBLEU `CHRF.CHAR_ORDER`.
pub const CHAR_ORDER: usize = 6;
/// sacreBLEU `CHRF.BETA`: recall weighs twice as much as precision.
pub const BETA: f64 = 2.0;

/// Sentence-level chrF of `prediction` against `reference`, in [0, 1].
pub fn chrf(prediction: &str, reference: &str) -> f64 {
    let pred: Vec<char> = prediction.nfc().filter(|c| !c.is_whitespace()).collect();
    let refr: Vec<char> = reference.nfc().filter(|c| !c.is_whitespace()).collect();
    let factor = BETA * BETA;
    let (mut avg_prec, mut avg_rec, mut effective_order) = (0.0, 0.0, 0usize);
    for n in 1..=CHAR_ORDER {
        let p = char_ngrams(&pred, n);
        let r = char_ngrams(&refr, n);
        let n_hyp: usize = p.values().sum();
        let n_ref: usize = r.values().sum();
        let n_match: usize = p.iter().map(|(g, &c)| c.min(r.get(g).copied().unwrap_or(0))).sum();
        if n_hyp > 0 && n_ref > 0 {
            avg_prec += n_match as f64 / n_hyp as f64;
            avg_rec += n_match as f64 / n_ref as f64;
            effective_order += 1;
        }
    }
    if effective_order == 0 {
        return 0.0;
    }
    avg_prec /= effective_order as f64;
    avg_rec /= effective_order as f64;
    if avg_prec + avg_rec == 0.0 {
        return 0.0;
    }
    (1.0 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec)
}

fn char_ngrams(chars: &[char], n: usize) -> HashMap<&[char], usize> {
    let mut counts = HashMap::new();
    if chars.len() >= n {
        for g in chars.windows(n) {
            *counts.entry(g).or_insert(0) += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_is_one_and_disjoint_is_zero() {
        assert!((chrf("Đã giao ạ", "Đã giao ạ") - 1.0).abs() < 1e-12);
        assert_eq!(chrf("xyz", "abc"), 0.0);
        assert_eq!(chrf("", "abc"), 0.0);
    }

    #[test]
    fn hand_computed_unigram_only() {
        // "ab" vs "ac": order 1: 1/2 match each way; order 2: 0/1; orders 3+ absent on both.
        // avgP = avgR = (0.5 + 0) / 2 = 0.25 -> F = 0.25.
        assert!((chrf("ab", "ac") - 0.25).abs() < 1e-12);
    }
}
