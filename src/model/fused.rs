//! One-pass CPU kernels for the element-wise chains of training's hand-written
//! backward ([`super::backward`]), where candle would run one allocating pass per
//! op: the causal softmax, its backward, the SiLU-gated product and its backward,
//! and RMSNorm's backward. Rows run in parallel (rayon); f32, contiguous inputs.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

fn slice<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else { candle_core::bail!("{op}: f32 only") };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: contiguous inputs only"),
    }
}

fn same_shape(a: &Layout, b: &Layout, op: &str) -> candle_core::Result<()> {
    if a.shape() != b.shape() {
        candle_core::bail!("{op}: shapes {:?} and {:?} differ", a.shape(), b.shape())
    }
    Ok(())
}

fn row_len(layout: &Layout) -> usize {
    layout.shape().dims().last().copied().unwrap_or(1).max(1)
}

/// `softmax(scale * scores)` over the last dimension with a causal mask: row `r`
/// is query `r % len` of a sequence whose queries follow `offset` earlier keys, and
/// sees keys `0..=offset + r % len`.
struct CausalSoftmax {
    len: usize,
    offset: usize,
    scale: f32,
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(s, l, self.name())?;
        let keys = row_len(l);
        if keys != self.offset + self.len {
            candle_core::bail!("causal-softmax: {keys} keys for {} queries after {} keys", self.len, self.offset)
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(keys).zip(x.par_chunks(keys)).enumerate().for_each(|(r, (o, x))| {
            let seen = self.offset + r % self.len + 1;
            let max = x[..seen].iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v)) * self.scale;
            let mut sum = 0f32;
            for (o, v) in o[..seen].iter_mut().zip(&x[..seen]) {
                *o = (v * self.scale - max).exp();
                sum += *o;
            }
            let inv = 1.0 / sum;
            o[..seen].iter_mut().for_each(|v| *v *= inv);
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

/// Causal `softmax(scale * scores)` of one sequence's scores `(..., len, offset + len)`:
/// `len` queries that follow `offset` keys every query sees (0 for a sequence alone).
pub fn causal_softmax(scores: &Tensor, len: usize, offset: usize, scale: f64) -> candle_core::Result<Tensor> {
    scores.contiguous()?.apply_op1(CausalSoftmax { len, offset, scale: scale as f32 })
}

/// `scale * p (dp - sum(p dp))` row-wise: the gradient of the scores of `softmax(scale * scores)`.
struct SoftmaxBackward {
    scale: f32,
}

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "softmax-backward"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        same_shape(l1, l2, self.name())?;
        let (p, dp) = (slice(s1, l1, self.name())?, slice(s2, l2, self.name())?);
        let n = row_len(l1);
        let mut out = vec![0f32; p.len()];
        out.par_chunks_mut(n).zip(p.par_chunks(n).zip(dp.par_chunks(n))).for_each(|(o, (p, dp))| {
            let dot: f32 = p.iter().zip(dp).map(|(a, b)| a * b).sum();
            for ((o, p), dp) in o.iter_mut().zip(p).zip(dp) {
                *o = self.scale * p * (dp - dot);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// The gradient of the scores from the probabilities `p` and their gradient `dp`.
pub fn softmax_backward(p: &Tensor, dp: &Tensor, scale: f64) -> candle_core::Result<Tensor> {
    p.contiguous()?.apply_op2(&dp.contiguous()?, SoftmaxBackward { scale: scale as f32 })
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `silu(gate) * up`.
struct SiluMul;

impl CustomOp2 for SiluMul {
    fn name(&self) -> &'static str {
        "silu-mul"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        same_shape(l1, l2, self.name())?;
        let (g, u) = (slice(s1, l1, self.name())?, slice(s2, l2, self.name())?);
        let n = row_len(l1);
        let mut out = vec![0f32; g.len()];
        out.par_chunks_mut(n).zip(g.par_chunks(n).zip(u.par_chunks(n))).for_each(|(o, (g, u))| {
            for ((o, g), u) in o.iter_mut().zip(g).zip(u) {
                *o = g * sigmoid(*g) * u;
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// The gated MLP's product `silu(gate) * up`.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> candle_core::Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, SiluMul)
}

/// The gradients of `gate` and `up` of `m = silu(gate) * up`, stacked as `(2, ...)`:
/// `dup = dm silu(g)`, `dgate = dm up σ(g) (1 + g (1 - σ(g)))`.
struct SiluMulBackward;

impl CustomOp3 for SiluMulBackward {
    fn name(&self) -> &'static str {
        "silu-mul-backward"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        same_shape(l1, l2, self.name())?;
        same_shape(l1, l3, self.name())?;
        let (g, u, dm) = (slice(s1, l1, self.name())?, slice(s2, l2, self.name())?, slice(s3, l3, self.name())?);
        let mut out = vec![0f32; 2 * g.len()];
        let (dgate, dup) = out.split_at_mut(g.len());
        let n = row_len(l1);
        dgate
            .par_chunks_mut(n)
            .zip(dup.par_chunks_mut(n))
            .zip(g.par_chunks(n).zip(u.par_chunks(n).zip(dm.par_chunks(n))))
            .for_each(|((dg, du), (g, (u, dm)))| {
                for i in 0..g.len() {
                    let s = sigmoid(g[i]);
                    du[i] = dm[i] * g[i] * s;
                    dg[i] = dm[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
                }
            });
        let mut dims = vec![2];
        dims.extend_from_slice(l1.shape().dims());
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

/// `(dgate, dup)` of `m = silu(gate) * up` for the gradient `dm`.
pub fn silu_mul_backward(gate: &Tensor, up: &Tensor, dm: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    let both = gate.contiguous()?.apply_op3(&up.contiguous()?, &dm.contiguous()?, SiluMulBackward)?;
    Ok((both.get(0)?, both.get(1)?))
}

/// RMSNorm's input gradient for `y = x r w`, `r = (mean(x²) + eps)^-1/2`, row-wise:
/// `dx = r (dy w) - x r³ mean((dy w) x)`.
struct RmsNormBackward {
    eps: f32,
}

impl CustomOp3 for RmsNormBackward {
    fn name(&self) -> &'static str {
        "rms-norm-backward"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        same_shape(l1, l3, self.name())?;
        let (x, w, dy) = (slice(s1, l1, self.name())?, slice(s2, l2, self.name())?, slice(s3, l3, self.name())?);
        let n = row_len(l1);
        if w.len() != n {
            candle_core::bail!("rms-norm-backward: weight of {} for rows of {n}", w.len())
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(n).zip(x.par_chunks(n).zip(dy.par_chunks(n))).for_each(|(o, (x, dy))| {
            let ms = x.iter().map(|v| v * v).sum::<f32>() / n as f32;
            let r = 1.0 / (ms + self.eps).sqrt();
            let dot = x.iter().zip(dy).zip(w).map(|((x, dy), w)| x * dy * w).sum::<f32>() / n as f32;
            let k = r * r * r * dot;
            for i in 0..n {
                o[i] = r * dy[i] * w[i] - x[i] * k;
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// The gradient of RMSNorm's input `x` for the output gradient `dy` (frozen weight `w`).
pub fn rms_norm_backward(x: &Tensor, w: &Tensor, eps: f32, dy: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op3(&w.contiguous()?, &dy.contiguous()?, RmsNormBackward { eps })
}
