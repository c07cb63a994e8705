//! Attaching LoRA to a model and PEFT's adapter files (huggingface/peft):
//! `adapter_config.json` and `adapter_model.safetensors` (metadata `{"format": "pt"}`)
//! with keys `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`
//! (`[r, in]`) and `...lora_B.weight` (`[out, r]`), the only keys vLLM loads; with
//! `trainable_token_indices`, also the LM head's trained rows ([`super::token_rows`]),
//! which PEFT loads and a merge folds in.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor, Var};

use super::config::LoraConfig;
use super::layer::{DropoutState, LoraLinear};
use super::token_rows::{TokenRows, LM_HEAD_ROWS_KEY};
use crate::atomic::write_atomic;
use crate::model::linear::Projection;
use crate::model::linear::TrainedRows;
use crate::model::Transformer;
use crate::{Error, Result};

/// PEFT's file names.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// PEFT's weight file name.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

/// The adapters attached to a model: their variables by module name.
#[derive(Debug)]
pub struct LoraAdapter {
    /// The hyper-parameters.
    pub config: LoraConfig,
    /// (HF module name, lora_A, lora_B), in layer order.
    pub modules: Vec<(String, Var, Var)>,
    /// Dropout switch and key shared by every adapter.
    pub dropout: Arc<DropoutState>,
    /// The LM head's trainable rows (`config.trainable_token_indices`), when any.
    pub token_rows: Option<Var>,
}

/// Stands in a projection slot for the instant its base is moved into the wrapper.
#[derive(Debug)]
struct Detached;

impl Projection for Detached {
    fn forward(&self, _: &Tensor) -> candle_core::Result<Tensor> {
        candle_core::bail!("detached projection")
    }
    fn in_features(&self) -> usize {
        0
    }
    fn out_features(&self) -> usize {
        0
    }
    fn dense_weight(&self) -> Option<(Tensor, Option<Tensor>)> {
        None
    }
}

/// Wraps the projections `config` selects (modules, and layers when
/// `layers_to_transform` is set) with fresh PEFT-initialised adapters (`A` seeded by
/// `seed` and the module name).
pub fn attach(model: &mut Transformer, config: &LoraConfig, seed: u64) -> Result<LoraAdapter> {
    let targets = config.targets()?;
    if config.r == 0 {
        return Err(Error::msg("LoRA rank r must be at least 1"));
    }
    if let Some(&layer) = config.layers_to_transform.iter().find(|&&l| l >= model.layers.len()) {
        return Err(Error::msg(format!(
            "layers_to_transform names layer {layer}, but the model has {} (0-{})",
            model.layers.len(),
            model.layers.len() - 1
        )));
    }
    let dropout = Arc::new(DropoutState::default());
    let mut modules = Vec::new();
    for (id, (name, slot)) in model.projections_mut().into_iter().enumerate() {
        if !targets.iter().any(|t| name.ends_with(&format!(".{t}"))) || !config.adapts_layer(layer_of(&name)?) {
            continue;
        }
        let base = std::mem::replace(slot, Box::new(Detached));
        let layer = LoraLinear::new(base, &name, config, seed, id as u64, dropout.clone())?;
        modules.push((name, layer.a.clone(), layer.b.clone()));
        *slot = Box::new(layer);
    }
    let token_rows = match config.trainable_token_indices.as_slice() {
        [] => None,
        _ if model.config().tie_word_embeddings => {
            return Err(Error::msg(
                "trainable_token_indices trains LM-head rows, but this model ties its LM head to the embedding",
            ))
        }
        ids => {
            let base = std::mem::replace(&mut model.lm_head, Box::new(Detached));
            let rows = TokenRows::new(base, ids)?;
            let var = rows.values().clone();
            model.lm_head = Box::new(rows);
            Some(var)
        }
    };
    Ok(LoraAdapter { config: config.clone(), modules, dropout, token_rows })
}

/// The decoder layer index of a module name `model.layers.{i}.…`.
fn layer_of(module: &str) -> Result<usize> {
    module
        .strip_prefix("model.layers.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|i| i.parse().ok())
        .ok_or_else(|| Error::msg(format!("module `{module}` is not under model.layers.N")))
}

/// Attaches the PEFT adapter in `dir` (config and weights) to `model`.
pub fn attach_peft(model: &mut Transformer, dir: &Path) -> Result<LoraAdapter> {
    let config = LoraConfig::from_peft_file(&dir.join(ADAPTER_CONFIG))?;
    let adapter = attach(model, &config, 0)?;
    adapter.load_weights(&dir.join(ADAPTER_WEIGHTS))?;
    Ok(adapter)
}

fn peft_key(module: &str, which: &str) -> String {
    format!("base_model.model.{module}.lora_{which}.weight")
}

impl LoraAdapter {
    /// Every trainable variable with its PEFT key, A before B, in layer order, then
    /// the LM head's rows.
    pub fn vars(&self) -> Vec<(String, Var)> {
        let lora =
            self.modules.iter().flat_map(|(m, a, b)| [(peft_key(m, "A"), a.clone()), (peft_key(m, "B"), b.clone())]);
        lora.chain(self.token_rows.iter().map(|v| (LM_HEAD_ROWS_KEY.to_string(), v.clone()))).collect()
    }

    /// Number of trainable parameters.
    pub fn parameter_count(&self) -> usize {
        self.vars().iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// The adapter weights, keyed as PEFT writes them.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.vars().into_iter().map(|(k, v)| (k, v.as_tensor().detach())).collect()
    }

    /// Writes `adapter_config.json` and `adapter_model.safetensors` into `dir` (each atomically).
    pub fn save_peft(&self, dir: &Path, base_model: &str) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        write_atomic(&dir.join(ADAPTER_CONFIG), self.config.peft_json(base_model)?.as_bytes())?;
        let tensors = self.tensors();
        let meta = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
        let bytes = safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), meta)
            .map_err(|e| Error::msg(format!("{}: {e}", dir.join(ADAPTER_WEIGHTS).display())))?;
        write_atomic(&dir.join(ADAPTER_WEIGHTS), &bytes)
    }

    /// Sets every variable from a PEFT `adapter_model.safetensors`; refuses missing
    /// keys, unknown keys and wrong shapes.
    pub fn load_weights(&self, path: &Path) -> Result<()> {
        let mut loaded = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| Error::bad_input(path, None, format!("not a safetensors file: {e}")))?;
        for (key, var) in self.vars() {
            let t =
                loaded.remove(&key).ok_or_else(|| Error::bad_input(path, None, format!("missing tensor `{key}`")))?;
            if t.shape() != var.shape() {
                return Err(Error::bad_input(
                    path,
                    None,
                    format!("`{key}` has shape {:?}, the model needs {:?}", t.dims(), var.dims()),
                ));
            }
            var.set(&t.to_dtype(var.dtype())?)?;
        }
        if let Some(extra) = loaded.keys().next() {
            return Err(Error::bad_input(
                path,
                None,
                format!("unknown tensor `{extra}` (not a LoRA weight of this model)"),
            ));
        }
        Ok(())
    }
}
