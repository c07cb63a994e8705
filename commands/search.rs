//! `stylevn search`: ranked hits from a catalog index, with scores, for debugging retrieval.

use std::path::PathBuf;

use anyhow::Context;
use stylevn::rag::chunk::format_vnd;
use stylevn::rag::eval::{read_queries, recall_at_k};
use stylevn::rag::{CatalogConfig, DocKind, SearchMode, SearchOptions, Searcher};

use crate::config;

/// Flags of `stylevn search`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  stylevn search --index runs/catalog-index --k 5 \"ao khoac nu mau den duoi 500k\"")]
pub struct Args {
    /// The query, as a customer would type it.
    #[arg(required_unless_present = "eval")]
    query: Option<String>,
    /// Instead of one query, report recall@k of a labelled query file (evals/retrieval.jsonl)
    /// for hybrid, dense-only and BM25-only search.
    #[arg(long, value_name = "FILE", conflicts_with = "query")]
    eval: Option<PathBuf>,
    /// Index directory written by `stylevn embed-catalog` [config].
    #[arg(long, value_name = "DIR")]
    index: Option<PathBuf>,
    /// Hits to print.
    #[arg(long, default_value_t = 5)]
    k: usize,
    /// Rankings: hybrid (dense + BM25, RRF), dense, bm25.
    #[arg(long, value_enum, default_value = "hybrid")]
    mode: Mode,
    /// Only this category ("áo khoác"; diacritics optional).
    #[arg(long)]
    category: Option<String>,
    /// Only products costing at least this many dong.
    #[arg(long, value_name = "VND")]
    min_price: Option<u64>,
    /// Only products costing at most this many dong.
    #[arg(long, value_name = "VND")]
    max_price: Option<u64>,
    /// Only products in stock.
    #[arg(long)]
    in_stock: bool,
    /// Only products, or only policy sections.
    #[arg(long, value_enum)]
    kind: Option<Kind>,
    /// Print hits as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Config file [default: configs/catalog.toml when present].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Mode {
    Hybrid,
    Dense,
    Bm25,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Kind {
    Product,
    Policy,
}

/// Runs `stylevn search`.
pub fn exec(args: Args) -> anyhow::Result<()> {
    let cfg: CatalogConfig = config::load(args.config.as_deref(), "catalog.toml")?;
    let index = args.index.or(cfg.index).context("no --index (nor `index` in the config)")?;
    let searcher = Searcher::open(&index)?;
    let mode = match args.mode {
        Mode::Hybrid => SearchMode::Hybrid,
        Mode::Dense => SearchMode::Dense,
        Mode::Bm25 => SearchMode::Bm25,
    };
    if let Some(path) = &args.eval {
        return eval(&searcher, path, args.k, args.json);
    }
    let query = args.query.unwrap_or_default();
    let encoder = if mode == SearchMode::Bm25 { None } else { Some(searcher.load_encoder()?) };
    let opts = SearchOptions {
        k: args.k,
        category: args.category,
        min_price_vnd: args.min_price,
        max_price_vnd: args.max_price,
        in_stock: args.in_stock,
        kind: args.kind.map(|k| match k {
            Kind::Product => DocKind::Product,
            Kind::Policy => DocKind::Policy,
        }),
        mode,
    };
    let hits = searcher.search(encoder.as_ref(), &query, &opts)?;
    if args.json {
        println!("{}", serde_json::to_string(&hits)?);
        return Ok(());
    }
    if hits.is_empty() {
        println!("no hits");
    }
    for (rank, h) in hits.iter().enumerate() {
        let scores = format!(
            "score {:.4}  dense {}  bm25 {}",
            h.score,
            h.dense.map(|d| format!("{d:.4}")).unwrap_or_else(|| "-".into()),
            h.bm25.map(|b| format!("{b:.2}")).unwrap_or_else(|| "-".into())
        );
        let what = match h.doc.kind {
            DocKind::Product => format!(
                "{}  {}  {}{}",
                h.parent,
                h.doc.title,
                h.doc.price_vnd.map(format_vnd).unwrap_or_default(),
                match h.doc.stock {
                    Some(0) => "  (hết hàng)".to_string(),
                    Some(n) => format!("  (còn {n})"),
                    None => String::new(),
                }
            ),
            DocKind::Policy => format!("{}  {}", h.parent, h.doc.title),
        };
        println!("{:>2}. {what}\n    {scores}", rank + 1);
    }
    Ok(())
}

/// `--eval`: recall@k for each mode, and the misses of hybrid search.
fn eval(searcher: &Searcher, path: &std::path::Path, k: usize, json: bool) -> anyhow::Result<()> {
    let queries = read_queries(path)?;
    let encoder = searcher.load_encoder()?;
    let mut reports = Vec::new();
    for mode in [SearchMode::Hybrid, SearchMode::Dense, SearchMode::Bm25] {
        reports.push(recall_at_k(searcher, Some(&encoder), &queries, k, mode)?);
    }
    if json {
        println!("{}", serde_json::to_string(&reports)?);
        return Ok(());
    }
    for (query, got) in &reports[0].misses {
        eprintln!("hybrid miss: {query:?} -> {}", got.join(", "));
    }
    let line: Vec<String> =
        reports.iter().map(|r| format!("{:?} {:.3} ({}/{})", r.mode, r.recall, r.answered, r.queries)).collect();
    println!("recall@{k} on {}: {}", path.display(), line.join(", ").to_lowercase());
    Ok(())
}
