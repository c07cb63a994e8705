//! `stylevn quantize`: a full-precision HF directory to a 4-bit AutoAWQ-format one,
//! by AWQ (activation-aware scales and clipping, `awq.rs`) or by plain
//! round-to-nearest (RTN, the baseline AWQ must beat). Both write the same gemm
//! layout and `quantization_config`.
//!
//! Group size: AutoAWQ and vLLM need every quantized layer's input width to be a
//! multiple of the group size. When the requested size (128 by default) does not
//! divide them all, the largest smaller power of two (at least 8) that does is
//! used for the whole model and the reason is reported; SmolLM2-135M's hidden size
//! 576 = 9 x 64 gets groups of 64.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use super::awq::{awq_layer, SearchSet};
use super::awq_checkpoint::{write_awq_dir, AwqConfig, QuantizedTensor};
use super::awq_search::ClipGrid;
use super::group_quant::GroupQuant;
use crate::model::projections::LayerProjection;
use crate::model::{load_transformer, DenseLoader, ModelConfig, ModelFiles};
use crate::{Error, Result};

/// How weights are quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum QuantMethod {
    /// Activation-aware weight quantization (needs calibration data).
    Awq,
    /// Round-to-nearest per group, no calibration.
    Rtn,
}

impl QuantMethod {
    /// The method's name as the command line spells it.
    pub fn name(&self) -> &'static str {
        match self {
            QuantMethod::Awq => "awq",
            QuantMethod::Rtn => "rtn",
        }
    }
}

