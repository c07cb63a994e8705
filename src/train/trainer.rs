//! The training loop: packed micro-batches, loss on assistant tokens only,
//! gradient accumulation, global-norm clipping, AdamW, warmup schedules, eval loss,
//! early stopping, checkpoints and exact resume.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};

use super::checkpoint::{self, Checkpoint, TrainerState};
use super::config::{BaseQuant, TrainConfig};
use super::examples::{epoch_order, load_examples, micro_batch, Example};
use super::optimizer::{AdamW, AdamWParams};
use super::schedule::learning_rate;
use crate::atomic::write_atomic;
use crate::lora::{attach, LoraAdapter, LoraConfig};
use crate::model::backward::ParamGrads;
use crate::model::{load_transformer, DenseLoader, LinearLoader, ModelFiles, Packing, Precision, Transformer};
use crate::quant::{AwqConfig, Nf4Loader};
use crate::tokenize::ChatTemplate;
use crate::{Error, Result};

/// What one optimizer step measured (one line of `metrics.jsonl`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StepMetrics {
    /// Optimizer step (1-based).
    pub step: u64,
    /// Mean loss over the step's target tokens.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens of the step's examples per second, each example counted whole (shared prefix included).
    pub tokens_per_sec: f64,
    /// Validation loss, when evaluated at this step.
    pub eval_loss: Option<f64>,
}

/// Callbacks the command layer uses for progress and Ctrl-C.
pub trait TrainObserver {
    /// Called once the data and model are loaded.
    fn on_start(&mut self, _info: &TrainInfo) {}
    /// Called after every optimizer step.
    fn on_step(&mut self, _m: &StepMetrics) {}
    /// Whether to save a checkpoint and stop now (Ctrl-C).
    fn should_stop(&self) -> bool {
        false
    }
}

/// Facts about the run, known before the first step.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainInfo {
    /// Training examples.
    pub train_examples: usize,
    /// Validation examples.
    pub val_examples: usize,
    /// Optimizer steps in total.
    pub total_steps: u64,
    /// Step to start from (non-zero when resumed).
    pub start_step: u64,
    /// Trainable (LoRA) parameters.
    pub trainable_params: usize,
    /// Bytes per parameter of the frozen projections (≈0.52 for NF4, 4 for f32).
    pub base_bytes_per_param: f64,
    /// Eval loss before training (None when resumed or without validation data).
    pub initial_eval_loss: Option<f64>,
}

/// How the run ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainSummary {
    /// Optimizer steps done (in total, across resumes).
    pub steps: u64,
    /// Last training loss.
    pub last_loss: Option<f64>,
    /// Eval loss before training.
    pub initial_eval_loss: Option<f64>,
    /// Best eval loss.
    pub best_eval_loss: Option<f64>,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Whether the observer asked to stop (Ctrl-C); a checkpoint was saved.
    pub interrupted: bool,
    /// Where the adapter was written.
    pub out: PathBuf,
    /// The precision the NF4 base's products ran in (`f32` or `bf16`; `f32` for a dense base).
    pub precision: Precision,
}

