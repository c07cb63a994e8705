//! A frozen projection with a packed integer weight ([`Int4Weight`] from AWQ or RTN,
//! [`Int8Weight`] for an LM head): the forward runs the weight's integer kernel (f32
//! in and out); the backward sends `dL/dx = dL/dy · W` to the input (so LoRA can
//! train on a 4-bit base) and nothing to the weight.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};

use super::int4::Int4Weight;
use super::int8::Int8Weight;
use crate::model::linear::Projection;

/// A quantized `[rows, cols]` matrix the CPU multiplies without a dense copy.
pub trait PackedWeight: Send + Sync + std::fmt::Debug + 'static {
    /// Output rows.
    fn rows(&self) -> usize;
    /// Input columns.
    fn cols(&self) -> usize;
    /// `x Wᵀ` for `x` row-major `[n, cols]`: `[n, rows]`.
    fn matmul(&self, x: &[f32], n: usize) -> Vec<f32>;
    /// The weight in f32, row-major.
    fn dequantize(&self) -> Vec<f32>;
    /// Bytes held.
    fn bytes(&self) -> usize;
}

impl PackedWeight for Int4Weight {
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn matmul(&self, x: &[f32], n: usize) -> Vec<f32> {
        Int4Weight::matmul(self, x, n)
    }
    fn dequantize(&self) -> Vec<f32> {
        Int4Weight::dequantize(self)
    }
    fn bytes(&self) -> usize {
        Int4Weight::bytes(self)
    }
}

impl PackedWeight for Int8Weight {
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn matmul(&self, x: &[f32], n: usize) -> Vec<f32> {
        Int8Weight::matmul(self, x, n)
    }
    fn dequantize(&self) -> Vec<f32> {
        Int8Weight::dequantize(self)
    }
    fn bytes(&self) -> usize {
        Int8Weight::bytes(self)
    }
}

/// A linear layer `y = x Wᵀ (+ b)` with a packed weight.
#[derive(Debug)]
pub struct PackedLinear<W: PackedWeight> {
    weight: Arc<W>,
    bias: Option<Tensor>,
}

/// A 4-bit layer (AWQ or RTN).
pub type Int4Linear = PackedLinear<Int4Weight>;
/// An 8-bit layer (a 4-bit model's LM head on the CPU).
pub type Int8Linear = PackedLinear<Int8Weight>;

impl<W: PackedWeight> PackedLinear<W> {
    /// Wraps a quantized weight and an optional full-precision bias `[out]`.
    pub fn new(weight: W, bias: Option<Tensor>) -> Self {
        PackedLinear { weight: Arc::new(weight), bias }
    }

    /// The quantized weight.
    pub fn weight(&self) -> &W {
        &self.weight
    }

    fn dense(&self) -> candle_core::Result<Tensor> {
        Tensor::from_vec(self.weight.dequantize(), (self.weight.rows(), self.weight.cols()), &Device::Cpu)
    }
}

impl<W: PackedWeight> Projection for PackedLinear<W> {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x.to_dtype(DType::F32)?.contiguous()?.apply_op1(PackedMatMul { weight: self.weight.clone() })?;
        let y = y.to_dtype(x.dtype())?;
        match &self.bias {
            Some(b) => y.broadcast_add(&b.to_dtype(x.dtype())?),
            None => Ok(y),
        }
    }
    fn in_features(&self) -> usize {
        self.weight.cols()
    }
    fn out_features(&self) -> usize {
        self.weight.rows()
    }
    fn dense_weight(&self) -> Option<(Tensor, Option<Tensor>)> {
        Some((self.dense().ok()?, self.bias.clone()))
    }
    fn stored_bytes(&self) -> Option<usize> {
        Some(self.weight.bytes())
    }
}

struct PackedMatMul<W: PackedWeight> {
    weight: Arc<W>,
}

impl<W: PackedWeight> CustomOp1 for PackedMatMul<W> {
    fn name(&self) -> &'static str {
        "packed-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else { candle_core::bail!("packed-matmul: f32 inputs only") };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("packed-matmul: contiguous inputs only")
        };
        let dims = layout.shape().dims();
        let cols = *dims.last().unwrap_or(&0);
        if cols != self.weight.cols() {
            candle_core::bail!("packed-matmul: input width {cols}, weight has {} columns", self.weight.cols())
        }
        let n = (end - start) / cols.max(1);
        let y = self.weight.matmul(&data[start..end], n);
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = self.weight.rows();
        }
        Ok((CpuStorage::F32(y), Shape::from(out_dims)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let w = Tensor::from_vec(self.weight.dequantize(), (self.weight.rows(), self.weight.cols()), &Device::Cpu)?;
        Ok(Some(grad_res.broadcast_matmul(&w.to_dtype(arg.dtype())?)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    #[test]
    fn forward_and_input_gradient_use_the_dequantized_weight() {
        let (rows, cols) = (24, 64);
        let codes: Vec<u8> = (0..rows * cols).map(|i| (i * 11 % 16) as u8).collect();
        let zeros: Vec<u8> = (0..rows * 2).map(|i| (i % 16) as u8).collect();
        let scales = vec![half::f16::from_f32(0.0125); rows * 2];
        let layer = Int4Linear::new(Int4Weight::from_codes(&codes, &zeros, &scales, rows, cols, 32).unwrap(), None);
        let dense = layer.dense_weight().unwrap().0;
        for n in [1, 5, 20] {
            let xv: Vec<f32> = (0..n * cols).map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0).collect();
            let x = Var::from_tensor(&Tensor::from_vec(xv, (n, cols), &Device::Cpu).unwrap()).unwrap();
            let y = layer.forward(x.as_tensor()).unwrap();
            let want = x.as_tensor().matmul(&dense.t().unwrap()).unwrap();
            let diff = (y.clone() - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            // Up to FUSED_MAX_TOKENS tokens the activations are rounded to int8 steps of
            // max|x|/127 (|x| <= 1 here): off by at most Σ|w| / 254 per output.
            let row_abs = dense.abs().unwrap().sum(1).unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            let bound = if n <= crate::quant::int4::FUSED_MAX_TOKENS { row_abs / 254.0 } else { 1e-4 };
            assert!(diff < bound, "n={n}: {diff} (bound {bound})");
            let grads = y.sum_all().unwrap().backward().unwrap();
            let gx = grads.get(x.as_tensor()).unwrap();
            let want = Tensor::ones((n, rows), DType::F32, &Device::Cpu).unwrap().matmul(&dense).unwrap();
            let diff = (gx - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-4);
        }
    }
}
