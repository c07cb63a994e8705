//! `stylevn quantize`: a full-precision model to a 4-bit AutoAWQ-format directory.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use stylevn::merge::parse_size;
use stylevn::model::ModelFiles;
use stylevn::quant::calib::{sample_sequences, token_sequences};
use stylevn::quant::{quantize_model, QuantMethod, QuantizeOptions};

/// Quantize a model to 4 bits with AWQ (activation-aware scales and clipping,
/// calibrated on the project's chat data) or RTN (round-to-nearest baseline), and
/// write the AutoAWQ gemm layout with the quantization_config vLLM reads. The result
/// loads in `stylevn generate`, `eval` and `serve` as it is.
#[derive(clap::Args)]
pub struct Args {
    /// awq or rtn. [config: method, default awq]
    #[arg(long)]
    method: Option<String>,
    /// Full-precision model: HF directory or repo id.
    #[arg(long)]
    model: String,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Calibration data: chat JSONL/CSV (templated with the model's chat template) or any
    /// text file. [config: calib, default data/chats.jsonl]
    #[arg(long)]
    calib: Option<PathBuf>,
    /// Calibration sequences. [config: calib_samples, default 32]
    #[arg(long)]
    calib_samples: Option<usize>,
    /// Tokens per calibration sequence, at most. [config: calib_len, default 512]
    #[arg(long)]
    calib_len: Option<usize>,
    /// Inputs per quantization group (reduced, with a note, when it does not divide the
    /// model's widths). [config: group_size, default 128]
    #[arg(long)]
    group_size: Option<usize>,
    /// AWQ: calibration tokens (whole sequences) the scale-search losses are measured on;
    /// statistics use them all. [config: search_tokens, default 2048]
    #[arg(long)]
    search_tokens: Option<usize>,
    /// AWQ clip search: asymmetric (AutoAWQ's symmetric bounds and also each end of
    /// the group's range shrunk on its own; never worse on the calibration tokens) or
    /// symmetric (AutoAWQ's exactly). [config: clip, default asymmetric]
    #[arg(long)]
    clip: Option<String>,
    /// Seed of the calibration sample. [config: seed, default 42]
    #[arg(long)]
    seed: Option<u64>,
    /// Largest weight shard, e.g. 5GB. [config: max_shard_size, default 5GB]
    #[arg(long)]
    max_shard_size: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Config file (default: configs/quantize.toml when present).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// `configs/quantize.toml`.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    method: String,
    calib: PathBuf,
    calib_samples: usize,
    calib_len: usize,
    group_size: usize,
    search_tokens: usize,
    clip: String,
    seed: u64,
    max_shard_size: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            method: "awq".into(),
            calib: PathBuf::from("data/chats.jsonl"),
            calib_samples: 32,
            calib_len: 512,
            group_size: 128,
            search_tokens: 2048,
            clip: "asymmetric".into(),
            seed: 42,
            max_shard_size: "5GB".into(),
        }
    }
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    stylevn::malloc_tuning::keep_freed_memory();
    let cfg: Config = crate::config::load(args.config.as_deref(), "quantize.toml")?;
    let method: QuantMethod = args.method.as_deref().unwrap_or(&cfg.method).parse()?;
    let files = ModelFiles::resolve(&args.model)?;
    let started = Instant::now();
    let calib = if method == QuantMethod::Awq {
        let path = args.calib.unwrap_or(cfg.calib);
        if !path.is_file() {
            bail!(
                "{}: no calibration data (make the chat data with `stylevn synth --offline --out data/chats.jsonl`, \
                 or pass --calib with any chat JSONL or text file)",
                path.display()
            );
        }
        let tokenizer = files.load_tokenizer()?;
        let len = args.calib_len.unwrap_or(cfg.calib_len);
        let seqs = token_sequences(&path, &files, &tokenizer, len)
            .with_context(|| format!("calibration data {}", path.display()))?;
        sample_sequences(seqs, args.calib_samples.unwrap_or(cfg.calib_samples), args.seed.unwrap_or(cfg.seed))
    } else {
        Vec::new()
    };
    let opts = QuantizeOptions {
        method,
        group_size: args.group_size.unwrap_or(cfg.group_size),
        max_shard_bytes: parse_size(args.max_shard_size.as_deref().unwrap_or(&cfg.max_shard_size))?,
        search_tokens: args.search_tokens.unwrap_or(cfg.search_tokens),
        clip: args.clip.as_deref().unwrap_or(&cfg.clip).parse()?,
    };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} layers ({elapsed}, eta {eta})")
            .context("progress template")?
            .progress_chars("=> "),
    );
    bar.set_message(method.name());
    let summary = quantize_model(&files, &args.out, &opts, &calib, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    if let (Some(note), false) = (&summary.group_note, args.json) {
        eprintln!("note: {note}");
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "out": args.out, "method": method.name(), "group_size": summary.group_size,
                "group_note": summary.group_note, "layers": summary.layers, "projections": summary.projections,
                "calib_sequences": summary.calib_sequences, "calib_tokens": summary.calib_tokens, "seconds": secs,
            })
        );
    } else {
        println!(
            "quantized {} with {} (4-bit, group {}, {} projections in {} layers, calibration {} sequences / {} tokens) -> {} in {:.1}s",
            args.model,
            method.name(),
            summary.group_size,
            summary.projections,
            summary.layers,
            summary.calib_sequences,
            summary.calib_tokens,
            args.out.display(),
            secs
        );
    }
    Ok(())
}