/// Runs training as `cfg` says; with `resume`, continues from `OUT/checkpoints/latest`.
pub fn train(cfg: &TrainConfig, resume: bool, observer: &mut dyn TrainObserver) -> Result<TrainSummary> {
    let out = PathBuf::from(&cfg.out);
    let ck_root = out.join("checkpoints");
    let checkpoint = if resume { checkpoint::load_latest(&ck_root)? } else { None };
    if resume && checkpoint.is_none() {
        return Err(Error::msg(format!("--resume: no checkpoint in {}", ck_root.display())));
    }
    if !resume && ck_root.join("latest").exists() {
        return Err(Error::msg(format!(
            "{} already holds a run; pass --resume to continue it or choose another --out",
            out.display()
        )));
    }
    if cfg.micro_batch == 0 || cfg.grad_accum == 0 {
        return Err(Error::msg("micro_batch and grad_accum must be at least 1"));
    }

    let files = ModelFiles::resolve(&cfg.base)?;
    if AwqConfig::from_model_config(&files.config)?.is_some() {
        return Err(Error::msg(format!(
            "{}: an AWQ int4 checkpoint is for serving; train on the full-precision base (its NF4 copy is made here)",
            cfg.base
        )));
    }
    let bf16 = cfg.precision.use_bf16()? && cfg.base_quant == BaseQuant::Nf4;
    let nf4 = Nf4Loader { bf16 };
    let loader: &dyn LinearLoader = match cfg.base_quant {
        BaseQuant::Nf4 => &nf4,
        BaseQuant::None => &DenseLoader,
    };
    let mut model = load_transformer(&files, DType::F32, &Device::Cpu, loader)?;
    let chat = match files.load_tokenizer() {
        Ok(tokenizer) => ChatTemplate::from_model_files(&files).ok().map(|t| (t, tokenizer)),
        Err(_) => None,
    };
    let chat_ref = chat.as_ref().map(|(t, k)| (t, k));
    let load = |p: &str| load_examples(Path::new(p), chat_ref, cfg.max_len, cfg.truncate);
    let (train_set, val_set) = if cfg.val_data.is_empty() {
        split(load(&cfg.data)?, cfg.val_frac, cfg.seed)
    } else {
        (load(&cfg.data)?, load(&cfg.val_data)?)
    };
    if train_set.is_empty() {
        return Err(Error::msg(format!("{}: no training examples", cfg.data)));
    }

    let trainable_token_indices = token_ids(&cfg.trainable_tokens, chat.as_ref().map(|(_, k)| k), &cfg.base)?;
    let lora = LoraConfig {
        trainable_token_indices,
        r: cfg.lora_r,
        alpha: cfg.lora_alpha,
        dropout: cfg.lora_dropout,
        target_modules: cfg.target_modules.clone(),
        use_rslora: cfg.use_rslora,
        layers_to_transform: cfg.layers_to_transform.clone(),
    };
    let adapter = attach(&mut model, &lora, cfg.seed)?;
    let lowest = lora.lowest_layer();
    let vars: Vec<_> = adapter.vars().into_iter().map(|(_, v)| v).collect();
    let params = AdamWParams { beta2: cfg.adam_beta2, weight_decay: cfg.weight_decay, ..Default::default() };
    let mut opt = AdamW::new(vars.clone(), params)?;
    let mut state = TrainerState::default();
    if let Some(ck) = checkpoint {
        for (key, var) in adapter.vars() {
            let t = ck.adapter.get(&key).ok_or_else(|| Error::msg(format!("checkpoint lacks {key}")))?;
            var.set(t)?;
        }
        if ck.m.len() != vars.len() {
            return Err(Error::msg("checkpoint optimizer state does not match the adapter"));
        }
        (opt.m, opt.v, opt.step) = (ck.m, ck.v, ck.state.step);
        state = ck.state;
    }

    let per_step = cfg.micro_batch * cfg.grad_accum;
    let total_steps = if cfg.max_steps > 0 {
        cfg.max_steps
    } else {
        ((cfg.epochs * train_set.len() as f64) / per_step as f64).ceil().max(1.0) as u64
    };
    let warmup = (cfg.warmup_ratio * total_steps as f64).round() as u64;
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let config_text = toml::to_string(cfg).map_err(|e| Error::msg(e.to_string()))?;
    write_atomic(&out.join("train_config.toml"), config_text.as_bytes())?;
    let metrics_path = out.join("metrics.jsonl");
    let mut metrics = open_metrics(&metrics_path, state.step)?;

    let initial_eval_loss = if state.step == 0 && !val_set.is_empty() {
        let l = eval_loss(&model, &adapter, &val_set, cfg.micro_batch)?;
        state.best_eval_loss = Some(l);
        writeln!(metrics, "{}", serde_json::json!({"step": 0, "eval_loss": l}))
            .map_err(|e| Error::io(&metrics_path, e))?;
        Some(l)
    } else {
        None
    };
    let base_bytes = base_bytes_per_param(&mut model);
    observer.on_start(&TrainInfo {
        train_examples: train_set.len(),
        val_examples: val_set.len(),
        total_steps,
        start_step: state.step,
        trainable_params: adapter.parameter_count(),
        base_bytes_per_param: base_bytes,
        initial_eval_loss,
    });

    let save = |state: &TrainerState, opt: &AdamW| -> Result<PathBuf> {
        let ck = Checkpoint {
            adapter: adapter.tensors().into_iter().collect(),
            m: opt.m.clone(),
            v: opt.v.clone(),
            state: state.clone(),
        };
        checkpoint::save(&ck_root, &ck)
    };
    let (mut last_loss, mut stopped_early, mut interrupted) = (None, false, false);
    while state.step < total_steps {
        if observer.should_stop() {
            save(&state, &opt)?;
            interrupted = true;
            break;
        }
        let started = Instant::now();
        let batches: Vec<Vec<usize>> = (0..cfg.grad_accum as u64)
            .map(|a| micro_batch(train_set.len(), cfg.micro_batch, cfg.seed, state.step * cfg.grad_accum as u64 + a))
            .collect();
        let targets: usize = batches.iter().flatten().map(|&i| count_targets(&train_set[i])).sum();
        adapter.dropout.set_training(true);
        let mut step_grads = ParamGrads::default();
        let (mut loss_sum, mut tokens) = (0f64, 0usize);
        for (a, batch) in batches.iter().enumerate() {
            adapter
                .dropout
                .set_key(cfg.seed ^ (state.step * cfg.grad_accum as u64 + a as u64).wrapping_mul(0x2545_f491));
            let examples: Vec<&Example> = batch.iter().map(|&i| &train_set[i]).collect();
            let scale = 1.0 / targets as f64;
            loss_sum += backward_pass(&model, &examples, scale, cfg.gradient_checkpointing, lowest, &mut step_grads)?;
            tokens += examples.iter().map(|e| e.input_ids.len()).sum::<usize>();
        }
        adapter.dropout.set_training(false);
        let grads: Vec<Tensor> = vars
            .iter()
            .map(|v| step_grads.take(v.as_tensor().id()).map(Ok).unwrap_or_else(|| v.as_tensor().zeros_like()))
            .collect::<candle_core::Result<_>>()?;
        let grad_norm =
            grads.iter().map(|g| g.sqr()?.sum_all()?.to_scalar::<f32>()).sum::<candle_core::Result<f32>>()? as f64;
        let grad_norm = grad_norm.sqrt();
        let grads = if cfg.max_grad_norm > 0.0 && grad_norm > cfg.max_grad_norm {
            let c = cfg.max_grad_norm / (grad_norm + 1e-6);
            grads.iter().map(|g| g * c).collect::<candle_core::Result<Vec<_>>>()?
        } else {
            grads
        };
        let lr = learning_rate(cfg.schedule, cfg.lr, state.step, warmup, total_steps);
        opt.step(&grads, lr)?;
        state.step += 1;
        last_loss = Some(loss_sum);

        let mut eval = None;
        let eval_now = cfg.eval_every > 0 && (state.step % cfg.eval_every == 0 || state.step == total_steps);
        if eval_now && !val_set.is_empty() {
            let l = eval_loss(&model, &adapter, &val_set, cfg.micro_batch)?;
            eval = Some(l);
            if state.best_eval_loss.is_none_or(|b| l < b) {
                state.best_eval_loss = Some(l);
                state.evals_since_best = 0;
            } else {
                state.evals_since_best += 1;
            }
        }
        let m = StepMetrics {
            step: state.step,
            loss: loss_sum,
            lr,
            grad_norm,
            tokens_per_sec: tokens as f64 / started.elapsed().as_secs_f64().max(1e-9),
            eval_loss: eval,
        };
        writeln!(metrics, "{}", serde_json::to_string(&m).map_err(|e| Error::msg(e.to_string()))?)
            .and_then(|_| metrics.flush())
            .map_err(|e| Error::io(&metrics_path, e))?;
        observer.on_step(&m);
        if cfg.save_every > 0 && state.step % cfg.save_every == 0 {
            save(&state, &opt)?;
        }
        if cfg.early_stopping_patience > 0 && state.evals_since_best >= cfg.early_stopping_patience {
            stopped_early = true;
            break;
        }
    }
    if !interrupted {
        save(&state, &opt)?;
        adapter.save_peft(&out, &cfg.base)?;
    }
    write_loss_plot(&metrics_path, &out.join("loss.png"))?;
    Ok(TrainSummary {
        steps: state.step,
        last_loss,
        initial_eval_loss,
        best_eval_loss: state.best_eval_loss,
        stopped_early,
        interrupted,
        out,
        precision: if bf16 { Precision::Bf16 } else { Precision::F32 },
    })
}

