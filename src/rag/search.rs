//! Hybrid search: dense cosine top-k and BM25 over Vietnamese syllables (an exact
//! field and a diacritic-folded one), fused with reciprocal rank fusion
//! (`score = sum 1 / (RRF_K + rank)`, Cormack et al. 2009), after the filters
//! (category, price range, in stock). Hits are grouped by what answers a query (the
//! SKU or policy section), keeping the best chunk.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use super::bm25::Bm25;
use super::chunk::{DocKind, Document};
use super::encoders::{cosine, Encoder};
use super::index::{current_generation, Index};
use super::text;
use crate::Result;

/// RRF's rank constant (60, from Cormack, Clarke & Buettcher, SIGIR 2009).
pub const RRF_K: f32 = 60.0;
/// How deep each ranked list goes before fusion.
pub const CANDIDATES: usize = 50;

/// Which rankings to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Dense + BM25, fused with RRF.
    #[default]
    Hybrid,
    /// Cosine similarity only.
    Dense,
    /// BM25 only.
    Bm25,
}

/// Filters and depth of a search.
#[derive(Debug, Clone, Default)]
pub struct SearchOptions {
    /// Hits to return.
    pub k: usize,
    /// Only this category (compared NFC-lowercased, diacritics folded).
    pub category: Option<String>,
    /// Only products costing at least this many dong.
    pub min_price_vnd: Option<u64>,
    /// Only products costing at most this many dong.
    pub max_price_vnd: Option<u64>,
    /// Only products in stock (policies always pass).
    pub in_stock: bool,
    /// Only products, or only policies.
    pub kind: Option<DocKind>,
    /// Rankings to use.
    pub mode: SearchMode,
}

/// One search result.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    /// What answers the query: SKU or policy section id.
    pub parent: String,
    /// The best-matching document (chunk) id.
    pub id: String,
    /// Fused score (RRF), or cosine / BM25 in single modes.
    pub score: f32,
    /// Cosine similarity of the chunk, when dense ranking ran.
    pub dense: Option<f32>,
    /// BM25 score of the chunk (exact + folded fields), when it matched.
    pub bm25: Option<f32>,
    /// The document.
    pub doc: Document,
}

/// A loaded index with its keyword fields, ready to answer queries.
pub struct Searcher {
    index: Index,
    exact: Bm25,
    folded: Bm25,
}

impl Searcher {
    /// Loads the live generation of `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        Ok(Self::new(Index::open(dir)?))
    }

    /// Builds the keyword fields of a loaded index.
    pub fn new(index: Index) -> Self {
        let exact = Bm25::build(index.docs.iter().map(|d| text::syllables(&d.text)));
        let folded = Bm25::build(index.docs.iter().map(|d| text::folded_syllables(&d.text)));
        Searcher { index, exact, folded }
    }

    /// The index searched.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Whether the index directory has published a newer generation than the one loaded
    /// (`serve` then calls [`Searcher::open`] again; the old one stays valid meanwhile).
    pub fn is_stale(&self) -> Result<bool> {
        Ok(current_generation(&self.index.dir)?.as_deref() != Some(self.index.generation()))
    }

    /// Searches with `encoder` (which must be the index's: see [`Searcher::load_encoder`]).
    pub fn search(&self, encoder: Option<&Encoder>, query: &str, opts: &SearchOptions) -> Result<Vec<Hit>> {
        let allowed: Vec<usize> = (0..self.index.docs.len()).filter(|&i| passes(&self.index.docs[i], opts)).collect();
        let use_dense = opts.mode != SearchMode::Bm25;
        let use_bm25 = opts.mode != SearchMode::Dense;

        let mut dense: HashMap<usize, f32> = HashMap::new();
        if use_dense {
            let encoder = encoder.ok_or_else(|| crate::Error::msg("dense search needs the index's encoder"))?;
            let q = encoder.embed_query(query)?;
            dense = allowed.iter().map(|&i| (i, cosine(&q, self.index.vector(i)))).collect();
        }
        let mut keyword: HashMap<usize, f32> = HashMap::new();
        if use_bm25 {
            let exact = self.exact.scores(&text::syllables(query));
            let folded = self.folded.scores(&text::folded_syllables(query));
            for &i in &allowed {
                let s = exact.get(&i).copied().unwrap_or(0.0) + folded.get(&i).copied().unwrap_or(0.0);
                if s > 0.0 {
                    keyword.insert(i, s);
                }
            }
        }
        let dense_rank = ranked(&dense);
        let bm25_rank = ranked(&keyword);
        let mut fused: HashMap<usize, f32> = HashMap::new();
        match opts.mode {
            SearchMode::Dense => fused.extend(dense_rank.iter().map(|&i| (i, dense[&i]))),
            SearchMode::Bm25 => fused.extend(bm25_rank.iter().map(|&i| (i, keyword[&i]))),
            SearchMode::Hybrid => {
                for list in [&dense_rank, &bm25_rank] {
                    for (rank, &i) in list.iter().take(CANDIDATES).enumerate() {
                        *fused.entry(i).or_default() += 1.0 / (RRF_K + rank as f32 + 1.0);
                    }
                }
            }
        }
        // Best chunk per parent, best parents first.
        let mut best: HashMap<&str, (usize, f32)> = HashMap::new();
        for (&i, &s) in &fused {
            let parent = self.index.docs[i].parent.as_str();
            let e = best.entry(parent).or_insert((i, s));
            if s > e.1 || (s == e.1 && i < e.0) {
                *e = (i, s);
            }
        }
        let mut hits: Vec<(usize, f32)> = best.into_values().collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(hits
            .into_iter()
            .take(opts.k.max(1))
            .map(|(i, score)| {
                let doc = self.index.docs[i].clone();
                Hit {
                    parent: doc.parent.clone(),
                    id: doc.id.clone(),
                    score,
                    dense: dense.get(&i).copied(),
                    bm25: keyword.get(&i).copied(),
                    doc,
                }
            })
            .collect())
    }

    /// Loads the encoder that made this index's vectors (the manifest's model), checking its id.
    pub fn load_encoder(&self) -> Result<Encoder> {
        let m = &self.index.manifest;
        let encoder = Encoder::load(&m.model)?;
        if encoder.id() != m.encoder_id {
            return Err(crate::Error::msg(format!(
                "{}: the index was built with encoder {} but {} is now {}; rebuild with `stylevn embed-catalog --full`",
                self.index.dir.display(),
                m.encoder_id,
                m.model,
                encoder.id()
            )));
        }
        Ok(encoder)
    }
}

/// Document indices by descending score (ties by index, so results are deterministic).
fn ranked(scores: &HashMap<usize, f32>) -> Vec<usize> {
    let mut v: Vec<usize> = scores.keys().copied().collect();
    v.sort_by(|a, b| scores[b].total_cmp(&scores[a]).then(a.cmp(b)));
    v
}

fn passes(d: &Document, o: &SearchOptions) -> bool {
    if o.kind.is_some_and(|k| k != d.kind) {
        return false;
    }
    if d.kind == DocKind::Policy {
        return o.category.is_none() && o.min_price_vnd.is_none() && o.max_price_vnd.is_none();
    }
    if let Some(c) = &o.category {
        if text::folded_syllables(c) != text::folded_syllables(&d.category) {
            return false;
        }
    }
    let price = d.price_vnd.unwrap_or(0);
    o.min_price_vnd.is_none_or(|m| price >= m)
        && o.max_price_vnd.is_none_or(|m| price <= m)
        && (!o.in_stock || d.in_stock())
}
