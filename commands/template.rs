//! `stylevn template`: chat data (JSONL or CSV) rendered through the model's own
//! chat template into training rows with assistant spans (see `stylevn::tokenize`).

use std::path::PathBuf;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use stylevn::model::ModelFiles;
use stylevn::tokenize::{read_chats, template_chats, write_rows, ChatRows, ChatTemplate, TemplateOptions};

use crate::config;

/// Bad rows printed one by one on stderr; the rest are counted.
const MAX_BAD_ROWS_SHOWN: usize = 50;
/// Validation fraction with --val-out when neither the flag nor the config sets one.
const DEFAULT_VAL_FRAC: f64 = 0.1;
/// Inputs smaller than this get no progress bar.
const PROGRESS_MIN_ROWS: usize = 1000;

/// Flags of `stylevn template`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  stylevn template --model models/qwen2.5-0.5b-instruct --in data/chats.jsonl \\\n    \
                  --out data/train.jsonl --val-out data/val.jsonl --val-frac 0.1"
)]
pub struct Args {
    /// Model whose tokenizer and chat template to use: an HF model directory or repo id.
    #[arg(long, value_name = "DIR|REPO")]
    model: String,
    /// Input chats: JSONL rows `{"messages": [...], "tools": [...]}`, or CSV with columns
    /// instruction,response[,system]. Repeat for several files.
    #[arg(long = "in", value_name = "FILE", required = true)]
    input: Vec<PathBuf>,
    /// Training rows out (JSONL: text, char_spans, token_spans, n_tokens, source, input_ids).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Validation rows out; without it every kept row goes to --out.
    #[arg(long, value_name = "FILE")]
    val_out: Option<PathBuf>,
    /// Fraction of kept rows held out for validation (with --val-out) [config; default 0.1].
    #[arg(long, value_name = "F")]
    val_frac: Option<f64>,
    /// Seed of the train/val split [config; default 42].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Reject rows longer than this many tokens [config; default 2048].
    #[arg(long, value_name = "TOKENS")]
    max_len: Option<usize>,
    /// Fail (writing nothing) if any row is bad, instead of skipping it [config; default false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    strict: Option<bool>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Config file [default: configs/template.toml when present].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// `configs/template.toml`: defaults for the flags of the same names.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    val_frac: Option<f64>,
    seed: Option<u64>,
    max_len: Option<usize>,
    strict: Option<bool>,
}

/// Runs `stylevn template`.
pub fn exec(args: Args) -> anyhow::Result<()> {
    let cfg: Config = config::load(args.config.as_deref(), "template.toml")?;
    let defaults = TemplateOptions::default();
    let opts = TemplateOptions {
        max_len: args.max_len.or(cfg.max_len).unwrap_or(defaults.max_len),
        val_frac: if args.val_out.is_some() { args.val_frac.or(cfg.val_frac).unwrap_or(DEFAULT_VAL_FRAC) } else { 0.0 },
        seed: args.seed.or(cfg.seed).unwrap_or(defaults.seed),
    };
    let strict = args.strict.or(cfg.strict).unwrap_or(false);
    if !(0.0..1.0).contains(&opts.val_frac) || (args.val_out.is_some() && opts.val_frac == 0.0) {
        bail!("--val-frac must be in (0, 1) with --val-out (got {})", opts.val_frac);
    }
    if opts.max_len == 0 {
        bail!("--max-len must be at least 1");
    }

    let files = ModelFiles::resolve(&args.model)?;
    let template = ChatTemplate::from_model_files(&files)?;
    let tokenizer = files.load_tokenizer()?;
    let mut rows = ChatRows::default();
    for path in &args.input {
        let read = read_chats(path)?;
        rows.rows_in += read.rows_in;
        rows.records.extend(read.records);
        rows.bad.extend(read.bad);
    }

    let bar = progress_bar(rows.records.len());
    let data = template_chats(rows, &template, &tokenizer, &opts, &|| bar.inc(1))?;
    bar.finish_and_clear();

    for bad in data.bad.iter().take(MAX_BAD_ROWS_SHOWN) {
        eprintln!("bad row {bad}");
    }
    if data.bad.len() > MAX_BAD_ROWS_SHOWN {
        eprintln!("... and {} more bad rows", data.bad.len() - MAX_BAD_ROWS_SHOWN);
    }
    if strict && !data.bad.is_empty() {
        bail!("{} bad rows with --strict; nothing written", data.bad.len());
    }
    if data.summary.kept == 0 {
        bail!("no usable rows in {}; nothing written", join(&args.input));
    }
    write_rows(&args.out, &data.train)?;
    if let Some(val_out) = &args.val_out {
        write_rows(val_out, &data.val)?;
    }

    let s = &data.summary;
    if args.json {
        println!("{}", serde_json::to_string(s)?);
    } else {
        println!(
            "template: {} rows in, {} kept ({} train, {} val), {} duplicates dropped, {} bad; {}",
            s.rows_in, s.kept, s.train, s.val, s.duplicates, s.bad, s.tokens
        );
    }
    Ok(())
}

fn progress_bar(rows: usize) -> ProgressBar {
    if rows < PROGRESS_MIN_ROWS {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(rows as u64);
    bar.set_style(
        ProgressStyle::with_template("templating {bar:40} {pos}/{len} rows ({per_sec}, eta {eta})")
            .expect("valid progress template"),
    );
    bar
}

fn join(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}
