//! `stylevn eval perplexity`: token-level perplexity of a model (full precision, merged
//! or AWQ/RTN) on held-out text, to compare a model with its quantized copies.

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use stylevn::eval::perplexity::perplexity;
use stylevn::generate::ChatModel;
use stylevn::model::linear::ComputeDtype;
use stylevn::quant::calib::token_sequences_of;
use stylevn::quant::LmHead;

/// Perplexity on held-out text: plain text files are cut into --ctx-token windows;
/// chat JSONL/CSV is rendered with the model's chat template, one sequence per
/// conversation (truncated to --ctx).
#[derive(clap::Args)]
pub struct PerplexityArgs {
    /// Model: HF directory (full precision or AWQ) or repo id.
    #[arg(long)]
    model: String,
    /// Held-out data files (one or more).
    #[arg(long, required = true, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Tokens per window / most tokens per sequence.
    #[arg(long, default_value_t = 512)]
    ctx: usize,
    /// Compute dtype: f32, f16 or bf16.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: ComputeDtype,
    /// How a 4-bit checkpoint's LM head is held in memory: int8, int4 or fp16 (as stored).
    #[arg(long, value_enum, default_value = "int8")]
    lm_head: LmHead,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn exec(args: PerplexityArgs) -> anyhow::Result<()> {
    let model = ChatModel::load(&args.model, args.dtype.dtype(), args.lm_head)?;
    let paths: Vec<&Path> = args.data.iter().map(PathBuf::as_path).collect();
    let seqs = token_sequences_of(&paths, &model.files, &model.tokenizer, args.ctx)?;
    let bar = ProgressBar::new(seqs.len() as u64).with_style(
        ProgressStyle::with_template("perplexity [{bar:30}] {pos}/{len} sequences ({elapsed})")
            .context("progress template")?
            .progress_chars("=> "),
    );
    let p = perplexity(&model.transformer, &seqs, &mut |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "model": args.model, "data": args.data, "ctx": args.ctx, "sequences": p.sequences,
                "tokens": p.tokens, "mean_nll": p.mean_nll(), "perplexity": p.perplexity(),
            })
        );
    } else {
        println!(
            "perplexity {:.4} (mean NLL {:.4} nats) over {} tokens in {} sequences of {}",
            p.perplexity(),
            p.mean_nll(),
            p.tokens,
            p.sequences,
            args.model
        );
    }
    Ok(())
}
