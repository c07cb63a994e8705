//! ROUGE-1/2/L/Lsum, computed exactly as Google's `rouge_score` (`rouge_scorer.py`,
//! no stemming) but on [`tokenize`](super::vi_tokenize::tokenize)'s Unicode-aware
//! tokens, so it equals `rouge_score` on ASCII text and stays meaningful on Vietnamese.
//!
//! - ROUGE-N: clipped n-gram overlap; P = overlap / max(|pred n-grams|, 1),
//!   R = overlap / max(|ref n-grams|, 1).
//! - ROUGE-L: longest common subsequence; P = lcs / |pred|, R = lcs / |ref|.
//! - ROUGE-Lsum: summary-level LCS over sentences split on `\n`: for each reference
//!   sentence, the union of its LCS positions against every predicted sentence, each
//!   token counted at most as often as it occurs on both sides.
//! - F = 2PR / (P + R), 0 when P + R = 0.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::vi_tokenize::tokenize;

/// Precision, recall and F-measure of one ROUGE variant.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RougeScore {
    /// Share of the prediction's units found in the reference.
    pub precision: f64,
    /// Share of the reference's units found in the prediction.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub fmeasure: f64,
}

impl RougeScore {
    fn new(precision: f64, recall: f64) -> Self {
        RougeScore { precision, recall, fmeasure: fmeasure(precision, recall) }
    }
}

/// The four ROUGE variants for one (prediction, reference) pair.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RougeScores {
    /// Unigram overlap.
    pub rouge1: RougeScore,
    /// Bigram overlap.
    pub rouge2: RougeScore,
    /// Longest common subsequence over the whole text.
    #[serde(rename = "rougeL")]
    pub rouge_l: RougeScore,
    /// Summary-level LCS over newline-separated sentences.
    #[serde(rename = "rougeLsum")]
    pub rouge_lsum: RougeScore,
}