/// The ids of `tokens`, each one token of `tokenizer` (the base's).
fn token_ids(tokens: &[String], tokenizer: Option<&tokenizers::Tokenizer>, base: &str) -> Result<Vec<u32>> {
    if tokens.is_empty() {
        return Ok(Vec::new());
    }
    let tokenizer =
        tokenizer.ok_or_else(|| Error::msg(format!("trainable_tokens: {base} has no tokenizer to look them up in")))?;
    tokens
        .iter()
        .map(|t| {
            tokenizer.token_to_id(t).ok_or_else(|| {
                Error::msg(format!("trainable_tokens: `{t}` is not a single token of {base}'s tokenizer"))
            })
        })
        .collect()
}

/// Holds out `frac` of the examples (a seeded choice) for validation.
fn split(examples: Vec<Example>, frac: f64, seed: u64) -> (Vec<Example>, Vec<Example>) {
    let n_val =
        if examples.len() < 2 { 0 } else { ((examples.len() as f64 * frac).round() as usize).min(examples.len() - 1) };
    let val_idx: std::collections::HashSet<usize> =
        epoch_order(examples.len(), seed ^ 0x5eed, 0).into_iter().take(n_val).collect();
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (i, e) in examples.into_iter().enumerate() {
        if val_idx.contains(&i) {
            val.push(e)
        } else {
            train.push(e)
        }
    }
    (train, val)
}

