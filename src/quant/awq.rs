//! AWQ, one decoder layer at a time, as AutoAWQ runs it for Llama/Qwen2
//! (casper-hansen/AutoAWQ, awq/quantize/quantizer.py and awq/models/llama.py
//! `get_layers_for_scaling`):
//!
//! 1. run the full-precision layer on the calibration tokens, recording the input
//!    of each group of linears; its output is the next layer's input;
//! 2. search the scales of each group (see `awq_search.rs`), all on the
//!    full-precision weights:
//!    - `input_layernorm -> q, k, v`, loss on the self-attention output;
//!    - `v_proj -> o_proj`, only when their shapes match (no GQA), loss on o_proj;
//!    - `post_attention_layernorm -> gate, up`, loss on the MLP output;
//!    - `up_proj -> down_proj`, loss on down_proj;
//! 3. fold the scales in: linear input columns `*= s`, the preceding norm weight or
//!    linear output rows (and bias) `/= s`;
//! 4. search the clipping bound of every linear but q and k, on the scaled weights
//!    and scaled inputs, and clamp (AutoAWQ's symmetric bounds, or by default also
//!    asymmetric ones: [`ClipGrid`]);
//! 5. quantize every linear (`group_quant.rs`).
//!
//! The layer runs through the engine's own [`Transformer::layer_forward`]: group
//! inputs are recorded by wrapping projections, and the self-attention output is the
//! layer output with the MLP replaced by zeros, minus its input.
//!
//! One deviation, for CPU time: `x_mean`, the clip samples and the next layer's input
//! use every calibration token, but the scale-search losses (20 block forwards per
//! group) are measured on the first calibration sequences only ([`SearchSet`]).

use std::sync::{Arc, Mutex};

use candle_core::Tensor;

use super::awq_search::{clip_weight, mse, sample_tokens, search_scale, x_mean, ClipGrid};
use super::group_quant::GroupQuant;
use crate::model::linear::{DenseLinear, Projection};
use crate::model::projections::{LayerInput, LayerProjection};
use crate::model::transformer::Packing;
use crate::model::{Mode, Transformer};
use crate::{Error, Result};

use LayerProjection::{Down, Gate, Up, K, O, Q, V};

/// A projection that outputs zeros (stands in for a removed block or slot).
#[derive(Debug)]
struct ZeroProjection {
    in_features: usize,
    out_features: usize,
}

impl Projection for ZeroProjection {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut dims = x.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = self.out_features;
        }
        Tensor::zeros(dims, x.dtype(), x.device())
    }
    fn in_features(&self) -> usize {
        self.in_features
    }
    fn out_features(&self) -> usize {
        self.out_features
    }
    fn dense_weight(&self) -> Option<(Tensor, Option<Tensor>)> {
        None
    }
}

/// A projection that remembers the last input it saw.
#[derive(Debug)]
struct Recorder {
    inner: Box<dyn Projection>,
    seen: Arc<Mutex<Option<Tensor>>>,
}

impl Projection for Recorder {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(x.clone());
        }
        self.inner.forward(x)
    }
    fn in_features(&self) -> usize {
        self.inner.in_features()
    }
    fn out_features(&self) -> usize {
        self.inner.out_features()
    }
    fn dense_weight(&self) -> Option<(Tensor, Option<Tensor>)> {
        self.inner.dense_weight()
    }
}

/// Puts `p` in the slot of projection `kind` of layer `li` and returns what was there.
fn swap(model: &mut Transformer, li: usize, kind: LayerProjection, p: Box<dyn Projection>) -> Box<dyn Projection> {
    std::mem::replace(model.layers[li].projection_mut(kind), p)
}

/// What AWQ made of one layer.
#[derive(Debug)]
pub struct AwqLayer {
    /// The seven quantized projections, in [`LayerProjection::ALL`] order.
    pub quantized: Vec<GroupQuant>,
    /// `input_layernorm` is divided by these.
    pub input_norm_scales: Vec<f32>,
    /// `post_attention_layernorm` is divided by these.
    pub post_norm_scales: Vec<f32>,
    /// Biases divided by scales (v by the v->o scales, up by the up->down scales).
    pub bias_scales: Vec<(LayerProjection, Vec<f32>)>,
    /// Chosen grid ratio per scaled group, for the record.
    pub ratios: Vec<f64>,
    /// The full-precision layer output: the next layer's input.
    pub output: Tensor,
}

