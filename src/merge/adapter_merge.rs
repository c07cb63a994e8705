//! Merging a PEFT LoRA adapter into its base, exactly as PEFT's
//! `merge_and_unload()` (huggingface/peft, src/peft/tuners/lora/layer.py
//! `get_delta_weight`): `W += (B @ A) * scale`, `scale = alpha / r` (rsLoRA
//! `alpha / sqrt(r)`), computed in f32, then stored in the output dtype. Trained LM-head
//! rows (`trainable_token_indices`) replace the base's rows, as PEFT's `index_copy`.
//!
//! The base is read tensor by tensor with positioned reads ([`TensorReader`]) and the
//! output streamed through [`write_hf_dir`], so peak memory stays near one tensor
//! plus the adapter.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::tensor_reader::TensorReader;
use crate::lora::adapter::{ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use crate::lora::token_rows::LM_HEAD_ROWS_KEY;
use crate::lora::LoraConfig;
use crate::model::hf_dir_writer::{torch_dtype_name, write_hf_dir};
use crate::model::projections::LayerProjection;
use crate::model::shard_writer::TensorSpec;
use crate::model::{ModelConfig, ModelFiles};
use crate::{Error, Result};

/// How to write the merged model.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// Stored dtype of every tensor; `None` keeps each base tensor's own dtype.
    pub dtype: Option<DType>,
    /// Largest shard in bytes.
    pub max_shard_bytes: u64,
}

/// What a merge wrote.
#[derive(Debug, Clone)]
pub struct MergeSummary {
    /// Projections that received an update.
    pub merged_modules: usize,
    /// Tensors written.
    pub tensors: usize,
    /// Weight files written.
    pub files: Vec<String>,
    /// Bytes of tensor data.
    pub total_bytes: u64,
    /// The scale applied to `B @ A`.
    pub scale: f64,
    /// LM-head rows replaced by trained ones.
    pub replaced_rows: usize,
}

/// The `(lora_A [r, in], lora_B [out, r])` pair of every adapted module, by HF module name.
type Updates = BTreeMap<String, (Tensor, Tensor)>;

/// Trained LM-head rows: their token ids and the rows, `[ids, hidden]`.
struct HeadRows {
    ids: Tensor,
    values: Tensor,
}

/// Merges the PEFT adapter in `adapter_dir` into `base` and writes a complete HF
/// directory into `out`. `on_tensor(done, total)` reports progress.
pub fn merge_adapter(
    base: &ModelFiles,
    adapter_dir: &Path,
    out: &Path,
    opts: &MergeOptions,
    on_tensor: &mut dyn FnMut(usize, usize),
) -> Result<MergeSummary> {
    let config = ModelConfig::from_file(&base.config)?;
    refuse_quantized_base(base)?;
    let lora = read_adapter_config(&adapter_dir.join(ADAPTER_CONFIG))?;
    let (updates, head_rows) = read_updates(&adapter_dir.join(ADAPTER_WEIGHTS), &config, &lora)?;
    if base.weights.is_empty() {
        return Err(Error::msg(format!("{}: no safetensors weights to merge into", base.spec)));
    }
    let st = TensorReader::open(&base.weights)?;
    let specs: Vec<TensorSpec> = st
        .entries
        .iter()
        .map(|e| TensorSpec { name: e.name.clone(), dtype: opts.dtype.unwrap_or(e.dtype), shape: e.shape.clone() })
        .collect();
    for (module, (a, b)) in &updates {
        let name = format!("{module}.weight");
        let spec = specs.iter().find(|s| s.name == name).ok_or_else(|| {
            Error::msg(format!("adapter module `{module}` has no weight `{name}` in the base {}", base.spec))
        })?;
        let want = [b.dim(0)?, a.dim(1)?];
        if spec.shape != want {
            return Err(Error::msg(format!(
                "adapter module `{module}` updates a {want:?} weight but the base has {:?}: wrong base model",
                spec.shape
            )));
        }
    }
    if head_rows.is_some() && !specs.iter().any(|s| s.name == "lm_head.weight") {
        return Err(Error::msg(format!(
            "the adapter trains LM-head rows, but the base {} has no lm_head.weight (tied embeddings)",
            base.spec
        )));
    }
    let scale = lora.scale();
    let mut note = serde_json::Map::new();
    note.insert("stage".into(), "merge".into());
    note.insert("base".into(), base.spec.clone().into());
    note.insert("adapter".into(), adapter_dir.display().to_string().into());
    note.insert("lora_r".into(), lora.r.into());
    note.insert("lora_alpha".into(), lora.alpha.into());
    note.insert("use_rslora".into(), lora.use_rslora.into());
    note.insert("scale".into(), scale.into());
    note.insert("merged_modules".into(), updates.len().into());
    note.insert("trainable_token_indices".into(), lora.trainable_token_indices.clone().into());
    let (total, mut done) = (specs.len(), 0);
    let produce = |spec: &TensorSpec| {
        let w = st.load(&spec.name)?;
        let merged = match spec.name.strip_suffix(".weight").and_then(|m| updates.get(m)) {
            Some((a, b)) => (w.to_dtype(DType::F32)? + (b.matmul(a)? * scale)?)?,
            None => match &head_rows {
                Some(rows) if spec.name == "lm_head.weight" => {
                    let w = w.to_dtype(DType::F32)?;
                    let delta = (&rows.values - w.index_select(&rows.ids, 0)?)?;
                    w.index_add(&rows.ids, &delta, 0)?
                }
                _ => w,
            },
        };
        done += 1;
        on_tensor(done, total);
        Ok(merged)
    };
    let edit_config = |c: &mut serde_json::Map<String, serde_json::Value>| {
        if let Some(d) = opts.dtype {
            c.insert("torch_dtype".into(), torch_dtype_name(d).into());
        }
    };
    let summary = write_hf_dir(base, out, specs, opts.max_shard_bytes, produce, edit_config, note)?;
    Ok(MergeSummary {
        merged_modules: updates.len(),
        tensors: total,
        files: summary.files,
        total_bytes: summary.total_bytes,
        scale,
        replaced_rows: lora.trainable_token_indices.len(),
    })
}

