//! `stylevn merge`: fold a PEFT LoRA adapter into its full-precision base.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use stylevn::merge::{merge_adapter, MergeConfig, MergeDtype};
use stylevn::model::ModelFiles;

use crate::config::{self, config_flags};

/// Merge a LoRA adapter into its base (`W += (B @ A) * alpha / r`, as PEFT's
/// merge_and_unload) and write a complete HF directory: sharded safetensors with
/// model.safetensors.index.json, config.json, tokenizer files, chat template,
/// generation config and a provenance note. Streams tensor by tensor.
#[derive(clap::Args)]
pub struct Args {
    /// Full-precision base model: HF directory or repo id (never the NF4 training copy).
    #[arg(long)]
    base: String,
    /// PEFT adapter directory (adapter_config.json + adapter_model.safetensors).
    #[arg(long)]
    adapter: PathBuf,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    settings: Settings,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Config file (default: configs/merge.toml when present).
    #[arg(long)]
    config: Option<PathBuf>,
}

config_flags! {
    /// `MergeConfig`'s fields.
    struct Settings for MergeConfig {
        /// Stored dtype (auto: each base tensor's own).
        dtype: MergeDtype,
        /// Largest weight shard, e.g. 5GB or 500MB.
        max_shard_size: String,
    }
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let options = config::resolve(args.config.as_deref(), "merge.toml", args.settings)?.options()?;
    let base = ModelFiles::resolve(&args.base)?;
    let started = Instant::now();
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("merging [{bar:30}] {pos}/{len} tensors ({elapsed})")
            .context("progress template")?
            .progress_chars("=> "),
    );
    let summary = merge_adapter(&base, &args.adapter, &args.out, &options, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "out": args.out, "merged_modules": summary.merged_modules, "tensors": summary.tensors,
                "files": summary.files, "bytes": summary.total_bytes, "scale": summary.scale,
                "replaced_rows": summary.replaced_rows, "seconds": secs,
            })
        );
    } else {
        println!(
            "merged {} ({} modules, scale {}{}) into {}: {} tensors, {:.0} MB in {} file(s) -> {} in {:.1}s",
            args.adapter.display(),
            summary.merged_modules,
            summary.scale,
            match summary.replaced_rows {
                0 => String::new(),
                n => format!(", {n} LM-head rows"),
            },
            args.base,
            summary.tensors,
            summary.total_bytes as f64 / 1e6,
            summary.files.len(),
            args.out.display(),
            secs
        );
    }
    Ok(())
}
