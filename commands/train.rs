//! `stylevn train`: QLoRA fine-tuning (frozen NF4 base, trainable LoRA) writing a
//! PEFT adapter.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use stylevn::model::Precision;
use stylevn::train::{train, ScheduleKind, StepMetrics, TrainConfig, TrainInfo, TrainObserver};

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
    /// Base model: HF directory or repo id.
    #[arg(long)]
    base: Option<String>,
    /// Training data: `stylevn template` output, chat JSONL or instruction CSV.
    #[arg(long)]
    data: Option<String>,
    /// Validation data (default: hold out --val-frac of --data).
    #[arg(long)]
    val_data: Option<String>,
    /// Fraction of --data held out for eval loss when --val-data is not given.
    #[arg(long)]
    val_frac: Option<f64>,
    /// Output directory.
    #[arg(long)]
    out: Option<String>,
    /// Frozen base representation: nf4 (QLoRA) or none (f32).
    #[arg(long)]
    base_quant: Option<String>,
    /// The NF4 base's products: f32, bf16 (AVX-512 BF16 CPUs) or auto (bf16 where the CPU has it).
    #[arg(long)]
    precision: Option<Precision>,
    /// LoRA rank.
    #[arg(long)]
    lora_r: Option<usize>,
    /// LoRA alpha (scale = alpha / r).
    #[arg(long)]
    lora_alpha: Option<f64>,
    /// LoRA dropout.
    #[arg(long)]
    lora_dropout: Option<f32>,
    /// Projections to adapt: all-linear, or a comma list of q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj.
    #[arg(long, value_delimiter = ',')]
    target_modules: Option<Vec<String>>,
    /// rsLoRA scaling (alpha / sqrt(r)).
    #[arg(long)]
    use_rslora: Option<bool>,
    /// Decoder layers to adapt, a comma list (PEFT's layers_to_transform); the backward
    /// pass stops at the lowest. Empty config value: every layer.
    #[arg(long, value_delimiter = ',')]
    layers_to_transform: Option<Vec<usize>>,
    /// Tokens whose LM-head rows are trained in full, a comma list (PEFT's
    /// trainable_token_indices on lm_head), e.g. `<tool_call>,</tool_call>`.
    #[arg(long, value_delimiter = ',')]
    trainable_tokens: Option<Vec<String>>,
    /// Peak learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Schedule after warmup: constant, linear or cosine.
    #[arg(long)]
    schedule: Option<String>,
    /// Warmup as a fraction of the steps.
    #[arg(long)]
    warmup_ratio: Option<f64>,
    /// AdamW weight decay.
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Clip the global gradient norm (0 disables).
    #[arg(long)]
    max_grad_norm: Option<f64>,
    /// Passes over the data (when --max-steps is 0).
    #[arg(long)]
    epochs: Option<f64>,
    /// Optimizer steps (overrides --epochs).
    #[arg(long)]
    max_steps: Option<u64>,
    /// Sequences per forward pass.
    #[arg(long)]
    micro_batch: Option<usize>,
    /// Micro-batches per optimizer step.
    #[arg(long)]
    grad_accum: Option<usize>,
    /// Longest sequence in tokens; longer rows fail unless --truncate.
    #[arg(long)]
    max_len: Option<usize>,
    /// Cut rows over --max-len instead of failing.
    #[arg(long)]
    truncate: bool,
    /// Seed of init, data order, dropout and the validation split.
    #[arg(long)]
    seed: Option<u64>,
    /// Evaluate every N steps.
    #[arg(long)]
    eval_every: Option<u64>,
    /// Checkpoint every N steps.
    #[arg(long)]
    save_every: Option<u64>,
    /// Stop after N evaluations without improvement (0 disables).
    #[arg(long)]
    early_stopping_patience: Option<u32>,
    /// Recompute each layer in backward instead of keeping its activations.
    #[arg(long)]
    gradient_checkpointing: Option<bool>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

fn resolve(args: &Args) -> anyhow::Result<TrainConfig> {
    let mut c: TrainConfig = crate::config::load(args.config.as_deref(), "train.toml")?;
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = args.$f.clone() { c.$f = v; } )* };
    }
    set!(
        base,
        data,
        val_data,
        val_frac,
        out,
        base_quant,
        precision,
        lora_r,
        lora_alpha,
        lora_dropout,
        target_modules,
        use_rslora,
        layers_to_transform,
        trainable_tokens,
        lr,
        warmup_ratio,
        weight_decay,
        max_grad_norm,
        epochs,
        max_steps,
        micro_batch,
        grad_accum,
        max_len,
        seed,
        eval_every,
        save_every,
        early_stopping_patience,
        gradient_checkpointing
    );
    if let Some(s) = &args.schedule {
        c.schedule = match s.as_str() {
            "constant" => ScheduleKind::Constant,
            "linear" => ScheduleKind::Linear,
            "cosine" => ScheduleKind::Cosine,
            other => anyhow::bail!("--schedule {other}: use constant, linear or cosine"),
        };
    }
    c.truncate |= args.truncate;
    anyhow::ensure!(!c.base.is_empty(), "no base model: give --base or `base` in the config");
    anyhow::ensure!(!c.data.is_empty(), "no training data: give --data or `data` in the config");
    Ok(c)
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
    let cfg = resolve(&args)?;
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
