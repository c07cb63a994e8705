//! Every setting of a training run. `configs/train.toml` deserializes into this;
//! the command line overrides fields; the resolved config is copied into OUT.

use serde::{Deserialize, Serialize};

use super::schedule::ScheduleKind;
use crate::model::Precision;

/// How the frozen base's weights are held during training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BaseQuant {
    /// NF4 4-bit blocks (QLoRA).
    Nf4,
    /// f32 as loaded.
    None,
}

/// A training run's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Base model: HF directory or repo id.
    pub base: String,
    /// Training data: `stylevn template` output, chat JSONL or instruction CSV.
    pub data: String,
    /// Validation data (same formats); empty: `val_frac` of `data` is held out.
    pub val_data: String,
    /// Fraction of `data` held out when `val_data` is empty.
    pub val_frac: f64,
    /// Output directory.
    pub out: String,
    /// `nf4` (QLoRA: frozen 4-bit base) or `none` (f32 base).
    pub base_quant: BaseQuant,
    /// The NF4 base's matrix products: `f32` (the reference, and the default), `bf16`
    /// (bf16 inputs, f32 sums: QLoRA's usual compute dtype; AVX-512 BF16 CPUs) or `auto`.
    pub precision: Precision,
    /// LoRA rank.
    pub lora_r: usize,
    /// LoRA alpha.
    pub lora_alpha: f64,
    /// LoRA dropout.
    pub lora_dropout: f32,
    /// Adapted projections (`all-linear` or names like `q_proj`).
    pub target_modules: Vec<String>,
    /// rsLoRA scaling.
    pub use_rslora: bool,
    /// Decoder layers to adapt (PEFT's `layers_to_transform`, same adapter format);
    /// empty: every layer. Adapting only the top layers lets the backward pass stop
    /// below them: layers underneath run forward only.
    pub layers_to_transform: Vec<usize>,
    /// Tokens (as the tokenizer spells them, e.g. `<tool_call>`) whose LM-head rows are
    /// trained in full beside the LoRA (PEFT's `trainable_token_indices` on `lm_head`):
    /// for tokens the base rarely emits. Needs an untied LM head. Empty: none.
    pub trainable_tokens: Vec<String>,
    /// Peak learning rate.
    pub lr: f64,
    /// Schedule after warmup.
    pub schedule: ScheduleKind,
    /// Warmup as a fraction of the optimizer steps.
    pub warmup_ratio: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// AdamW β₂.
    pub adam_beta2: f64,
    /// Clip the global gradient norm to this (0 disables).
    pub max_grad_norm: f64,
    /// Passes over the data (when `max_steps` is 0).
    pub epochs: f64,
    /// Optimizer steps (0: from `epochs`).
    pub max_steps: u64,
    /// Sequences per forward pass (packed, no padding).
    pub micro_batch: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Longest sequence in tokens.
    pub max_len: usize,
    /// Cut rows over `max_len` instead of failing.
    pub truncate: bool,
    /// Seed of LoRA init, data order, dropout and the validation split.
    pub seed: u64,
    /// Evaluate on the validation set every N optimizer steps (0 disables).
    pub eval_every: u64,
    /// Write a checkpoint every N optimizer steps (0: only at the end).
    pub save_every: u64,
    /// Stop after this many evaluations without a better eval loss (0 disables).
    pub early_stopping_patience: u32,
    /// Keep only each layer's input in the forward and recompute the layer in
    /// backward: activation memory of one layer instead of all, for a third more compute.
    pub gradient_checkpointing: bool,
}

impl Default for TrainConfig {
    /// The QLoRA paper's recipe (shared/REFERENCE.md): r 64, alpha 16, all linear
    /// layers, dropout 0.05, lr 2e-4, constant schedule, 3% warmup, clip 0.3, β₂ 0.999.
    fn default() -> Self {
        TrainConfig {
            base: String::new(),
            data: String::new(),
            val_data: String::new(),
            val_frac: 0.1,
            out: "runs/train".into(),
            base_quant: BaseQuant::Nf4,
            precision: Precision::F32,
            lora_r: 64,
            lora_alpha: 16.0,
            lora_dropout: 0.05,
            target_modules: vec!["all-linear".into()],
            use_rslora: false,
            layers_to_transform: Vec::new(),
            trainable_tokens: Vec::new(),
            lr: 2e-4,
            schedule: ScheduleKind::Constant,
            warmup_ratio: 0.03,
            weight_decay: 0.0,
            adam_beta2: 0.999,
            max_grad_norm: 0.3,
            epochs: 1.0,
            max_steps: 0,
            micro_batch: 4,
            grad_accum: 4,
            max_len: 2048,
            truncate: false,
            seed: 42,
            eval_every: 50,
            save_every: 50,
            early_stopping_patience: 0,
            gradient_checkpointing: true,
        }
    }
}