/// A quantized base would be merged into its dequantized copy; refuse and say why.
fn refuse_quantized_base(base: &ModelFiles) -> Result<()> {
    let text = std::fs::read_to_string(&base.config).map_err(|e| Error::io(&base.config, e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::bad_input(&base.config, Some(e.line()), e.to_string()))?;
    if !json["quantization_config"].is_null() {
        return Err(Error::bad_input(
            &base.config,
            None,
            "the base is quantized (quantization_config is set); merge into the full-precision base, then quantize",
        ));
    }
    Ok(())
}

/// The adapter's config, refusing what `W += (B @ A) * scale` cannot express.
fn read_adapter_config(path: &Path) -> Result<LoraConfig> {
    let lora = LoraConfig::from_peft_file(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::bad_input(path, Some(e.line()), e.to_string()))?;
    for field in ["rank_pattern", "alpha_pattern"] {
        if json[field].as_object().is_some_and(|m| !m.is_empty()) {
            return Err(Error::bad_input(
                path,
                None,
                format!("field `{field}`: per-module ranks or alphas are not supported"),
            ));
        }
    }
    if json["fan_in_fan_out"] == true {
        return Err(Error::bad_input(path, None, "field `fan_in_fan_out`: must be false (Linear layers only)"));
    }
    Ok(lora)
}

/// Reads and checks every `lora_A`/`lora_B` pair, and the trained LM-head rows, against
/// the base's config.
fn read_updates(path: &Path, config: &ModelConfig, lora: &LoraConfig) -> Result<(Updates, Option<HeadRows>)> {
    let tensors = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| Error::bad_input(path, None, format!("not a safetensors file: {e}")))?;
    let targets = lora.targets()?;
    let mut halves: HashMap<String, (Option<Tensor>, Option<Tensor>)> = HashMap::new();
    let mut head_rows = None;
    for (key, t) in tensors {
        let bad = |why: String| Error::bad_input(path, None, format!("tensor `{key}`: {why}"));
        if key == LM_HEAD_ROWS_KEY {
            let ids = &lora.trainable_token_indices;
            let want = [ids.len(), config.hidden_size];
            if t.dims() != want || ids.is_empty() {
                return Err(bad(format!(
                    "shape {:?}, but trainable_token_indices names {} rows of width {}",
                    t.dims(),
                    ids.len(),
                    config.hidden_size
                )));
            }
            if let Some(&id) = ids.iter().find(|&&i| i as usize >= config.vocab_size) {
                return Err(bad(format!("token id {id} is outside the vocabulary of {}", config.vocab_size)));
            }
            head_rows =
                Some(HeadRows { ids: Tensor::new(ids.as_slice(), &Device::Cpu)?, values: t.to_dtype(DType::F32)? });
            continue;
        }
        let (module, which) = key
            .strip_prefix("base_model.model.")
            .and_then(|k| {
                k.strip_suffix(".lora_A.weight")
                    .map(|m| (m, 'A'))
                    .or_else(|| k.strip_suffix(".lora_B.weight").map(|m| (m, 'B')))
            })
            .ok_or_else(|| bad("not a LoRA weight (expected base_model.model.{module}.lora_{A,B}.weight)".into()))?;
        let rest = module.strip_prefix("model.layers.").ok_or_else(|| bad("not a decoder-layer projection".into()))?;
        let (layer, proj) = rest.split_once('.').ok_or_else(|| bad("not a decoder-layer projection".into()))?;
        let layer: usize = layer.parse().map_err(|_| bad("bad layer index".into()))?;
        if layer >= config.num_hidden_layers {
            return Err(bad(format!(
                "layer {layer} but the base has {} layers: wrong base model",
                config.num_hidden_layers
            )));
        }
        let kind = LayerProjection::from_module(proj).ok_or_else(|| bad(format!("unknown module `{proj}`")))?;
        let (o, i) = kind.shape(config);
        if !targets.contains(&kind.name()) {
            return Err(bad(format!("module `{}` is not in the adapter's target_modules", kind.name())));
        }
        let want = if which == 'A' { [lora.r, i] } else { [o, lora.r] };
        if t.dims() != want {
            return Err(bad(format!(
                "shape {:?}, the base with r={} needs {want:?}: wrong base model or rank",
                t.dims(),
                lora.r
            )));
        }
        let slot = halves.entry(module.to_string()).or_default();
        let t = t.to_dtype(DType::F32)?;
        if which == 'A' {
            slot.0 = Some(t)
        } else {
            slot.1 = Some(t)
        }
    }
    let mut updates = Updates::new();
    for (module, pair) in halves {
        match pair {
            (Some(a), Some(b)) => {
                updates.insert(module, (a, b));
            }
            _ => return Err(Error::bad_input(path, None, format!("module `{module}` lacks its lora_A or lora_B"))),
        }
    }
    if updates.is_empty() {
        return Err(Error::bad_input(path, None, "the adapter holds no LoRA weights"));
    }
    if head_rows.is_none() && !lora.trainable_token_indices.is_empty() {
        return Err(Error::bad_input(
            path,
            None,
            format!("trainable_token_indices is set but `{LM_HEAD_ROWS_KEY}` is missing"),
        ));
    }
    Ok((updates, head_rows))
}
