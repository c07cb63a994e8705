//! `stylevn train`: QLoRA fine-tuning (frozen NF4 base, trainable LoRA) writing a
//! PEFT adapter.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use stylevn::model::Precision;
use stylevn::train::{train, BaseQuant, ScheduleKind, StepMetrics, TrainConfig, TrainInfo, TrainObserver};

use crate::config::{self, config_flags};

/// Fine-tune a model with QLoRA (frozen 4-bit NF4 base, trainable LoRA adapters)
/// and write a PEFT adapter (adapter_config.json + adapter_model.safetensors) with
/// metrics.jsonl and checkpoints into --out. Ctrl-C saves a checkpoint; --resume
/// continues exactly where the last checkpoint left off.
#[derive(clap::Args)]
pub struct Args {
    /// Config file (default: configs/train.toml). Every flag below overrides its field.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue the run in --out from its latest checkpoint.
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    settings: Settings,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

config_flags! {
    /// `TrainConfig`'s fields.
    struct Settings for TrainConfig {
        /// Base model: HF directory or repo id.
        base: String,
        /// Training data: `stylevn template` output, chat JSONL or instruction CSV.
        data: String,
        /// Validation data (default: hold out --val-frac of --data).
        val_data: String,
        /// Fraction of --data held out for eval loss when --val-data is not given.
        val_frac: f64,
        /// Output directory.
        out: String,
        /// Frozen base representation: nf4 (QLoRA) or none (f32).
        base_quant: BaseQuant,
        /// The NF4 base's products: f32, bf16 (AVX-512 BF16 CPUs) or auto (bf16 where the CPU has it).
        precision: Precision,
        /// LoRA rank.
        lora_r: usize,
        /// LoRA alpha (scale = alpha / r).
        lora_alpha: f64,
        /// LoRA dropout.
        lora_dropout: f32,
        /// Projections to adapt: all-linear, or a comma list of q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj.
        #[arg(value_delimiter = ',')]
        target_modules: Vec<String>,
        /// rsLoRA scaling (alpha / sqrt(r)).
        #[arg(num_args = 0..=1, default_missing_value = "true")]
        use_rslora: bool,
        /// Decoder layers to adapt, a comma list (PEFT's layers_to_transform); the backward
        /// pass stops at the lowest. Empty config value: every layer.
        #[arg(value_delimiter = ',')]
        layers_to_transform: Vec<usize>,
        /// Tokens whose LM-head rows are trained in full, a comma list (PEFT's
        /// trainable_token_indices on lm_head), e.g. `<tool_call>,</tool_call>`.
        #[arg(value_delimiter = ',')]
        trainable_tokens: Vec<String>,
        /// Peak learning rate.
        lr: f64,
        /// Schedule after warmup.
        schedule: ScheduleKind,
        /// Warmup as a fraction of the steps.
        warmup_ratio: f64,
        /// AdamW weight decay.
        weight_decay: f64,
        /// AdamW beta2.
        adam_beta2: f64,
        /// Clip the global gradient norm (0 disables).
        max_grad_norm: f64,
        /// Passes over the data (when --max-steps is 0).
        epochs: f64,
        /// Optimizer steps (overrides --epochs).
        max_steps: u64,
        /// Sequences per forward pass.
        micro_batch: usize,
        /// Micro-batches per optimizer step.
        grad_accum: usize,
        /// Longest sequence in tokens; longer rows fail unless --truncate.
        max_len: usize,
        /// Cut rows over --max-len instead of failing.
        #[arg(num_args = 0..=1, default_missing_value = "true")]
        truncate: bool,
        /// Seed of init, data order, dropout and the validation split.
        seed: u64,
        /// Evaluate every N steps.
        eval_every: u64,
        /// Checkpoint every N steps.
        save_every: u64,
        /// Stop after N evaluations without improvement (0 disables).
        early_stopping_patience: u32,
        /// Recompute each layer in backward instead of keeping its activations.
        #[arg(num_args = 0..=1, default_missing_value = "true")]
        gradient_checkpointing: bool,
    }
}

struct Progress {
    bar: ProgressBar,
    stop: Arc<AtomicBool>,
}

impl TrainObserver for Progress {
    fn on_start(&mut self, info: &TrainInfo) {
        self.bar.set_length(info.total_steps);
        self.bar.set_position(info.start_step);
        self.bar.reset_eta();
        self.bar.println(format!(
            "{} train / {} val examples, {} steps, {:.2}M trainable parameters, base {:.3} bytes/parameter{}",
            info.train_examples,
            info.val_examples,
            info.total_steps,
            info.trainable_params as f64 / 1e6,
            info.base_bytes_per_param,
            info.initial_eval_loss.map(|l| format!(", initial eval loss {l:.4}")).unwrap_or_default()
        ));
    }
    fn on_step(&mut self, m: &StepMetrics) {
        self.bar.set_position(m.step);
        self.bar.set_message(format!(
            "loss {:.4}{} | {:.0} tok/s",
            m.loss,
            m.eval_loss.map(|e| format!(" eval {e:.4}")).unwrap_or_default(),
            m.tokens_per_sec
        ));
    }
    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let cfg = config::resolve(args.config.as_deref(), "train.toml", args.settings)?;
    anyhow::ensure!(!cfg.base.is_empty(), "no base model: give --base or `base` in the config");
    anyhow::ensure!(!cfg.data.is_empty(), "no training data: give --data or `data` in the config");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)).context("installing the Ctrl-C handler")?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("step {pos}/{len} [{bar:30}] {msg} (eta {eta})")
            .context("progress template")?
            .progress_chars("=> "),
    );
    let mut progress = Progress { bar, stop };
    let summary = train(&cfg, args.resume, &mut progress)?;
    progress.bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else if summary.interrupted {
        println!(
            "interrupted at step {}: checkpoint saved; continue with --resume --out {}",
            summary.steps,
            summary.out.display()
        );
    } else {
        let f = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into());
        println!(
            "trained {} steps{} ({} products): loss {}, eval loss {} -> best {}; adapter in {}",
            summary.steps,
            if summary.stopped_early { " (early stop)" } else { "" },
            summary.precision,
            f(summary.last_loss),
            f(summary.initial_eval_loss),
            f(summary.best_eval_loss),
            summary.out.display()
        );
    }
    if summary.interrupted {
        std::process::exit(130);
    }
    Ok(())
}