/// `rouge_score.scoring.fmeasure`.
fn fmeasure(precision: f64, recall: f64) -> f64 {
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

/// Scores `prediction` against `reference` with ROUGE-1, -2, -L and -Lsum.
pub fn rouge(prediction: &str, reference: &str) -> RougeScores {
    let pred = tokenize(prediction);
    let refr = tokenize(reference);
    RougeScores {
        rouge1: rouge_n(&pred, &refr, 1),
        rouge2: rouge_n(&pred, &refr, 2),
        rouge_l: rouge_l(&pred, &refr),
        rouge_lsum: rouge_lsum(prediction, reference),
    }
}

/// ROUGE-N over already tokenized texts.
pub fn rouge_n(pred: &[String], refr: &[String], n: usize) -> RougeScore {
    let pred_ngrams = ngram_counts(pred, n);
    let ref_ngrams = ngram_counts(refr, n);
    let overlap: usize =
        ref_ngrams.iter().map(|(gram, &count)| count.min(pred_ngrams.get(gram).copied().unwrap_or(0))).sum();
    let pred_total: usize = pred_ngrams.values().sum();
    let ref_total: usize = ref_ngrams.values().sum();
    RougeScore::new(overlap as f64 / pred_total.max(1) as f64, overlap as f64 / ref_total.max(1) as f64)
}

fn ngram_counts(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    if n > 0 && tokens.len() >= n {
        for gram in tokens.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

/// ROUGE-L over already tokenized texts.
pub fn rouge_l(pred: &[String], refr: &[String]) -> RougeScore {
    if pred.is_empty() || refr.is_empty() {
        return RougeScore::default();
    }
    let table = lcs_table(refr, pred);
    let lcs = table[refr.len()][pred.len()] as f64;
    RougeScore::new(lcs / pred.len() as f64, lcs / refr.len() as f64)
}

/// `rouge_score._lcs_table`: `t[i][j]` is the LCS length of `a[..i]` and `b[..j]`.
fn lcs_table(a: &[String], b: &[String]) -> Vec<Vec<u32>> {
    let mut t = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            t[i][j] = if a[i - 1] == b[j - 1] { t[i - 1][j - 1] + 1 } else { t[i - 1][j].max(t[i][j - 1]) };
        }
    }
    t
}

/// `rouge_score._backtrack_norec`: indices into `a` of one LCS of `a` and `b`, with
/// the same tie-breaking as the reference.
fn lcs_indices(a: &[String], b: &[String]) -> Vec<usize> {
    let t = lcs_table(a, b);
    let (mut i, mut j) = (a.len(), b.len());
    let mut out = Vec::new();
    while i > 0 && j > 0 {
        if a[i - 1] == b[j - 1] {
            out.push(i - 1);
            i -= 1;
            j -= 1;
        } else if t[i][j - 1] > t[i - 1][j] {
            j -= 1;
        } else {
            i -= 1;
        }
    }
    out.reverse();
    out
}

/// Non-empty `\n`-separated sentences, as `rouge_score` splits them for ROUGE-Lsum.
fn sentences(text: &str) -> Vec<Vec<String>> {
    text.split('\n').filter(|s| !s.is_empty()).map(tokenize).collect()
}

/// ROUGE-Lsum (`rouge_score._summary_level_lcs`) of two raw texts.
pub fn rouge_lsum(prediction: &str, reference: &str) -> RougeScore {
    let ref_sents = sentences(reference);
    let pred_sents = sentences(prediction);
    let m: usize = ref_sents.iter().map(Vec::len).sum();
    let n: usize = pred_sents.iter().map(Vec::len).sum();
    if m == 0 || n == 0 {
        return RougeScore::default();
    }
    let mut ref_counts: HashMap<&str, usize> = HashMap::new();
    let mut pred_counts: HashMap<&str, usize> = HashMap::new();
    for tok in ref_sents.iter().flatten() {
        *ref_counts.entry(tok).or_insert(0) += 1;
    }
    for tok in pred_sents.iter().flatten() {
        *pred_counts.entry(tok).or_insert(0) += 1;
    }
    let mut hits = 0usize;
    for r in &ref_sents {
        let union: BTreeSet<usize> = pred_sents.iter().flat_map(|c| lcs_indices(r, c)).collect();
        for idx in union {
            let tok = r[idx].as_str();
            let (Some(pc), Some(rc)) = (pred_counts.get(tok).copied(), ref_counts.get(tok).copied()) else {
                continue;
            };
            if pc > 0 && rc > 0 {
                hits += 1;
                pred_counts.insert(tok, pc - 1);
                ref_counts.insert(tok, rc - 1);
            }
        }
    }
    RougeScore::new(hits as f64 / n as f64, hits as f64 / m as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_texts_score_one() {
        let s = rouge("Dạ, đơn hàng của chị đang giao ạ.", "Dạ, đơn hàng của chị đang giao ạ.");
        for v in [s.rouge1, s.rouge2, s.rouge_l, s.rouge_lsum] {
            assert!((v.fmeasure - 1.0).abs() < 1e-12, "{v:?}");
        }
    }

    #[test]
    fn hand_computed_lcs() {
        // ref: a b c d e; pred: a c e x -> lcs 3; P = 3/4, R = 3/5.
        let s = rouge("a c e x", "a b c d e");
        assert!((s.rouge_l.precision - 0.75).abs() < 1e-12);
        assert!((s.rouge_l.recall - 0.6).abs() < 1e-12);
        // bigrams: ref ab bc cd de, pred ac ce ex -> no overlap.
        assert_eq!(s.rouge2.fmeasure, 0.0);
    }

    #[test]
    fn empty_side_scores_zero() {
        assert_eq!(rouge("", "a b").rouge1.fmeasure, 0.0);
        assert_eq!(rouge("a b", "").rouge_lsum.fmeasure, 0.0);
    }
}
