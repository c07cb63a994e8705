//! `stylevn generate`: one chat turn (or raw text) through a model, streamed to stdout.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use indicatif::ProgressBar;
use stylevn::generate::{generate, ChatModel, GenerateConfig, GenerateOptions};
use stylevn::model::linear::ComputeDtype;
use stylevn::quant::LmHead;
use stylevn::tokenize::ChatTemplate;

use crate::config::{self, config_flags};

/// Generate text with a model. By default the prompt becomes one user turn rendered
/// through the model's own chat template; the answer streams to stdout.
#[derive(clap::Args)]
pub struct Args {
    /// Model: an HF directory (e.g. models/smollm2-135m-instruct) or an HF repo id.
    #[arg(long)]
    model: String,
    /// The user's message (or, with --raw, the exact text to continue).
    #[arg(long, conflicts_with = "messages", required_unless_present = "messages")]
    prompt: Option<String>,
    /// A JSON file holding an array of OpenAI-style messages to continue.
    #[arg(long)]
    messages: Option<PathBuf>,
    /// Skip the chat template: continue --prompt as plain text.
    #[arg(long, requires = "prompt")]
    raw: bool,
    #[command(flatten)]
    settings: Settings,
    /// Keep generating past end-of-sequence tokens (benchmarks).
    #[arg(long)]
    ignore_eos: bool,
    /// Print prefill and decode tokens/s to stderr at the end.
    #[arg(long)]
    stats: bool,
    /// Print one JSON object (text, tokens, timings) instead of streaming.
    #[arg(long)]
    json: bool,
    /// Config file (default: configs/generate.toml when present).
    #[arg(long)]
    config: Option<PathBuf>,
}

config_flags! {
    /// `GenerateConfig`'s fields.
    struct Settings for GenerateConfig {
        /// Sampling temperature; 0 is greedy.
        temperature: f64,
        /// Nucleus sampling mass; 1 disables.
        top_p: f64,
        /// Sample among the k most likely tokens; 0 disables.
        top_k: usize,
        /// Repetition penalty; 1 disables.
        repetition_penalty: f32,
        /// Random seed for sampling.
        seed: u64,
        /// Stop when this string appears (not printed); repeatable (replaces the config's list).
        stop: Vec<String>,
        /// Most tokens to generate.
        max_new_tokens: usize,
        /// Compute dtype: f32, f16 or bf16.
        dtype: ComputeDtype,
        /// How a 4-bit checkpoint's LM head is held in memory: int8, int4 or fp16 (as stored).
        lm_head: LmHead,
    }
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let cfg = config::resolve(args.config.as_deref(), "generate.toml", args.settings)?;
    let dtype = cfg.dtype.dtype();
    let spinner = ProgressBar::new_spinner().with_message(format!("loading {}", args.model));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let model = ChatModel::load(&args.model, dtype, cfg.lm_head)?;
    let weight_bytes = model.transformer.weight_bytes_per_token();
    spinner.finish_and_clear();

    let prompt_text = match (&args.prompt, &args.messages, args.raw) {
        (Some(p), _, true) => p.clone(),
        (prompt, messages, false) => {
            let messages: Vec<serde_json::Value> = match (prompt, messages) {
                (Some(p), _) => vec![serde_json::json!({"role": "user", "content": p})],
                (None, Some(path)) => {
                    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                    serde_json::from_str(&text)
                        .with_context(|| format!("{}: expected a JSON array of messages", path.display()))?
                }
                (None, None) => bail!("give --prompt or --messages"),
            };
            let template = ChatTemplate::from_model_files(&model.files)?;
            template.render(&messages, None, true)?
        }
        (None, _, true) => bail!("--raw needs --prompt"),
    };
    let prompt = if args.raw {
        model.tokenizer.encode(prompt_text.as_str(), true).map_err(|e| anyhow::anyhow!("{e}"))?.get_ids().to_vec()
    } else {
        model.encode(&prompt_text)?
    };

    let options = GenerateOptions {
        sampling: cfg.sampling(),
        max_new_tokens: cfg.max_new_tokens,
        eos_ids: if args.ignore_eos { Vec::new() } else { model.eos_ids.clone() },
        stop: cfg.stop,
    };
    let stdout = std::io::stdout();
    let json = args.json;
    let out = generate(&model.transformer, &model.tokenizer, &prompt, &options, &mut |piece| {
        if !json {
            let mut lock = stdout.lock();
            let _ = lock.write_all(piece.as_bytes());
            let _ = lock.flush();
        }
    })?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({
                "text": out.text,
                "finish_reason": out.finish_reason,
                "prompt_tokens": out.prompt_tokens,
                "completion_tokens": out.tokens.len(),
                "prefill_tokens_per_sec": out.prefill_tokens_per_sec(),
                "decode_tokens_per_sec": out.decode_tokens_per_sec(),
                "weight_bytes_per_token": weight_bytes,
                "cpu_features": stylevn::cpu::features().describe(),
            }))?
        );
    } else {
        println!();
    }
    if args.stats {
        eprintln!(
            "prefill: {} tokens in {:.0} ms ({:.1} tokens/s); decode: {} tokens in {:.2} s ({:.1} tokens/s); finish: {:?}",
            out.prompt_tokens,
            out.prefill_secs * 1e3,
            out.prefill_tokens_per_sec(),
            out.tokens.len(),
            out.decode_secs,
            out.decode_tokens_per_sec(),
            out.finish_reason
        );
    }
    Ok(())
}
