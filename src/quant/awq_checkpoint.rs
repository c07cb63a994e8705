//! AWQ model directories: `config.json`'s `quantization_config` (the fields vLLM
//! reads: `{"quant_method": "awq", "bits": 4, "group_size": G, "zero_point": true,
//! "version": "gemm", "modules_to_not_convert": null}`), the loader that turns each
//! decoder projection's gemm tensors into an [`Int4Linear`], and the writer of a
//! quantized directory (every other tensor in fp16, as AutoAWQ saves).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::awq_gemm::AwqGemmTensors;
use super::group_quant::GroupQuant;
use super::int8::Int8Weight;
use super::int8_acts::PAIR;
use super::packed_linear::{Int4Linear, Int8Linear};
use crate::model::hf_dir_writer::write_hf_dir;
use crate::model::linear::{DenseLoader, LinearLoader, Projection};
use crate::model::shard_writer::TensorSpec;
use crate::model::ModelFiles;
use crate::{Error, Result};

/// Bits per weight (AutoAWQ `w_bit`).
pub const AWQ_BITS: u64 = 4;

/// What `quantization_config` says about an AWQ checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwqConfig {
    /// Inputs per quantization group.
    pub group_size: usize,
}

impl AwqConfig {
    /// Reads `config.json`'s `quantization_config`: `None` for a full-precision
    /// model, an error for a quantization stylevn cannot run.
    pub fn from_model_config(path: &Path) -> Result<Option<Self>> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::bad_input(path, Some(e.line()), e.to_string()))?;
        let q = &json["quantization_config"];
        if q.is_null() {
            return Ok(None);
        }
        let bad = |field: &str, why: &str| Error::bad_input(path, None, format!("quantization_config.{field}: {why}"));
        let method = q["quant_method"].as_str().unwrap_or_default();
        if !method.eq_ignore_ascii_case("awq") {
            return Err(bad("quant_method", &format!("`{method}` is not supported (only awq)")));
        }
        if q["bits"].as_u64() != Some(AWQ_BITS) {
            return Err(bad("bits", "only 4-bit AWQ is supported"));
        }
        if q["zero_point"] != true {
            return Err(bad("zero_point", "only zero-point (asymmetric) AWQ is supported"));
        }
        if !q["version"].as_str().unwrap_or_default().eq_ignore_ascii_case("gemm") {
            return Err(bad("version", "only the gemm layout is supported"));
        }
        if q["modules_to_not_convert"].as_array().is_some_and(|m| !m.is_empty()) {
            return Err(bad("modules_to_not_convert", "must be null or empty"));
        }
        let group_size = q["group_size"].as_u64().ok_or_else(|| bad("group_size", "expected an integer"))? as usize;
        Ok(Some(AwqConfig { group_size }))
    }

    /// The `quantization_config` object written into `config.json`.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "bits": AWQ_BITS,
            "group_size": self.group_size,
            "modules_to_not_convert": null,
            "quant_method": "awq",
            "version": "gemm",
            "zero_point": true,
        })
    }
}

/// Loads decoder projections from AWQ gemm tensors into the int4 kernel; the LM
/// head (never quantized by AutoAWQ, fp16 in the file) as `head` says.
#[derive(Debug, Clone, Copy)]
pub struct AwqLoader {
    /// The checkpoint's quantization.
    pub config: AwqConfig,
    /// How the LM head is held in memory.
    pub head: LmHead,
}

/// How a 4-bit model's LM head (fp16 in the checkpoint, as AutoAWQ and vLLM keep
/// it) is held on the CPU. The checkpoint itself never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LmHead {
    /// Rounded to int8 at load ([`Int8Weight`], 8.5 bits a weight, as llama.cpp's
    /// `Q8_0` head): half the bytes of fp16 read per decoded token.
    #[default]
    Int8,
    /// Rounded to int4 at load (round-to-nearest, groups of 64, 5 bits a weight):
    /// a quarter of fp16's bytes, with a measurable cost in perplexity.
    Int4,
    /// fp16 as stored: the checkpoint's exact logits.
    Fp16,
}

/// Inputs per group of an int4 LM head.
const INT4_HEAD_GROUP: usize = 64;

impl LmHead {
    /// The head `[out, in]` of `weight` (fp16 or f32) in this format.
    fn build(self, weight: Tensor) -> Result<Box<dyn Projection>> {
        match self {
            LmHead::Fp16 => Ok(Box::new(crate::model::linear::DenseLinear::new(weight, None))),
            LmHead::Int8 => {
                let (rows, cols) = weight.dims2()?;
                let values = weight.to_dtype(DType::F16)?.flatten_all()?.to_vec1::<half::f16>()?;
                Ok(Box::new(Int8Linear::new(Int8Weight::quantize(&values, rows, cols)?, None)))
            }
            LmHead::Int4 => {
                let (rows, cols) = weight.dims2()?;
                let values = weight.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                let quant = GroupQuant::quantize(&values, rows, cols, INT4_HEAD_GROUP);
                Ok(Box::new(Int4Linear::new(quant.to_int4()?, None)))
            }
        }
    }
}

/// The loader the weights of `files` need as stored: [`AwqLoader`] (with its LM head
/// held as `head`) for an AWQ checkpoint (its `config.json` has an AWQ
/// `quantization_config`), [`DenseLoader`] for a full-precision one; an error for a
/// quantization stylevn cannot run.
pub fn checkpoint_loader(files: &ModelFiles, head: LmHead) -> Result<Box<dyn LinearLoader>> {
    Ok(match AwqConfig::from_model_config(&files.config)? {
        Some(config) => Box::new(AwqLoader { config, head }),
        None => Box::new(DenseLoader),
    })
}

