//! Pluggable linear layers. Every projection of the transformer (q, k, v, o,
//! gate, up, down, lm_head) is a `Box<dyn Projection>`, so one model serves every
//! stage: dense weights here; an NF4 base, AWQ int4 weights or a LoRA adapter
//! wrapping another projection in later stages.

use candle_core::{DType, Module, Shape, Tensor, Var};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::Result;

/// A linear map `y = x W^T (+ b)` applied to the last dimension of `x`.
pub trait Projection: Send + Sync + std::fmt::Debug {
    /// Applies the layer to `x` of shape `(..., in_features)`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor>;
    /// Input width.
    fn in_features(&self) -> usize;
    /// Output width.
    fn out_features(&self) -> usize;
    /// The full-precision weight `[out, in]` and bias, when this layer can give them
    /// (merging, quantizing, tests).
    fn dense_weight(&self) -> Option<(Tensor, Option<Tensor>)>;
    /// Bytes the frozen weight occupies in memory, when known.
    fn stored_bytes(&self) -> Option<usize> {
        None
    }
    /// `dy W`: the gradient that reaches the input through the frozen weight alone
    /// (training's hand-written backward). The default multiplies by [`Projection::dense_weight`].
    fn input_grad(&self, dy: &Tensor) -> candle_core::Result<Tensor> {
        match self.dense_weight() {
            Some((w, _)) => dy.matmul(&w.to_dtype(dy.dtype())?),
            None => candle_core::bail!("this projection cannot give its weight for a backward pass"),
        }
    }
    /// The trainable low-rank update this projection carries around its frozen base, if any.
    fn low_rank(&self) -> Option<&dyn LowRank> {
        None
    }
    /// The trainable output rows this projection puts in place of its frozen ones, if any.
    fn trained_rows(&self) -> Option<&dyn TrainedRows> {
        None
    }
}

/// Output rows of a frozen projection replaced by trainable ones (PEFT's trainable
/// tokens on the LM head): output `ids[k]` is `x · values[k]`, the rest the base's.
pub trait TrainedRows {
    /// The replaced output indexes (token ids of an LM head).
    fn ids(&self) -> &[u32];
    /// The rows in their place, `[ids.len(), in]`.
    fn values(&self) -> &Var;
}

/// A trainable low-rank update `y = base(x) + (dropout(x) A^T) B^T * scale` (LoRA),
/// seen by training's hand-written backward.
pub trait LowRank {
    /// The frozen projection the update wraps.
    fn base(&self) -> &dyn Projection;
    /// `A`, `[r, in]`.
    fn a(&self) -> &Var;
    /// `B`, `[out, r]`.
    fn b(&self) -> &Var;
    /// The update's scale.
    fn scale(&self) -> f64;
    /// The dropout multiplier (zeros and `1/(1-p)`) the current forward applies to an
    /// input of `shape`, or `None` when dropout is off.
    fn dropout_mask(&self, shape: &Shape) -> candle_core::Result<Option<Tensor>>;
}

/// A dense layer holding its weight `[out, in]` and optional bias `[out]`. A weight
/// held in another dtype than the input (an f16 LM head in an f32 model) is widened
/// on the fly: row by row when decoding one token, for the call otherwise.
#[derive(Debug, Clone)]
pub struct DenseLinear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl DenseLinear {
    /// Wraps a weight `[out, in]` and an optional bias `[out]`.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        DenseLinear { weight, bias }
    }
}

impl Projection for DenseLinear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if let Some(y) = super::gemv::gemv(x, &self.weight)? {
            return match &self.bias {
                Some(b) => y.broadcast_add(b),
                None => Ok(y),
            };
        }
        let weight =
            if self.weight.dtype() == x.dtype() { self.weight.clone() } else { self.weight.to_dtype(x.dtype())? };
        candle_nn::Linear::new(weight, self.bias.clone()).forward(x)
    }
    fn in_features(&self) -> usize {
        self.weight.dims2().map(|(_, i)| i).unwrap_or(0)
    }
    fn out_features(&self) -> usize {
        self.weight.dims2().map(|(o, _)| o).unwrap_or(0)
    }
    fn dense_weight(&self) -> Option<(Tensor, Option<Tensor>)> {
        Some((self.weight.clone(), self.bias.clone()))
    }
    fn stored_bytes(&self) -> Option<usize> {
        Some(self.weight.elem_count() * self.weight.dtype().size_in_bytes())
    }
}

/// Builds the projection named `name` (HF prefix, e.g. `model.layers.0.self_attn.q_proj`)
/// from the checkpoint. Implementations decide the representation (dense, NF4, AWQ).
pub trait LinearLoader {
    /// Loads the `[out_features, in_features]` layer under `vb` (already at `name`).
    fn load(
        &self,
        vb: VarBuilder,
        name: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Box<dyn Projection>>;

    /// The dtype the embedding table (and the LM head tied to it) is held in when the
    /// model computes in `compute`: the compute dtype unless a loader knows better.
    fn table_dtype(&self, compute: DType) -> DType {
        compute
    }

    /// The LM head of a model whose head is its embedding table `[vocab, hidden]`:
    /// the table itself unless a loader holds the head in another form.
    fn tied_head(&self, table: &Tensor) -> Result<Box<dyn Projection>> {
        Ok(Box::new(DenseLinear::new(table.clone(), None)))
    }
}

/// Loads projections as dense weights in the model's compute dtype.
#[derive(Debug, Default, Clone, Copy)]
pub struct DenseLoader;

impl LinearLoader for DenseLoader {
    fn load(
        &self,
        vb: VarBuilder,
        _name: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Box<dyn Projection>> {
        let weight = vb.get((out_features, in_features), "weight")?;
        let bias = if bias { Some(vb.get(out_features, "bias")?) } else { None };
        Ok(Box::new(DenseLinear::new(weight, bias)))
    }
}

/// The dtype a model computes (or an import stores) in, as configs and flags name
/// it (`f32`, `f16`, `bf16`; the long names too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDtype {
    /// float32.
    #[serde(alias = "float32")]
    #[value(alias = "float32")]
    F32,
    /// float16.
    #[serde(alias = "float16")]
    #[value(alias = "float16")]
    F16,
    /// bfloat16.
    #[serde(alias = "bfloat16")]
    #[value(alias = "bfloat16")]
    Bf16,
}

impl ComputeDtype {
    /// The candle dtype.
    pub fn dtype(self) -> DType {
        match self {
            ComputeDtype::F32 => DType::F32,
            ComputeDtype::F16 => DType::F16,
            ComputeDtype::Bf16 => DType::BF16,
        }
    }
}
