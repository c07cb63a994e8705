//! `stylevn quantize`: a full-precision model to a 4-bit AutoAWQ-format directory.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use stylevn::model::ModelFiles;
use stylevn::quant::calib::{sample_sequences, token_sequences};
use stylevn::quant::{quantize_model, ClipGrid, QuantMethod, QuantizeConfig};

use crate::config::{self, config_flags};

/// Quantize a model to 4 bits with AWQ (activation-aware scales and clipping,
/// calibrated on the project's chat data) or RTN (round-to-nearest baseline), and
/// write the AutoAWQ gemm layout with the quantization_config vLLM reads. The result
/// loads in `stylevn generate`, `eval` and `serve` as it is.
#[derive(clap::Args)]
pub struct Args {
    /// Full-precision model: HF directory or repo id.
    #[arg(long)]
    model: String,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    settings: Settings,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Config file (default: configs/quantize.toml when present). Every flag above overrides its field.
    #[arg(long)]
    config: Option<PathBuf>,
}

config_flags! {
    /// `QuantizeConfig`'s fields.
    struct Settings for QuantizeConfig {
        /// awq, or rtn (round-to-nearest baseline).
        method: QuantMethod,
        /// Calibration data: chat JSONL/CSV (templated with the model's chat template) or any
        /// text file.
        calib: PathBuf,
        /// Calibration sequences.
        calib_samples: usize,
        /// Tokens per calibration sequence, at most.
        calib_len: usize,
        /// Inputs per quantization group (reduced, with a note, when it does not divide the
        /// model's widths).
        group_size: usize,
        /// AWQ: calibration tokens (whole sequences) the scale-search losses are measured on;
        /// statistics use them all.
        search_tokens: usize,
        /// AWQ clip search: asymmetric (AutoAWQ's symmetric bounds and also each end of
        /// the group's range shrunk on its own; never worse on the calibration tokens) or
        /// symmetric (AutoAWQ's exactly).
        clip: ClipGrid,
        /// Seed of the calibration sample.
        seed: u64,
        /// Largest weight shard, e.g. 5GB.
        max_shard_size: String,
    }
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    stylevn::malloc_tuning::keep_freed_memory();
    let cfg = config::resolve(args.config.as_deref(), "quantize.toml", args.settings)?;
    let opts = cfg.options()?;
    let method = cfg.method;
    let files = ModelFiles::resolve(&args.model)?;
    let started = Instant::now();
    let calib = if method == QuantMethod::Awq {
        let path = &cfg.calib;
        if !path.is_file() {
            bail!(
                "{}: no calibration data (make the chat data with `stylevn synth --offline --out data/chats.jsonl`, \
                 or pass --calib with any chat JSONL or text file)",
                path.display()
            );
        }
        let tokenizer = files.load_tokenizer()?;
        let seqs = token_sequences(path, &files, &tokenizer, cfg.calib_len)
            .with_context(|| format!("calibration data {}", path.display()))?;
        sample_sequences(seqs, cfg.calib_samples, cfg.seed)
    } else {
        Vec::new()
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
