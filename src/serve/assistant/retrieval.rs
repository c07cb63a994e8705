//! Retrieval of catalog and policy chunks for a customer's turn, over the index
//! `embed-catalog` publishes. When a newer generation is published the next search
//! loads it (hot reload); searches in flight keep the one they started with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::rag::{Encoder, Hit, SearchMode, SearchOptions, Searcher};
use crate::{Error, Result};

/// A searcher that follows the index directory's live generation.
pub struct Retriever {
    dir: PathBuf,
    current: RwLock<Arc<Searcher>>,
    encoder: Option<Encoder>,
    options: SearchOptions,
}

impl Retriever {
    /// Opens the live generation of `dir`; `mode` other than BM25 loads the index's encoder.
    pub fn open(dir: &Path, mode: SearchMode, k: usize) -> Result<Self> {
        let searcher = Searcher::open(dir)?;
        let encoder = if mode == SearchMode::Bm25 { None } else { Some(searcher.load_encoder()?) };
        let options = SearchOptions { k, mode, ..SearchOptions::default() };
        Ok(Retriever { dir: dir.to_path_buf(), current: RwLock::new(Arc::new(searcher)), encoder, options })
    }

    /// The loaded searcher, reloaded first when the directory has a newer generation.
    pub fn searcher(&self) -> Result<Arc<Searcher>> {
        let now = self.current.read().map_err(|_| Error::msg("retriever lock poisoned"))?.clone();
        if !now.is_stale()? {
            return Ok(now);
        }
        let fresh = Arc::new(Searcher::open(&self.dir)?);
        *self.current.write().map_err(|_| Error::msg("retriever lock poisoned"))? = fresh.clone();
        Ok(fresh)
    }

    /// The generation searched now (part of the answer cache's key).
    pub fn generation(&self) -> Result<String> {
        Ok(self.searcher()?.index().generation().to_string())
    }

    /// The best chunks for `query`.
    pub fn search(&self, query: &str) -> Result<Vec<Hit>> {
        self.searcher()?.search(self.encoder.as_ref(), query, &self.options)
    }

    /// The query embedding (for the semantic cache), when an encoder is loaded.
    pub fn embed(&self, query: &str) -> Option<Result<Vec<f32>>> {
        self.encoder.as_ref().map(|e| e.embed_query(query))
    }
}
