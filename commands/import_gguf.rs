//! `stylevn import-gguf`: a GGUF file into a complete HF model directory.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use stylevn::model::gguf::import_gguf;
use stylevn::model::linear::ComputeDtype;

/// Convert a GGUF file (llama / qwen2 architecture, byte-level BPE tokenizer) into an
/// HF directory: dequantized safetensors (Q/K permutation undone), config.json,
/// tokenizer.json, tokenizer_config.json with the chat template, generation_config.json.
#[derive(clap::Args)]
pub struct Args {
    /// The GGUF file to convert.
    gguf: PathBuf,
    /// The HF directory to write (replaced if it exists; written atomically).
    #[arg(long)]
    out: PathBuf,
    /// Dtype of the written weights: f32, f16 or bf16.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: ComputeDtype,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let dtype = args.dtype.dtype();
    let started = Instant::now();
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} tensors ({elapsed})")
            .context("progress template")?
            .progress_chars("=> "),
    );
    bar.set_message("dequantizing");
    let summary = import_gguf(&args.gguf, &args.out, dtype, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "out": summary.out_dir, "arch": summary.arch, "tensors": summary.tensors,
                "parameters": summary.parameters, "weight_bytes": summary.weight_bytes,
                "vocab_size": summary.vocab_size, "seconds": secs,
            })
        );
    } else {
        println!(
            "imported {} ({}): {} tensors, {:.1}M parameters, {:.0} MB weights, vocab {} -> {} in {:.1}s",
            args.gguf.display(),
            summary.arch,
            summary.tensors,
            summary.parameters as f64 / 1e6,
            summary.weight_bytes as f64 / 1e6,
            summary.vocab_size,
            summary.out_dir.display(),
            secs
        );
    }
    Ok(())
}
