//! One catalog product: the row `data::store` loads from `data/catalog.csv` and
//! `rag::ingest` reads from any shop's catalog (CSV, JSON or JSONL), the one type
//! the tools, synth and the retrieval index share.

use serde::{Deserialize, Serialize};

/// One catalog product. Two products are equal when their contents are, wherever
/// they were read from: `source` is provenance and takes no part in `==`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Product {
    /// Where the row is (`file:line`); empty when it came from the database.
    pub source: String,
    /// Stock-keeping unit, e.g. `AT001`.
    pub sku: String,
    /// Display name in Vietnamese.
    pub name: String,
    /// Category, e.g. `áo thun`; empty when the catalog has none.
    pub category: String,
    /// Price in dong.
    pub price_vnd: u64,
    /// Sizes sold (`S`, `M`, `29`, `Freesize`...).
    pub sizes: Vec<String>,
    /// Colours sold, in Vietnamese.
    pub colors: Vec<String>,
    /// Units in stock, when the catalog row says (the store keeps stock per
    /// variant in `stock.csv` instead, and leaves this `None`).
    pub stock: Option<i64>,
    /// One- or two-sentence description.
    pub description: String,
    /// Material ("cotton 100%"), empty when unknown.
    pub material: String,
    /// Product page.
    pub url: String,
}

impl PartialEq for Product {
    fn eq(&self, other: &Self) -> bool {
        fn key(p: &Product) -> impl PartialEq + '_ {
            (
                &p.sku,
                &p.name,
                &p.category,
                p.price_vnd,
                &p.sizes,
                &p.colors,
                p.stock,
                &p.description,
                &p.material,
                &p.url,
            )
        }
        key(self) == key(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(source: &str, price_vnd: u64) -> Product {
        Product {
            source: source.into(),
            sku: "QJ-01-BLK".into(),
            name: "Quần jogger".into(),
            category: "quần".into(),
            price_vnd,
            sizes: vec!["M".into()],
            colors: vec!["Đen".into()],
            stock: None,
            description: String::new(),
            material: String::new(),
            url: String::new(),
        }
    }

    #[test]
    fn equality_ignores_where_the_row_was_read() {
        assert_eq!(product("catalog.csv:2", 100), product("", 100));
        assert_ne!(product("catalog.csv:2", 100), product("catalog.csv:2", 101));
    }
}