fn count_targets(e: &Example) -> usize {
    e.label_mask.iter().skip(1).filter(|m| **m).count()
}

/// A micro-batch packed for the model: tokens, sequence lengths, and the (row,
/// target id) pairs of the loss (the hidden row that predicts each target token).
/// When the examples share a leading run of tokens that predicts no target (the
/// system prompt and tool schemas every conversation starts with), those `prefix`
/// tokens are stored once and `lens` are the lengths of the rest of each example.
struct Layout {
    tokens: Vec<u32>,
    prefix: usize,
    lens: Vec<usize>,
    rows: Vec<u32>,
    targets: Vec<u32>,
}

impl Layout {
    /// How the model attends over this layout.
    fn packing(&self, model: &Transformer) -> Result<Packing> {
        match self.prefix {
            0 => model.packing(&self.lens, None),
            p => model.packing_shared_prefix(p, &self.lens),
        }
    }
}

/// The longest common prefix of `examples` that leaves every example a token to
/// itself and in which no row predicts a target (the row before an example's first
/// target stays its own); 0 for a single example.
fn shared_prefix_len(examples: &[&Example]) -> usize {
    let [first, rest @ ..] = examples else { return 0 };
    if rest.is_empty() {
        return 0;
    }
    let mut len = examples.iter().map(|e| e.input_ids.len().saturating_sub(1)).min().unwrap_or(0);
    for e in examples {
        let first_target = (1..e.input_ids.len()).find(|&t| e.label_mask[t]).unwrap_or(e.input_ids.len());
        len = len.min(first_target.saturating_sub(1));
    }
    for e in rest {
        len = first.input_ids.iter().zip(&e.input_ids).take(len).take_while(|(a, b)| a == b).count();
    }
    len
}