impl LinearLoader for AwqLoader {
    fn load(
        &self,
        vb: VarBuilder,
        name: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Box<dyn Projection>> {
        if name == "lm_head" && in_features.is_multiple_of(PAIR) {
            let dtype = self.table_dtype(vb.dtype());
            let weight = vb.set_dtype(dtype).get((out_features, in_features), "weight")?;
            return self.head.build(weight);
        }
        if !name.starts_with("model.layers.") {
            let dtype = self.table_dtype(vb.dtype());
            let vb = vb.set_dtype(dtype);
            return DenseLoader.load(vb, name, in_features, out_features, bias);
        }
        let group = self.config.group_size;
        if !in_features.is_multiple_of(group) || !out_features.is_multiple_of(8) {
            return Err(Error::msg(format!(
                "{name}: [{out_features}, {in_features}] cannot hold AWQ groups of {group}"
            )));
        }
        let ints = |t: Tensor| -> Result<Vec<i32>> { Ok(t.flatten_all()?.to_vec1::<i32>()?) };
        let hints = Default::default();
        let tensors = AwqGemmTensors {
            qweight: ints(vb.get_with_hints_dtype((in_features, out_features / 8), "qweight", hints, DType::I32)?)?,
            qzeros: ints(vb.get_with_hints_dtype(
                (in_features / group, out_features / 8),
                "qzeros",
                hints,
                DType::I32,
            )?)?,
            scales: vb
                .get_with_hints_dtype((in_features / group, out_features), "scales", hints, DType::F16)?
                .flatten_all()?
                .to_vec1::<half::f16>()?,
            out_features,
            in_features,
            group,
        };
        let weight = tensors.to_quant().and_then(|q| q.to_int4()).map_err(|e| Error::msg(format!("{name}: {e}")))?;
        let bias = if bias { Some(vb.get(out_features, "bias")?) } else { None };
        Ok(Box::new(Int4Linear::new(weight, bias)))
    }

    /// fp16, as AutoAWQ stores the embedding table and LM head, when the model
    /// computes in f32: nothing is lost, half the bytes are read per decoded token.
    fn table_dtype(&self, compute: DType) -> DType {
        match compute {
            DType::F32 => DType::F16,
            other => other,
        }
    }

    fn tied_head(&self, table: &Tensor) -> Result<Box<dyn Projection>> {
        if !table.dim(1)?.is_multiple_of(PAIR) {
            return DenseLoader.tied_head(table);
        }
        self.head.build(table.clone())
    }
}

/// One tensor of a quantized directory.
#[derive(Debug, Clone)]
pub enum QuantizedTensor {
    /// Stored in fp16 as it is (embeddings, norms, biases, LM head).
    Dense(Tensor),
    /// A projection weight, stored as `qweight`, `qzeros`, `scales` beside its prefix.
    Int4(GroupQuant),
}

/// Writes a quantized model: `tensors` by checkpoint name (projections by their
/// `.weight` name), `config.json` with `quantization_config`, the side files of
/// `src`, and a provenance note with `note`.
pub fn write_awq_dir(
    src: &ModelFiles,
    out: &Path,
    tensors: BTreeMap<String, QuantizedTensor>,
    config: AwqConfig,
    note: serde_json::Map<String, serde_json::Value>,
    max_shard_bytes: u64,
) -> Result<()> {
    let mut specs: Vec<TensorSpec> = Vec::new();
    let mut values: HashMap<String, Tensor> = HashMap::new();
    let mut add = |spec: TensorSpec, t: Tensor| {
        values.insert(spec.name.clone(), t);
        specs.push(spec);
    };
    for (name, t) in tensors {
        match t {
            QuantizedTensor::Dense(t) => add(TensorSpec { name, dtype: DType::F16, shape: t.dims().to_vec() }, t),
            QuantizedTensor::Int4(q) => {
                let prefix = name.strip_suffix(".weight").unwrap_or(&name).to_string();
                let g = AwqGemmTensors::from_quant(&q).map_err(|e| Error::msg(format!("{name}: {e}")))?;
                let (i, o, groups) = (g.in_features, g.out_features, g.in_features / g.group);
                let dev = &candle_core::Device::Cpu;
                let spec = |suffix: &str, dtype, shape: Vec<usize>| TensorSpec {
                    name: format!("{prefix}.{suffix}"),
                    dtype,
                    shape,
                };
                add(spec("qweight", DType::I32, vec![i, o / 8]), Tensor::from_vec(g.qweight, (i, o / 8), dev)?);
                add(spec("qzeros", DType::I32, vec![groups, o / 8]), Tensor::from_vec(g.qzeros, (groups, o / 8), dev)?);
                add(spec("scales", DType::F16, vec![groups, o]), Tensor::from_vec(g.scales, (groups, o), dev)?);
            }
        }
    }
    let produce = |spec: &TensorSpec| {
        values.remove(&spec.name).ok_or_else(|| Error::msg(format!("{}: produced twice", spec.name)))
    };
    let edit_config = |c: &mut serde_json::Map<String, serde_json::Value>| {
        c.insert("torch_dtype".into(), "float16".into());
        c.insert("quantization_config".into(), config.to_json());
    };
    write_hf_dir(src, out, specs, max_shard_bytes, produce, edit_config, note)?;
    Ok(())
}
