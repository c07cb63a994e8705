//! `stylevn template`: chat data (JSONL or CSV) rendered through the model's own
//! chat template into training rows with assistant spans (see `stylevn::tokenize`).

use std::path::PathBuf;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use stylevn::model::ModelFiles;
use stylevn::tokenize::{read_chats, template_chats, write_rows, ChatRows, ChatTemplate, TemplateConfig};

use crate::config::{self, config_flags};

/// Bad rows printed one by one on stderr; the rest are counted.
const MAX_BAD_ROWS_SHOWN: usize = 50;
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
    #[command(flatten)]
    settings: Settings,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Config file [default: configs/template.toml when present].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

config_flags! {
    /// `TemplateConfig`'s fields.
    struct Settings for TemplateConfig {
        /// Fraction of kept rows held out for validation (with --val-out).
        #[arg(value_name = "F")]
        val_frac: f64,
        /// Seed of the train/val split.
        #[arg(value_name = "N")]
        seed: u64,
        /// Reject rows longer than this many tokens.
        #[arg(value_name = "TOKENS")]
        max_len: usize,
        /// Fail (writing nothing) if any row is bad, instead of skipping it.
        #[arg(value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        strict: bool,
    }
}

/// Runs `stylevn template`.
pub fn exec(args: Args) -> anyhow::Result<()> {
    let cfg = config::resolve(args.config.as_deref(), "template.toml", args.settings)?;
    let opts = cfg.options(args.val_out.is_some());
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
    if cfg.strict && !data.bad.is_empty() {
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
