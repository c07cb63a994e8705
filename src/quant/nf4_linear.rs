//! A frozen NF4 projection: the weight lives only as NF4 codes; each forward
//! dequantizes it block-wise into f32 and multiplies, and the backward pass
//! dequantizes again to send the gradient to the input. No full-precision copy of
//! the weight is kept between calls and the weight never gets a gradient.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};
use candle_nn::VarBuilder;

use super::nf4::Nf4Weight;
use crate::model::linear::{DenseLoader, LinearLoader, Projection};
use crate::Result;

/// A linear layer with an NF4 weight `[out, in]` and an optional full-precision bias.
#[derive(Debug, Clone)]
pub struct Nf4Linear {
    weight: Arc<Nf4Weight>,
    bias: Option<Tensor>,
}

impl Nf4Linear {
    /// Quantizes the dense weight `[out, in]` (f32) to NF4; the bias stays as given.
    pub fn from_dense(weight: &Tensor, bias: Option<Tensor>) -> Result<Self> {
        let (rows, cols) = weight.dims2()?;
        let values = weight.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(Nf4Linear { weight: Arc::new(Nf4Weight::quantize(&values, rows, cols)), bias })
    }

    /// The quantized weight.
    pub fn weight(&self) -> &Nf4Weight {
        &self.weight
    }

    fn dequantized(&self) -> candle_core::Result<Tensor> {
        Tensor::from_vec(self.weight.dequantize(), (self.weight.rows, self.weight.cols), &Device::Cpu)
    }
}

impl Projection for Nf4Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x.apply_op1(Nf4MatMul { weight: self.weight.clone() })?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
    fn in_features(&self) -> usize {
        self.weight.cols
    }
    fn out_features(&self) -> usize {
        self.weight.rows
    }
    fn dense_weight(&self) -> Option<(Tensor, Option<Tensor>)> {
        self.dequantized().ok().map(|w| (w, self.bias.clone()))
    }
    fn stored_bytes(&self) -> Option<usize> {
        Some(self.weight.bytes())
    }
}

/// `x Wᵀ` with `W` in NF4; backward gives `dL/dx = dL/dy · W` and nothing for `W`.
struct Nf4MatMul {
    weight: Arc<Nf4Weight>,
}

impl Nf4MatMul {
    fn dense(&self) -> candle_core::Result<Tensor> {
        Tensor::from_vec(self.weight.dequantize(), (self.weight.rows, self.weight.cols), &Device::Cpu)
    }
}

impl CustomOp1 for Nf4MatMul {
    fn name(&self) -> &'static str {
        "nf4-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else { candle_core::bail!("nf4-matmul: f32 inputs only") };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("nf4-matmul: contiguous inputs only")
        };
        let dims = layout.shape().dims();
        let cols = *dims.last().unwrap_or(&0);
        if cols != self.weight.cols {
            candle_core::bail!("nf4-matmul: input width {cols}, weight has {} columns", self.weight.cols)
        }
        let n = (end - start) / cols.max(1);
        let x = Tensor::from_slice(&data[start..end], (n, cols), &Device::Cpu)?;
        let y = x.matmul(&self.dense()?.t()?)?;
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = self.weight.rows;
        }
        Ok((CpuStorage::F32(y.flatten_all()?.to_vec1::<f32>()?), Shape::from(out_dims)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let w = self.dense()?.to_dtype(arg.dtype())?;
        Ok(Some(grad_res.broadcast_matmul(&w)?))
    }
}

/// Loads the decoder layers' projections as NF4 (the QLoRA base); the LM head stays
/// dense, as bitsandbytes skips it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Nf4Loader;

impl LinearLoader for Nf4Loader {
    fn load(
        &self,
        vb: VarBuilder,
        name: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Box<dyn Projection>> {
        let dense = DenseLoader.load(vb, name, in_features, out_features, bias)?;
        match dense.dense_weight() {
            Some((weight, bias)) if name.starts_with("model.layers.") => {
                Ok(Box::new(Nf4Linear::from_dense(&weight, bias)?))
            }
            _ => Ok(dense),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn sample(rows: usize, cols: usize) -> Tensor {
        let v: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919 % 997) as f32 / 498.5 - 1.0) * 0.2).collect();
        Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
    }

    #[test]
    fn forward_and_input_gradient_use_the_dequantized_weight() {
        let w = sample(24, 128);
        let layer = Nf4Linear::from_dense(&w, None).unwrap();
        let dense = layer.dense_weight().unwrap().0;
        let x = Var::from_tensor(&sample(5, 128)).unwrap();
        let y = layer.forward(x.as_tensor()).unwrap();
        let want = x.as_tensor().matmul(&dense.t().unwrap()).unwrap();
        let diff = (y.clone() - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5);
        // d(sum y)/dx = ones · W
        let grads = y.sum_all().unwrap().backward().unwrap();
        let gx = grads.get(x.as_tensor()).unwrap();
        let want = Tensor::ones((5, 24), DType::F32, &Device::Cpu).unwrap().matmul(&dense).unwrap();
        let diff = (gx - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5);
    }
}
