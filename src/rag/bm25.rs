//! Okapi BM25 over token lists, with the usual Lucene constants (k1 = 1.2, b = 0.75)
//! and the non-negative idf `ln(1 + (N - df + 0.5) / (df + 0.5))`.

use std::collections::HashMap;

/// Term-frequency saturation (Lucene's default).
pub const K1: f32 = 1.2;
/// Length normalisation (Lucene's default).
pub const B: f32 = 0.75;

/// An inverted index of one text field.
#[derive(Debug, Default, Clone)]
pub struct Bm25 {
    postings: HashMap<String, Vec<(u32, u32)>>,
    doc_len: Vec<u32>,
    avg_len: f32,
}

impl Bm25 {
    /// Indexes `docs`, each a list of tokens; document ids are their positions.
    pub fn build<I, D>(docs: I) -> Self
    where
        I: IntoIterator<Item = D>,
        D: AsRef<[String]>,
    {
        let mut index = Bm25::default();
        for (id, tokens) in docs.into_iter().enumerate() {
            let tokens = tokens.as_ref();
            let mut tf: HashMap<&str, u32> = HashMap::new();
            for t in tokens {
                *tf.entry(t).or_default() += 1;
            }
            for (t, n) in tf {
                index.postings.entry(t.to_string()).or_default().push((id as u32, n));
            }
            index.doc_len.push(tokens.len() as u32);
        }
        let total: u64 = index.doc_len.iter().map(|&l| l as u64).sum();
        index.avg_len = if index.doc_len.is_empty() { 0.0 } else { total as f32 / index.doc_len.len() as f32 };
        index
    }

    /// Number of indexed documents.
    pub fn len(&self) -> usize {
        self.doc_len.len()
    }

    /// Whether no document is indexed.
    pub fn is_empty(&self) -> bool {
        self.doc_len.is_empty()
    }

    /// BM25 score of every document that shares a term with `query` (repeated query
    /// terms count once), as `(doc id, score)`, unordered.
    pub fn scores(&self, query: &[String]) -> HashMap<usize, f32> {
        let mut seen = std::collections::HashSet::new();
        let mut out: HashMap<usize, f32> = HashMap::new();
        let n = self.doc_len.len() as f32;
        for term in query {
            if !seen.insert(term.as_str()) {
                continue;
            }
            let Some(posting) = self.postings.get(term) else { continue };
            let df = posting.len() as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(doc, tf) in posting {
                let tf = tf as f32;
                let len_norm = 1.0 - B + B * self.doc_len[doc as usize] as f32 / self.avg_len.max(1e-6);
                *out.entry(doc as usize).or_default() += idf * tf * (K1 + 1.0) / (tf + K1 * len_norm);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn rare_terms_and_short_documents_score_higher() {
        let index = Bm25::build([toks("ao khoac nu mau den"), toks("ao thun nam"), toks("quan jean nam ong dung")]);
        let s = index.scores(&toks("ao khoac"));
        assert!(s[&0] > s[&1], "{s:?}");
        assert!(!s.contains_key(&2));
        // idf: "khoac" (1 doc) outweighs "ao" (2 docs).
        let only_ao = index.scores(&toks("ao"));
        assert!(s[&0] > only_ao[&0]);
    }

    #[test]
    fn matches_the_formula_on_one_document() {
        let index = Bm25::build([toks("a b"), toks("c")]);
        let s = index.scores(&toks("a"));
        let idf = (1.0f32 + (2.0 - 1.0 + 0.5) / 1.5).ln();
        let len_norm = 1.0 - B + B * 2.0 / 1.5;
        let expected = idf * (K1 + 1.0) / (1.0 + K1 * len_norm);
        assert!((s[&0] - expected).abs() < 1e-6);
    }
}