/// The calibration sequences the scale-search losses are measured on: the first
/// `tokens` rows of the packed batch, with their own packing.
#[derive(Debug, Clone)]
pub struct SearchSet {
    /// Rows of the packed batch (whole sequences from the start).
    pub tokens: usize,
    /// Where those sequences lie.
    pub packing: Packing,
}

/// `x Wᵀ + b`.
fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let y = x.matmul(&w.t()?)?;
    Ok(match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}

/// Runs AWQ on layer `li` of `model` (dense f32 projections) for the packed
/// calibration hidden states `x` `(tokens, hidden)`. The model is left as it was.
pub fn awq_layer(
    model: &mut Transformer,
    li: usize,
    x: &Tensor,
    packing: &Packing,
    search: &SearchSet,
    group: usize,
    clip: ClipGrid,
) -> Result<AwqLayer> {
    // Dense weights and biases of the seven projections.
    let mut weights = Vec::with_capacity(7);
    let mut biases = Vec::with_capacity(7);
    for kind in LayerProjection::ALL {
        let (w, b) = model.layers[li]
            .projection_mut(kind)
            .dense_weight()
            .ok_or_else(|| Error::msg(format!("layer {li} {}: AWQ needs dense weights", kind.name())))?;
        weights.push(w.to_dtype(candle_core::DType::F32)?);
        biases.push(b);
    }
    let (q, k, v, o) = (Q.index(), K.index(), V.index(), O.index());
    let (gate, up, down) = (Gate.index(), Up.index(), Down.index());

    // 1. Record each input of the layer (q's = k's = v's, o's, gate's = up's, down's).
    let recorded: Vec<Arc<Mutex<Option<Tensor>>>> =
        LayerInput::ALL.iter().map(|_| Arc::new(Mutex::new(None))).collect();
    for input in LayerInput::ALL {
        let j = input.first_reader();
        let inner = swap(model, li, j, Box::new(ZeroProjection { in_features: 0, out_features: 0 }));
        swap(model, li, j, Box::new(Recorder { inner, seen: recorded[input.index()].clone() }));
    }
    let output = model.layer_forward(li, x, packing, None, Mode::Infer);
    for input in LayerInput::ALL {
        let j = input.first_reader();
        swap(model, li, j, Box::new(DenseLinear::new(weights[j.index()].clone(), biases[j.index()].clone())));
    }
    let output = output?;
    let take = |r: usize| -> Result<Tensor> {
        recorded[r]
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .ok_or_else(|| Error::msg("AWQ: a group input was not recorded"))
    };
    let x_attn = take(LayerInput::AttentionNorm.index())?;
    let x_o = take(LayerInput::AttentionHeads.index())?;
    let x_mlp = take(LayerInput::MlpNorm.index())?;
    let x_down = take(LayerInput::MlpHidden.index())?;
    let head = |t: &Tensor| t.narrow(0, 0, search.tokens);
    let (x_s, x_o_s, x_mlp_s, x_down_s) = (head(x)?, head(&x_o)?, head(&x_mlp)?, head(&x_down)?);

    // 2. Scale search. Self-attention output = layer output with a zero MLP, minus x.
    let mut saved_mlp = Vec::new();
    for kind in [Gate, Up, Down] {
        let (out_features, in_features) = weights[kind.index()].dims2()?;
        saved_mlp.push((kind, swap(model, li, kind, Box::new(ZeroProjection { in_features, out_features }))));
    }
    let attn_search = (|| -> Result<(Tensor, f64)> {
        let reference = model.layer_forward(li, &x_s, &search.packing, None, Mode::Infer)?;
        let ws = [&weights[q], &weights[k], &weights[v]];
        search_scale(&ws, &x_mean(&x_attn)?, group, &mut |cands: &[Tensor]| {
            let old: Vec<_> = [Q, K, V]
                .into_iter()
                .zip(cands)
                .map(|(j, w)| (j, swap(model, li, j, Box::new(DenseLinear::new(w.clone(), biases[j.index()].clone())))))
                .collect();
            let out = model.layer_forward(li, &x_s, &search.packing, None, Mode::Infer);
            for (j, p) in old {
                swap(model, li, j, p);
            }
            mse(&out?, &reference)
        })
    })();
    for (j, p) in saved_mlp {
        swap(model, li, j, p);
    }
    let (s_attn, r_attn) = attn_search?;

    let vo_match = weights[v].dim(0)? == weights[o].dim(1)?;
    let vo = if vo_match {
        let reference = linear(&x_o_s, &weights[o], biases[o].as_ref())?;
        Some(search_scale(&[&weights[o]], &x_mean(&x_o)?, group, &mut |c: &[Tensor]| {
            mse(&linear(&x_o_s, &c[0], biases[o].as_ref())?, &reference)
        })?)
    } else {
        None
    };

    let mlp = |x: &Tensor, g: &Tensor, u: &Tensor, d: &Tensor| -> Result<Tensor> {
        let h = (linear(x, g, biases[gate].as_ref())?.silu()? * linear(x, u, biases[up].as_ref())?)?;
        linear(&h, d, biases[down].as_ref())
    };
    let reference = mlp(&x_mlp_s, &weights[gate], &weights[up], &weights[down])?;
    let (s_mlp, r_mlp) =
        search_scale(&[&weights[gate], &weights[up]], &x_mean(&x_mlp)?, group, &mut |c: &[Tensor]| {
            mse(&mlp(&x_mlp_s, &c[0], &c[1], &weights[down])?, &reference)
        })?;
    let reference = linear(&x_down_s, &weights[down], biases[down].as_ref())?;
    let (s_down, r_down) = search_scale(&[&weights[down]], &x_mean(&x_down)?, group, &mut |c: &[Tensor]| {
        mse(&linear(&x_down_s, &c[0], biases[down].as_ref())?, &reference)
    })?;

    // 3. Fold the scales in.
    let cols = |w: &Tensor, s: &Tensor| -> Result<Tensor> { Ok(w.broadcast_mul(&s.unsqueeze(0)?)?) };
    let rows = |w: &Tensor, s: &Tensor| -> Result<Tensor> { Ok(w.broadcast_div(&s.unsqueeze(1)?)?) };
    let mut scaled = weights.clone();
    for j in [q, k, v] {
        scaled[j] = cols(&scaled[j], &s_attn)?;
    }
    let mut bias_scales = Vec::new();
    let mut ratios = vec![r_attn];
    let mut x_o_scaled = x_o.clone();
    if let Some((s_vo, r_vo)) = &vo {
        scaled[o] = cols(&scaled[o], s_vo)?;
        scaled[v] = rows(&scaled[v], s_vo)?;
        x_o_scaled = x_o.broadcast_div(&s_vo.unsqueeze(0)?)?;
        bias_scales.push((V, s_vo.to_vec1::<f32>()?));
        ratios.push(*r_vo);
    }
    for j in [gate, up] {
        scaled[j] = cols(&scaled[j], &s_mlp)?;
    }
    scaled[down] = cols(&scaled[down], &s_down)?;
    scaled[up] = rows(&scaled[up], &s_down)?;
    bias_scales.push((Up, s_down.to_vec1::<f32>()?));
    ratios.extend([r_mlp, r_down]);

    // 4 and 5. Clip (not q/k), then quantize.
    let inputs = [
        x_attn.broadcast_div(&s_attn.unsqueeze(0)?)?,
        x_o_scaled,
        x_mlp.broadcast_div(&s_mlp.unsqueeze(0)?)?,
        x_down.broadcast_div(&s_down.unsqueeze(0)?)?,
    ];
    let mut quantized = Vec::with_capacity(7);
    for (kind, w) in LayerProjection::ALL.into_iter().zip(&scaled) {
        let (r, c) = w.dims2()?;
        let mut values = w.flatten_all()?.to_vec1::<f32>()?;
        if kind != Q && kind != K {
            clip_weight(&mut values, r, c, &sample_tokens(&inputs[kind.input().index()])?, group, clip)?;
        }
        quantized.push(GroupQuant::quantize(&values, r, c, group));
    }
    Ok(AwqLayer {
        quantized,
        input_norm_scales: s_attn.to_vec1::<f32>()?,
        post_norm_scales: s_mlp.to_vec1::<f32>()?,
        bias_scales,
        ratios,
        output,
    })
}
