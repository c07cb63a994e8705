//! Retrieval evaluation: recall@k of a query set (`evals/retrieval.jsonl`), one JSON
//! object per line: `{"query": "...", "answers": ["AT001", "doi-tra#phi-doi-tra"], ...}`.
//! A query is answered when any of its answers (SKU or policy section id) is among
//! the top k hits; recall@k is the fraction of queries answered.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::encoders::Encoder;
use super::search::{SearchMode, SearchOptions, Searcher};
use crate::Result;

/// One labelled query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalQuery {
    /// The query as a customer typed it.
    pub query: String,
    /// SKUs or policy section ids that answer it.
    pub answers: Vec<String>,
    /// Free-form labels (`kind`, `style`), kept for breakdowns.
    #[serde(flatten)]
    pub labels: serde_json::Map<String, serde_json::Value>,
}

/// Recall of one search mode.
#[derive(Debug, Clone, Serialize)]
pub struct RecallReport {
    /// The mode evaluated.
    pub mode: SearchMode,
    /// Depth.
    pub k: usize,
    /// Queries evaluated.
    pub queries: usize,
    /// Queries with an answer in the top k.
    pub answered: usize,
    /// `answered / queries`.
    pub recall: f64,
    /// The queries not answered, with what came back instead.
    pub misses: Vec<(String, Vec<String>)>,
}

/// Reads a query file.
pub fn read_queries(path: &Path) -> Result<Vec<EvalQuery>> {
    Ok(crate::jsonl::read_jsonl(path, |e| e.to_string())?.into_iter().map(|(_, q)| q).collect())
}

/// Recall@k of `queries` with `mode` (the encoder is needed for dense and hybrid).
pub fn recall_at_k(
    searcher: &Searcher,
    encoder: Option<&Encoder>,
    queries: &[EvalQuery],
    k: usize,
    mode: SearchMode,
) -> Result<RecallReport> {
    let opts = SearchOptions { k, mode, ..Default::default() };
    let mut report = RecallReport { mode, k, queries: queries.len(), answered: 0, recall: 0.0, misses: Vec::new() };
    for q in queries {
        let hits = searcher.search(encoder, &q.query, &opts)?;
        if hits.iter().any(|h| q.answers.contains(&h.parent)) {
            report.answered += 1;
        } else {
            report.misses.push((q.query.clone(), hits.into_iter().map(|h| h.parent).collect()));
        }
    }
    report.recall = if queries.is_empty() { 0.0 } else { report.answered as f64 / queries.len() as f64 };
    Ok(report)
}
