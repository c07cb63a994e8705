//! A frozen NF4 projection: the weight lives only as NF4 codes; each forward
//! dequantizes it block-wise into f32 and multiplies, and the backward pass
//! dequantizes again to send the gradient to the input. No full-precision copy of
//! the weight is kept between calls and the weight never gets a gradient. With
//! `bf16` set (training's `precision`, on CPUs with AVX-512 BF16) both products run
//! through [`crate::model::bf16_gemm`], as QLoRA's usual bf16 compute dtype does.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};
use candle_nn::VarBuilder;

use super::nf4::Nf4Weight;
#[cfg(target_arch = "x86_64")]
use crate::model::bf16_gemm::{matmul, PackedB};
use crate::model::linear::{DenseLoader, LinearLoader, Projection};
use crate::Result;

/// A linear layer with an NF4 weight `[out, in]` and an optional full-precision bias.
#[derive(Debug, Clone)]
pub struct Nf4Linear {
    weight: Arc<Nf4Weight>,
    bias: Option<Tensor>,
    bf16: bool,
}

impl Nf4Linear {
    /// Quantizes the dense weight `[out, in]` (f32) to NF4; the bias stays as given.
    pub fn from_dense(weight: &Tensor, bias: Option<Tensor>) -> Result<Self> {
        let (rows, cols) = weight.dims2()?;
        let values = weight.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(Nf4Linear { weight: Arc::new(Nf4Weight::quantize(&values, rows, cols)), bias, bf16: false })
    }

    /// This layer with its products in bf16 (`true`) or f32; f32 where the CPU lacks
    /// AVX-512 BF16 ([`crate::model::precision::bf16_supported`]).
    pub fn with_bf16(mut self, bf16: bool) -> Self {
        self.bf16 = bf16 && crate::model::precision::bf16_supported();
        self
    }

    /// The quantized weight.
    pub fn weight(&self) -> &Nf4Weight {
        &self.weight
    }

    /// The op computing this layer's products.
    fn op(&self) -> Nf4MatMul {
        Nf4MatMul { weight: self.weight.clone(), bf16: self.bf16 }
    }
}

impl Projection for Nf4Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x.apply_op1(self.op())?;
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
        self.op().dense().ok().map(|w| (w, self.bias.clone()))
    }
    fn stored_bytes(&self) -> Option<usize> {
        Some(self.weight.bytes())
    }
    fn input_grad(&self, dy: &Tensor) -> candle_core::Result<Tensor> {
        self.op().input_grad(dy)
    }
}

/// `x Wᵀ` with `W` in NF4; backward gives `dL/dx = dL/dy · W` and nothing for `W`.
struct Nf4MatMul {
    weight: Arc<Nf4Weight>,
    bf16: bool,
}

impl Nf4MatMul {
    fn dense(&self) -> candle_core::Result<Tensor> {
        Tensor::from_vec(self.weight.dequantize(), (self.weight.rows, self.weight.cols), &Device::Cpu)
    }

    /// `x Wᵀ` for `x` holding `n` rows of the weight's width, row-major.
    fn times_weight_t(&self, x: &[f32], n: usize) -> candle_core::Result<Vec<f32>> {
        let w = &self.weight;
        #[cfg(target_arch = "x86_64")]
        if self.bf16 {
            let dense = w.dequantize();
            // B = Wᵀ: column c of B is row c of the weight.
            let packed = PackedB::from_columns(&dense, w.cols, w.cols, w.rows);
            let mut out = vec![0f32; n * w.rows];
            matmul(x, w.cols, n, &packed, None, &mut out, w.rows, true);
            return Ok(out);
        }
        let x = Tensor::from_slice(x, (n, w.cols), &Device::Cpu)?;
        x.matmul(&self.dense()?.t()?)?.flatten_all()?.to_vec1::<f32>()
    }