/// What to do.
#[derive(Debug, Clone)]
pub struct QuantizeOptions {
    /// AWQ or RTN.
    pub method: QuantMethod,
    /// Requested inputs per group (see the module doc for when it is reduced).
    pub group_size: usize,
    /// Largest weight shard in bytes.
    pub max_shard_bytes: u64,
    /// AWQ: calibration tokens (whole sequences, at least one) the scale-search
    /// losses are measured on; statistics use every calibration token.
    pub search_tokens: usize,
    /// AWQ: the clipping bounds searched.
    pub clip: ClipGrid,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct QuantizeSummary {
    /// The group size used.
    pub group_size: usize,
    /// Why it differs from the requested one, when it does.
    pub group_note: Option<String>,
    /// Decoder layers quantized.
    pub layers: usize,
    /// Projections quantized.
    pub projections: usize,
    /// Calibration sequences used (AWQ).
    pub calib_sequences: usize,
    /// Calibration tokens used (AWQ).
    pub calib_tokens: usize,
}

/// The group size for `config`: `requested` when it divides every quantized input
/// width, else the largest power of two below it that does.
pub fn choose_group_size(config: &ModelConfig, requested: usize) -> Result<(usize, Option<String>)> {
    let widths = [config.hidden_size, config.num_attention_heads * config.head_dim(), config.intermediate_size];
    let fits = |g: usize| g >= 8 && g.is_multiple_of(8) && widths.iter().all(|w| w % g == 0);
    if fits(requested) {
        return Ok((requested, None));
    }
    let mut g = requested.next_power_of_two() / 2;
    while g >= 8 {
        if fits(g) {
            let note = format!(
                "group size {requested} does not divide the input widths {widths:?}; using {g} for the whole model"
            );
            return Ok((g, Some(note)));
        }
        g /= 2;
    }
    Err(Error::msg(format!("no group size of at least 8 divides the input widths {widths:?}")))
}

/// Quantizes `files` into `out`. AWQ needs `calib` (token sequences); `on_layer(done,
/// total)` reports progress per decoder layer.
pub fn quantize_model(
    files: &ModelFiles,
    out: &Path,
    opts: &QuantizeOptions,
    calib: &[Vec<u32>],
    on_layer: &mut dyn FnMut(usize, usize),
) -> Result<QuantizeSummary> {
    let config = ModelConfig::from_file(&files.config)?;
    if AwqConfig::from_model_config(&files.config).map_or(true, |c| c.is_some()) {
        return Err(Error::bad_input(
            &files.config,
            None,
            "the model is already quantized; quantize the full-precision model",
        ));
    }
    let (group, group_note) = choose_group_size(&config, opts.group_size)?;
    for kind in LayerProjection::ALL {
        let (width, _) = kind.shape(&config);
        if width % 8 != 0 {
            return Err(Error::msg(format!(
                "output width {width} is not a multiple of 8, as the AWQ gemm layout needs"
            )));
        }
    }
    if files.weights.is_empty() {
        return Err(Error::msg(format!("{}: no safetensors weights", files.spec)));
    }
    // SAFETY: read-only maps of files stylevn does not write while quantizing.
    let st = unsafe { MmapedSafetensors::multi(&files.weights)? };
    let n_layers = config.num_hidden_layers;
    let weight_name = |li: usize, kind: LayerProjection| format!("{}.weight", kind.in_layer(li));
    let mut tensors: BTreeMap<String, QuantizedTensor> = BTreeMap::new();
    // Divisors folded into norms and biases by AWQ, by tensor name.
    let mut divisors: HashMap<String, Vec<f32>> = HashMap::new();
    let (mut calib_sequences, mut calib_tokens) = (0, 0);
    match opts.method {
        QuantMethod::Rtn => {
            for li in 0..n_layers {
                for kind in LayerProjection::ALL {
                    let name = weight_name(li, kind);
                    let w = st.load(&name, &Device::Cpu)?.to_dtype(DType::F32)?;
                    let (r, c) = w.dims2()?;
                    let q = GroupQuant::quantize(&w.flatten_all()?.to_vec1::<f32>()?, r, c, group);
                    tensors.insert(name, QuantizedTensor::Int4(q));
                }
                on_layer(li + 1, n_layers);
            }
        }
        QuantMethod::Awq => {
            let seqs: Vec<&Vec<u32>> = calib.iter().filter(|s| !s.is_empty()).collect();
            if seqs.is_empty() {
                return Err(Error::msg("AWQ needs calibration data (no sequences)"));
            }
            let mut model = load_transformer(files, DType::F32, &Device::Cpu, &DenseLoader)?;
            let tokens: Vec<u32> = seqs.iter().flat_map(|s| s.iter().copied()).collect();
            let lens: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
            (calib_sequences, calib_tokens) = (lens.len(), tokens.len());
            let packing = model.packing(&lens, None)?;
            let mut search_seqs = 1;
            while search_seqs < lens.len() && lens[..search_seqs + 1].iter().sum::<usize>() <= opts.search_tokens {
                search_seqs += 1;
            }
            let search = SearchSet {
                tokens: lens[..search_seqs].iter().sum(),
                packing: model.packing(&lens[..search_seqs], None)?,
            };
            let mut x = model.embed(&tokens)?;
            for li in 0..n_layers {
                let layer = awq_layer(&mut model, li, &x, &packing, &search, group, opts.clip)?;
                for (kind, q) in LayerProjection::ALL.into_iter().zip(layer.quantized) {
                    tensors.insert(weight_name(li, kind), QuantizedTensor::Int4(q));
                }
                let p = format!("model.layers.{li}");
                divisors.insert(format!("{p}.input_layernorm.weight"), layer.input_norm_scales);
                divisors.insert(format!("{p}.post_attention_layernorm.weight"), layer.post_norm_scales);
                for (kind, s) in layer.bias_scales {
                    divisors.insert(format!("{}.bias", kind.in_layer(li)), s);
                }
                x = layer.output;
                on_layer(li + 1, n_layers);
            }
        }
    }
    for (name, _) in st.tensors() {
        if tensors.contains_key(&name) {
            continue;
        }
        let mut t = st.load(&name, &Device::Cpu)?.to_dtype(DType::F32)?;
        if let Some(d) = divisors.get(&name) {
            t = t.div(&Tensor::new(d.as_slice(), &Device::Cpu)?)?;
        }
        tensors.insert(name, QuantizedTensor::Dense(t));
    }
    let projections = n_layers * LayerProjection::ALL.len();
    let awq = AwqConfig { group_size: group };
    let mut note = serde_json::Map::new();
    note.insert("stage".into(), "quantize".into());
    note.insert("source".into(), files.spec.clone().into());
    note.insert("method".into(), opts.method.name().into());
    note.insert("group_size".into(), group.into());
    if let Some(n) = &group_note {
        note.insert("group_size_note".into(), n.clone().into());
    }
    note.insert("calib_sequences".into(), calib_sequences.into());
    note.insert("calib_tokens".into(), calib_tokens.into());
    if opts.method == QuantMethod::Awq {
        note.insert("search_tokens".into(), opts.search_tokens.into());
        note.insert("clip".into(), opts.clip.name().into());
    }
    write_awq_dir(files, out, tensors, awq, note, opts.max_shard_bytes)?;
    Ok(QuantizeSummary { group_size: group, group_note, layers: n_layers, projections, calib_sequences, calib_tokens })
}