fn layout(examples: &[&Example]) -> Layout {
    let prefix = shared_prefix_len(examples);
    let mut l = Layout { tokens: Vec::new(), prefix, lens: Vec::new(), rows: Vec::new(), targets: Vec::new() };
    if let Some(e) = examples.first() {
        l.tokens.extend_from_slice(&e.input_ids[..prefix]);
    }
    for e in examples {
        // Row of token `prefix` of this example, minus `prefix`: token t (t > prefix)
        // is predicted from row `at + t - 1`.
        let at = l.tokens.len() as u32 - prefix as u32;
        for t in prefix.max(1)..e.input_ids.len() {
            if e.label_mask[t] {
                l.rows.push(at + t as u32 - 1);
                l.targets.push(e.input_ids[t]);
            }
        }
        l.tokens.extend_from_slice(&e.input_ids[prefix..]);
        l.lens.push(e.input_ids.len() - prefix);
    }
    l
}

/// Forward and backward of `scale * NLL(examples)` through the hand-written layer
/// backward ([`Transformer::layer_backward`]); only the LM head runs on autograd.
/// Layers below `lowest` (the lowest with adapters) hold nothing to train: they run
/// forward only, keep no activations, and the backward stops above them. With
/// `checkpointing`, the forward keeps only each layer's input and the backward
/// recomputes the layer from it, so activation memory is one layer's, not the
/// model's. Adds the low-rank gradients into `grads`; returns the scaled loss.
fn backward_pass(
    model: &Transformer,
    examples: &[&Example],
    scale: f64,
    checkpointing: bool,
    lowest: usize,
    grads: &mut ParamGrads,
) -> Result<f64> {
    let l = layout(examples);
    let packing = l.packing(model)?;
    let n_layers = model.layers.len();
    let mut saved = Vec::with_capacity(n_layers - lowest);
    let mut inputs = Vec::with_capacity(n_layers - lowest);
    let mut x = model.embed(&l.tokens)?;
    for li in 0..n_layers {
        let (next, acts) = model.layer_forward_saving(li, &x, &packing)?;
        if li >= lowest {
            if checkpointing {
                inputs.push(x);
            } else {
                saved.push(acts);
            }
        }
        x = next;
    }
    let (nll, grad) = model.head_nll(&x, &l.rows, &l.targets, Some((scale, &mut *grads)))?;
    let mut grad = grad.ok_or_else(|| Error::msg("no gradient reached the last layer"))?;
    for li in (lowest..n_layers).rev() {
        let acts = match saved.pop() {
            Some(acts) => acts,
            None => model.layer_forward_saving(li, &inputs[li - lowest], &packing)?.1,
        };
        grad = model.layer_backward(li, &acts, &packing, &grad, grads)?;
    }
    Ok(nll * scale)
}

/// Mean loss over every target token of `set` (dropout off, no gradients).
pub fn eval_loss(model: &Transformer, adapter: &LoraAdapter, set: &[Example], micro: usize) -> Result<f64> {
    adapter.dropout.set_training(false);
    let (mut sum, mut n) = (0f64, 0usize);
    for chunk in set.chunks(micro.max(1)) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let l = layout(&refs);
        let packing = l.packing(model)?;
        let mut x = model.embed(&l.tokens)?;
        for li in 0..model.layers.len() {
            x = model.layer_forward_saving(li, &x, &packing)?.0;
        }
        sum += model.head_nll(&x, &l.rows, &l.targets, None)?.0;
        n += l.targets.len();
    }
    Ok(sum / n.max(1) as f64)
}