    /// `dy W` for `dy` of shape `(..., rows)`.
    fn input_grad(&self, dy: &Tensor) -> candle_core::Result<Tensor> {
        #[cfg(target_arch = "x86_64")]
        if self.bf16 && dy.dtype() == DType::F32 {
            let w = &self.weight;
            let mut dims = dy.dims().to_vec();
            let data = dy.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
            let n = data.len() / w.rows.max(1);
            let dense = w.dequantize();
            // B = W: row r of B is row r of the weight.
            let packed = PackedB::from_rows(&dense, w.cols, w.rows, w.cols);
            let mut out = vec![0f32; n * w.cols];
            matmul(&data, w.rows, n, &packed, None, &mut out, w.cols, true);
            if let Some(last) = dims.last_mut() {
                *last = w.cols;
            }
            return Tensor::from_vec(out, dims, dy.device());
        }
        dy.broadcast_matmul(&self.dense()?.to_dtype(dy.dtype())?)
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
        let y = self.times_weight_t(&data[start..end], n)?;
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = self.weight.rows;
        }
        Ok((CpuStorage::F32(y), Shape::from(out_dims)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(self.input_grad(&grad_res.to_dtype(arg.dtype())?)?))
    }
}

/// Loads the decoder layers' projections as NF4 (the QLoRA base); the LM head stays
/// dense, as bitsandbytes skips it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Nf4Loader {
    /// Run the NF4 layers' products in bf16 ([`Nf4Linear::with_bf16`]).
    pub bf16: bool,
}

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
                Ok(Box::new(Nf4Linear::from_dense(&weight, bias)?.with_bf16(self.bf16)))
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

    /// `a (n x k) . b (k x m)` over the bf16-rounded operands, in f64, and the sum of
    /// the terms' magnitudes (the scale of f32 summation error).
    #[cfg(target_arch = "x86_64")]
    fn rounded_product(a: &[f32], b: &[f32], n: usize, k: usize, m: usize) -> Vec<(f64, f64)> {
        use crate::model::bf16_gemm::to_bf16;
        let r = |v: f32| f32::from_bits((to_bf16(v) as u32) << 16) as f64;
        let mut out = Vec::with_capacity(n * m);
        for i in 0..n {
            for j in 0..m {
                let terms = (0..k).map(|t| r(a[i * k + t]) * r(b[t * m + j]));
                out.push(terms.fold((0.0, 0.0), |(s, mag), v| (s + v, mag + v.abs())));
            }
        }
        out
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn bf16_products_equal_the_rounded_operands_products() {
        if !crate::model::precision::bf16_supported() {
            eprintln!("skipped: this CPU has no AVX-512 BF16");
            return;
        }
        let (rows, cols) = (40, 130);
        let layer = Nf4Linear::from_dense(&sample(rows, cols), None).unwrap().with_bf16(true);
        let w = layer.dense_weight().unwrap().0;
        let wv = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let wt = w.t().unwrap().contiguous().unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let close = |got: Vec<f32>, want: Vec<(f64, f64)>| {
            assert_eq!(got.len(), want.len());
            for (i, (g, (v, mag))) in got.iter().zip(want).enumerate() {
                assert!((*g as f64 - v).abs() <= 1e-6 * mag + 1e-7, "{i}: {g} vs {v}");
            }
        };
        // x W^T on a (2, 7, cols) input: B = W^T is cols x rows.
        let x = (sample(14, cols) * 3.0).unwrap();
        let y = layer.forward(&x.reshape((2, 7, cols)).unwrap()).unwrap();
        assert_eq!(y.dims(), [2, 7, rows]);
        let xv = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        close(y.flatten_all().unwrap().to_vec1().unwrap(), rounded_product(&xv, &wt, 14, cols, rows));
        // dy W: B = W is rows x cols.
        let dy = sample(14, rows);
        let dx = layer.input_grad(&dy.reshape((2, 7, rows)).unwrap()).unwrap();
        assert_eq!(dx.dims(), [2, 7, cols]);
        let dyv = dy.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        close(dx.flatten_all().unwrap().to_vec1().unwrap(), rounded_product(&dyv, &wv, 14, rows, cols));
        // The f32 layer differs from it by bf16 rounding only.
        let f32_layer = Nf4Linear::from_dense(&sample(rows, cols), None).unwrap();
        let y32 = f32_layer.forward(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let y16 = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let scale = y32.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(y32.iter().zip(&y16).all(|(a, b)| (a - b).abs() <= 2e-2 * scale));
        assert!(y32.iter().zip(&y16).any(|(a, b)| a != b), "bf16 rounding changed nothing");
    }
}
