//! Documents for the index: one per product (name, category, price, sizes, colours,
//! description) and one per policy section, long texts cut into overlapping chunks.
//!
//! Chunks are measured in whitespace tokens (Vietnamese syllables), which keeps the
//! cut independent of the encoder: the content hash of a chunk, and so whether it
//! must be re-embedded, does not change when the model's tokenizer does. The
//! defaults (`configs/catalog.toml`) keep a chunk under both all-MiniLM's 256 and
//! e5's 512 model tokens.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ingest::PolicySection;
use crate::data::product::Product;

/// What a document came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocKind {
    /// A catalog row.
    Product,
    /// A policy or FAQ section.
    Policy,
}

/// One indexed text with the metadata search filters on and shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Unique id: the SKU or policy section id, with `~2`, `~3`... for later chunks.
    pub id: String,
    /// What answers a query: the SKU, or the policy section id (`doi-tra#phi`).
    pub parent: String,
    /// Product or policy.
    pub kind: DocKind,
    /// Product name or section title.
    pub title: String,
    /// The embedded (and keyword-indexed) text.
    pub text: String,
    /// Product category (empty for policies).
    pub category: String,
    /// Product price in dong.
    pub price_vnd: Option<u64>,
    /// Units in stock, when known.
    pub stock: Option<i64>,
    /// Product page.
    pub url: String,
    /// `file:line` of the row or the policy file.
    pub source: String,
    /// sha256 of `text` (hex): unchanged hash, unchanged vector.
    pub hash: String,
}

impl Document {
    /// Whether the product is in stock (policies and unknown stock count as in stock).
    pub fn in_stock(&self) -> bool {
        self.stock.is_none_or(|s| s > 0)
    }
}

/// How long texts are cut.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ChunkOptions {
    /// Whitespace tokens per chunk.
    pub max_tokens: usize,
    /// Tokens repeated at the start of the next chunk.
    pub overlap_tokens: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions { max_tokens: 160, overlap_tokens: 32 }
    }
}

/// Formats a price the Vietnamese way: `450.000đ`.
pub fn format_vnd(price: u64) -> String {
    let digits = price.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    out + "đ"
}

/// The text a product is embedded as.
pub fn product_text(p: &Product) -> String {
    let mut parts = vec![p.name.clone()];
    if !p.category.is_empty() {
        parts.push(format!("Danh mục: {}", p.category));
    }
    parts.push(format!("Giá: {}", format_vnd(p.price_vnd)));
    if !p.sizes.is_empty() {
        parts.push(format!("Size: {}", p.sizes.join(", ")));
    }
    if !p.colors.is_empty() {
        parts.push(format!("Màu: {}", p.colors.join(", ")));
    }
    if !p.material.is_empty() {
        parts.push(format!("Chất liệu: {}", p.material));
    }
    if !p.description.is_empty() {
        parts.push(p.description.clone());
    }
    parts.join(". ")
}

/// The documents of a product (one, or more when its description is long).
pub fn product_documents(p: &Product, opts: &ChunkOptions) -> Vec<Document> {
    let base = Document {
        id: p.sku.clone(),
        parent: p.sku.clone(),
        kind: DocKind::Product,
        title: p.name.clone(),
        text: String::new(),
        category: p.category.clone(),
        price_vnd: Some(p.price_vnd),
        stock: p.stock,
        url: p.url.clone(),
        source: p.source.clone(),
        hash: String::new(),
    };
    let text = product_text(p);
    // Later chunks repeat the name so each one says what it is about.
    split_chunks(&text, opts)
        .into_iter()
        .enumerate()
        .map(|(i, t)| if i == 0 { t } else { format!("{}. {t}", p.name) })
        .enumerate()
        .map(|(i, t)| with_text(&base, i, t))
        .collect()
}

/// The documents of a policy section.
pub fn policy_documents(s: &PolicySection, opts: &ChunkOptions) -> Vec<Document> {
    let base = Document {
        id: s.id.clone(),
        parent: s.id.clone(),
        kind: DocKind::Policy,
        title: s.title.clone(),
        text: String::new(),
        category: String::new(),
        price_vnd: None,
        stock: None,
        url: String::new(),
        source: s.source.clone(),
        hash: String::new(),
    };
    split_chunks(&s.text, opts)
        .into_iter()
        .enumerate()
        .map(|(i, t)| with_text(&base, i, format!("{}. {t}", s.title)))
        .collect()
}

fn with_text(base: &Document, i: usize, text: String) -> Document {
    let id = if i == 0 { base.id.clone() } else { format!("{}~{}", base.id, i + 1) };
    Document { id, hash: content_hash(&text), text, ..base.clone() }
}

/// sha256 hex of a text.
pub fn content_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Cuts `text` into chunks of at most `max_tokens` whitespace tokens, each starting
/// `overlap_tokens` before the previous one ended. Whitespace inside a chunk is
/// normalised to single spaces.
pub fn split_chunks(text: &str, opts: &ChunkOptions) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let max = opts.max_tokens.max(1);
    if words.len() <= max {
        return vec![words.join(" ")];
    }
    let step = max.saturating_sub(opts.overlap_tokens).max(1);
    let mut chunks = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + max).min(words.len());
        chunks.push(words[start..end].join(" "));
        if end == words.len() {
            break;
        }
        start += step;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_overlap_and_cover_everything() {
        let text: String = (0..25).map(|i| format!("w{i} ")).collect();
        let chunks = split_chunks(&text, &ChunkOptions { max_tokens: 10, overlap_tokens: 3 });
        // Starts every 10 - 3 = 7 tokens: 0..10, 7..17, 14..24, 21..25.
        assert_eq!(chunks.len(), 4);
        assert!(chunks[0].starts_with("w0 ") && chunks[0].ends_with("w9"));
        assert!(chunks[1].starts_with("w7 "), "{}", chunks[1]);
        assert!(chunks[3].starts_with("w21 ") && chunks[3].ends_with("w24"));
        assert_eq!(split_chunks("a  b\nc", &ChunkOptions::default()), vec!["a b c"]);
    }

    #[test]
    fn prices_format_with_dots() {
        assert_eq!(format_vnd(450_000), "450.000đ");
        assert_eq!(format_vnd(1_250_000), "1.250.000đ");
        assert_eq!(format_vnd(900), "900đ");
    }
}
