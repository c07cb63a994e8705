//! Catalog retrieval: sentence encoders in candle, catalog and policy ingest, an
//! incremental on-disk vector index with atomic generations, Vietnamese BM25 and
//! hybrid (dense + BM25, reciprocal rank fusion) search with filters.
//!
//! Data flows one way: [`ingest`] reads the catalog and policies into
//! [`ingest::Document`]s, [`chunk`] cuts long ones, [`build`] embeds only what
//! changed and publishes a new index generation, [`search`] reads the current one.

pub mod encoders;

pub use encoders::{Encoder, Pooling, Precision, TextKind};
pub mod bm25;
pub mod build;
pub mod chunk;
pub mod config;
pub mod eval;
pub mod index;
pub mod ingest;
pub mod search;
pub mod text;

pub use build::{build_index, BuildOptions, BuildProgress, BuildSummary};
pub use chunk::{ChunkOptions, DocKind, Document};
pub use config::CatalogConfig;
pub use index::{Index, IndexLock};
pub use search::{Hit, SearchMode, SearchOptions, Searcher};