/// Opens `metrics.jsonl` for appending, first dropping lines after step `keep_upto`
/// (what an interrupted run logged past its last checkpoint).
fn open_metrics(path: &Path, keep_upto: u64) -> Result<std::fs::File> {
    if keep_upto == 0 {
        write_atomic(path, b"")?;
    } else if path.exists() {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let kept: String = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["step"].as_u64())
                    .is_some_and(|s| s <= keep_upto)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        write_atomic(path, kept.as_bytes())?;
    }
    std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))
}

/// `loss.png`: training loss and eval loss by step, from `metrics.jsonl`.
fn write_loss_plot(metrics: &Path, png: &Path) -> Result<()> {
    let text = std::fs::read_to_string(metrics).map_err(|e| Error::io(metrics, e))?;
    let (mut train, mut eval) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let step = v["step"].as_f64().unwrap_or(0.0);
        if let Some(l) = v["loss"].as_f64() {
            train.push((step, l));
        }
        if let Some(l) = v["eval_loss"].as_f64() {
            eval.push((step, l));
        }
    }
    crate::plot::line_chart(png, "stylevn train: loss", "optimizer step", "loss", &[("train", train), ("eval", eval)])
}

/// Bytes per parameter of the frozen projections, as loaded.
fn base_bytes_per_param(model: &mut Transformer) -> f64 {
    let (mut bytes, mut params) = (0usize, 0usize);
    for (_, p) in model.projections_mut() {
        let n = p.in_features() * p.out_features();
        params += n;
        bytes += p.stored_bytes().unwrap_or(4 * n);
    }
    bytes as f64 / params.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::precision::bf16_supported;
    use crate::model::tiny::{uniform, TINY_MODELS};
    use crate::model::Mode;
    use candle_core::D;

    /// Summed NLL of the targets from the last hidden states: only the target rows go
    /// through the LM head (differentiable ops, for the autograd reference).
    fn nll_from_hidden(model: &Transformer, hidden: &Tensor, l: &Layout) -> Result<Tensor> {
        let dev = hidden.device();
        let picked = hidden.index_select(&Tensor::new(l.rows.as_slice(), dev)?, 0)?;
        let log_probs = candle_nn::ops::log_softmax(&model.head(&picked, Mode::Train)?, D::Minus1)?;
        let target = Tensor::new(l.targets.as_slice(), dev)?.unsqueeze(1)?;
        Ok(log_probs.gather(&target, 1)?.sum_all()?.neg()?)
    }

    /// Summed negative log-likelihood of the target tokens of `examples` through
    /// candle's autograd (one packed forward in `mode`), and the number of targets:
    /// the reference the hand-written backward is tested against.
    fn batch_nll(model: &Transformer, examples: &[&Example], mode: Mode) -> Result<(Tensor, usize)> {
        let l = layout(examples);
        let packing = l.packing(model)?;
        let mut x = model.embed(&l.tokens)?;
        for li in 0..model.layers.len() {
            x = model.layer_forward(li, &x, &packing, None, mode)?;
        }
        Ok((nll_from_hidden(model, &x, &l)?, l.targets.len()))
    }

    /// A tiny fixture model on `loader` with LoRA (rank 4, `dropout`) on every
    /// projection of `layers` (empty: every layer) and trainable LM-head rows for
    /// `tokens`, its variables set to non-zero values.
    fn tiny_with_lora(
        fixture: usize,
        loader: &dyn LinearLoader,
        dropout: f32,
        layers: &[usize],
        tokens: &[u32],
    ) -> (tempfile::TempDir, Transformer, LoraAdapter) {
        let dir = tempfile::tempdir().unwrap();
        TINY_MODELS[fixture].write_dir(dir.path()).unwrap();
        let files = ModelFiles::from_dir(dir.path()).unwrap();
        let mut model = load_transformer(&files, DType::F32, &Device::Cpu, loader).unwrap();
        let lora = LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout,
            target_modules: vec!["all-linear".into()],
            use_rslora: false,
            layers_to_transform: layers.to_vec(),
            trainable_token_indices: tokens.to_vec(),
        };
        let adapter = attach(&mut model, &lora, 3).unwrap();
        for (_, v) in adapter.vars() {
            let t = Tensor::from_vec(uniform(&format!("{:?}", v.dims()), v.elem_count()), v.shape(), &Device::Cpu);
            v.set(&(t.unwrap() * 0.1).unwrap()).unwrap();
        }
        (dir, model, adapter)
    }

    /// Asserts that `backward_pass` (with and without checkpointing, stopping at the
    /// adapter's lowest layer) gives `nll` and the gradients `store` holds for every
    /// adapter variable, within `tol` of the largest.
    fn assert_backward_equals(
        model: &Transformer,
        examples: &[&Example],
        scale: f64,
        nll: &Tensor,
        store: &candle_core::backprop::GradStore,
        adapter: &LoraAdapter,
        tol: f32,
    ) {
        let lowest = adapter.config.lowest_layer();
        for checkpointing in [false, true] {
            let mut got = ParamGrads::default();
            let loss = backward_pass(model, examples, scale, checkpointing, lowest, &mut got).unwrap();
            assert!((nll.to_scalar::<f32>().unwrap() as f64 - loss).abs() < 1e-4);
            for (_, v) in adapter.vars() {
                let want = store.get(v.as_tensor()).unwrap();
                let g = got.take(v.as_tensor().id()).unwrap();
                let diff = (g - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                let size = want.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(size > 0.0 && diff <= tol * size.max(1e-3), "gradient differs by {diff} (max {size})");
            }
        }
    }

    /// The bases the backward tests run on, each with the tolerance of its gradients:
    /// a dense fixture, and an NF4 one with f32 and with bf16 products. bf16 rounds
    /// each path's own f32 inputs, which differ in their last bits (the order of the
    /// sums), so those gradients agree to about 2^-8.
    fn bases() -> [(usize, &'static dyn LinearLoader, f32); 3] {
        const NF4_F32: Nf4Loader = Nf4Loader { bf16: false };
        const NF4_BF16: Nf4Loader = Nf4Loader { bf16: true };
        let bf16_tol = if bf16_supported() { 4e-3 } else { 1e-4 };
        [(0, &DenseLoader, 1e-4), (2, &NF4_F32, 1e-4), (2, &NF4_BF16, bf16_tol)]
    }

    /// The hand-written backward (with and without checkpointing, with dropout, LoRA
    /// on every projection, trained LM-head rows on the untied fixture, GQA and two
    /// packed sequences) gives the gradients of
    /// candle's autograd through the differentiable forward; on an NF4 base in bf16
    /// too (where the CPU has it), as both paths share the layer's products.
    #[test]
    fn hand_written_backward_equals_autograd() {
        for (fixture, loader, tol) in bases() {
            let tokens: &[u32] = if fixture == 0 { &[3, 17] } else { &[] };
            let (_dir, model, adapter) = tiny_with_lora(fixture, loader, 0.1, &[], tokens);
            assert_eq!(adapter.token_rows.is_some(), fixture == 0);
            let mk = |n: u32, len: u32| Example {
                input_ids: (0..len).map(|i| (i * 7 + n) % 160).collect(),
                label_mask: (0..len).map(|i| i >= 5).collect(),
                source: String::new(),
            };
            let (a, b) = (mk(1, 12), mk(9, 9));
            let examples = [&a, &b];
            assert_eq!(layout(&examples).prefix, 0);
            adapter.dropout.set_training(true);
            adapter.dropout.set_key(5);
            let (nll, _) = batch_nll(&model, &examples, Mode::Train).unwrap();
            let nll = (nll * 0.5).unwrap();
            let store = nll.backward().unwrap();
            assert_backward_equals(&model, &examples, 0.5, &nll, &store, &adapter, tol);
        }
    }

    /// LoRA on the top layers only (PEFT's `layers_to_transform`): the backward stops at
    /// the lowest adapted layer and still gives autograd's gradients for every adapter,
    /// which exist only on those layers, and for the trained LM-head rows.
    #[test]
    fn backward_stopping_at_the_lowest_adapted_layer_equals_autograd() {
        for (fixture, layers) in [(0, vec![1]), (1, vec![2, 1])] {
            let tokens: &[u32] = if fixture == 0 { &[40] } else { &[] };
            let (_dir, model, adapter) = tiny_with_lora(fixture, &DenseLoader, 0.0, &layers, tokens);
            assert_eq!(adapter.modules.len(), 7 * layers.len());
            assert!(adapter
                .modules
                .iter()
                .all(|(m, _, _)| layers.iter().any(|l| m.starts_with(&format!("model.layers.{l}.")))));
            let e = Example {
                input_ids: (0..12).map(|i| (i * 7 + 3) % 160).collect(),
                label_mask: (0..12).map(|i| i >= 4).collect(),
                source: String::new(),
            };
            let (nll, _) = batch_nll(&model, &[&e], Mode::Train).unwrap();
            let store = nll.backward().unwrap();
            assert_backward_equals(&model, &[&e], 1.0, &nll, &store, &adapter, 1e-4);
        }
    }

    /// Examples packed behind one shared prefix get the loss and gradients of the
    /// same examples run one at a time (autograd), on dense and NF4 bases (f32 and
    /// bf16) with GQA.
    #[test]
    fn shared_prefix_backward_equals_separate_examples() {
        for (fixture, loader, tol) in bases() {
            let (_dir, model, adapter) = tiny_with_lora(fixture, loader, 0.0, &[], &[]);
            let mk = |n: u32, len: u32| {
                let input_ids: Vec<u32> =
                    (0..len).map(|i| if i < 8 { i * 11 % 160 } else { (i * 7 + n) % 160 }).collect();
                Example { label_mask: (0..len).map(|i| i >= 10).collect(), input_ids, source: String::new() }
            };
            let (a, b, c) = (mk(1, 14), mk(9, 11), mk(4, 16));
            let examples = [&a, &b, &c];
            assert_eq!(layout(&examples).prefix, 8);
            let mut nll = Tensor::zeros((), DType::F32, &Device::Cpu).unwrap();
            for e in examples {
                nll = (nll + batch_nll(&model, &[e], Mode::Train).unwrap().0).unwrap();
            }
            let nll = (nll * 0.25).unwrap();
            let store = nll.backward().unwrap();
            assert_backward_equals(&model, &examples, 0.25, &nll, &store, &adapter, tol);
        }
    }

    /// Three examples that share their first 6 tokens: the prefix is cut before the
    /// row that predicts the earliest target, and target rows point into the suffixes.
    #[test]
    fn shared_prefix_layout_by_hand() {
        let ex = |tail: &[u32], first_target: usize| {
            let input_ids: Vec<u32> = [1, 2, 3, 4, 5, 6].iter().chain(tail).copied().collect();
            let label_mask = (0..input_ids.len()).map(|t| t >= first_target).collect();
            Example { input_ids, label_mask, source: String::new() }
        };
        let (a, b, c) = (ex(&[7, 8], 7), ex(&[9], 6), ex(&[7, 10, 11], 7));
        let l = layout(&[&a, &b, &c]);
        // b's first target is token 6, predicted from row 5: the prefix stops at 5.
        assert_eq!(l.prefix, 5);
        assert_eq!(l.lens, vec![3, 2, 4]);
        assert_eq!(l.tokens, vec![1, 2, 3, 4, 5, 6, 7, 8, 6, 9, 6, 7, 10, 11]);
        // a's token 8 is predicted from packed row 6 (its token 7), b's token 9 from
        // row 8 (its own copy of token 6), c's 10 and 11 from rows 11 and 12.
        assert_eq!(l.rows, vec![6, 8, 11, 12]);
        assert_eq!(l.targets, vec![8, 9, 10, 11]);
        assert_eq!(shared_prefix_len(&[&a]), 0);
    }
}
