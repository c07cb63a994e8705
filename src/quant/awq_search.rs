//! The two searches of AutoAWQ (casper-hansen/AutoAWQ, awq/quantize/quantizer.py
//! `_search_best_scale` and `_compute_best_clip`), on f32 tensors.
//!
//! Scale search, per group of linears sharing an input `x`:
//! ```text
//! x_mean = mean over tokens of |x|                        per input channel
//! w_mean = mean over rows of |W| / (max |W| in its group + 1e-6)
//! for ratio = k / N_GRID, k = 0..N_GRID:
//!     s = (x_mean^ratio / (w_mean^(1 - ratio) + 1e-4)).clamp(min = 1e-4)
//!     s = s / sqrt(max(s) * min(s))
//!     loss = MSE(block output with every W replaced by Q(W * s) / s, fp output)
//! keep the s with the least loss
//! ```
//! Clip search, per output row and group (skipped for q/k by the caller): for
//! `i = 0..MAX_SHRINK * N_GRID`, clamp the group to `±absmax * (1 - i / N_GRID)`,
//! quantize, and keep the bound with the least mean over the sampled tokens of
//! `(Σ_{k∈group} (Q(w) - w)_k x_k)²`.

use candle_core::{DType, Tensor, D};

use super::group_quant::fake_quantize;
use crate::Result;

/// Grid points of both searches (AutoAWQ `n_grid = 20`).
pub const N_GRID: usize = 20;
/// Largest clipping shrink tried (AutoAWQ `max_shrink = 0.5`).
pub const MAX_SHRINK: f64 = 0.5;
/// Tokens sampled for the clip search (AutoAWQ `n_sample_token = 512`).
pub const CLIP_TOKENS: usize = 512;

/// Mean absolute activation per input channel of `x` `(tokens, in)`.
pub fn x_mean(x: &Tensor) -> Result<Tensor> {
    Ok(x.abs()?.mean(0)?)
}

/// AutoAWQ's `w_mean` over the rows of every weight in `weights` (each `[out_i, in]`).
pub fn w_mean(weights: &[&Tensor], group: usize) -> Result<Tensor> {
    let w = Tensor::cat(weights, 0)?;
    let (rows, cols) = w.dims2()?;
    let grouped = w.abs()?.reshape((rows * cols / group, group))?;
    let amax = (grouped.max_keepdim(1)? + 1e-6)?;
    let scaled = grouped.broadcast_div(&amax)?.reshape((rows, cols))?;
    Ok(scaled.mean(0)?)
}

/// The candidate scales of grid point `ratio` (see the module doc).
pub fn candidate_scales(x_mean: &Tensor, w_mean: &Tensor, ratio: f64) -> Result<Tensor> {
    let s = x_mean.powf(ratio)?.div(&(w_mean.powf(1.0 - ratio)? + 1e-4)?)?.clamp(1e-4, f64::MAX)?;
    let max = s.max_all()?.to_scalar::<f32>()?;
    let min = s.min_all()?.to_scalar::<f32>()?;
    Ok((s / ((max * min) as f64).sqrt())?)
}

/// `Q(W * s) / s`: the weight as the block sees it after scaling and quantization.
pub fn scaled_fake_quant(w: &Tensor, s: &Tensor, group: usize) -> Result<Tensor> {
    let scaled = w.broadcast_mul(&s.unsqueeze(0)?)?;
    let mut values = scaled.flatten_all()?.to_vec1::<f32>()?;
    fake_quantize(&mut values, group);
    Ok(Tensor::from_vec(values, w.shape(), w.device())?.broadcast_div(&s.unsqueeze(0)?)?)
}

/// Mean squared difference of two tensors.
pub fn mse(a: &Tensor, b: &Tensor) -> Result<f32> {
    Ok((a - b)?.sqr()?.mean_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()?)
}

/// The best scales for `weights` (which share the input whose `x_mean` is given):
/// `loss(candidate weights)` returns the block's output error. Returns the scales
/// and the chosen ratio.
pub fn search_scale(
    weights: &[&Tensor],
    x_mean: &Tensor,
    group: usize,
    loss: &mut dyn FnMut(&[Tensor]) -> Result<f32>,
) -> Result<(Tensor, f64)> {
    let w_mean = w_mean(weights, group)?;
    let mut best: Option<(f32, Tensor, f64)> = None;
    for k in 0..N_GRID {
        let ratio = k as f64 / N_GRID as f64;
        let s = candidate_scales(x_mean, &w_mean, ratio)?;
        let candidates = weights.iter().map(|w| scaled_fake_quant(w, &s, group)).collect::<Result<Vec<_>>>()?;
        let l = loss(&candidates)?;
        if best.as_ref().is_none_or(|(b, _, _)| l < *b) {
            best = Some((l, s, ratio));
        }
    }
    match best {
        Some((l, s, ratio)) if l.is_finite() => Ok((s, ratio)),
        _ => Err(crate::Error::msg("AWQ scale search: every candidate gave a non-finite loss")),
    }
}

/// Every `step`-th row of `x` `(tokens, in)`, at most [`CLIP_TOKENS`] of them.
pub fn sample_tokens(x: &Tensor) -> Result<Tensor> {
    let n = x.dim(0)?;
    let step = (n / CLIP_TOKENS).max(1);
    let idx: Vec<u32> = (0..n).step_by(step).take(CLIP_TOKENS).map(|i| i as u32).collect();
    Ok(x.index_select(&Tensor::new(idx.as_slice(), x.device())?, 0)?)
}

/// Clamps the weight `[out, in]` (row-major `w`) group by group to the bound that
/// best preserves `x · w` on the sampled tokens `x` `(tokens, in)`.
pub fn clip_weight(w: &mut [f32], rows: usize, cols: usize, x: &Tensor, group: usize) -> Result<()> {
    let groups = cols / group;
    let dev = x.device().clone();
    let tokens = x.dim(0)?;
    // (groups, group, tokens)
    let xg = x.reshape((tokens, groups, group))?.permute((1, 2, 0))?.contiguous()?;
    let absmax: Vec<f32> = w.chunks_exact(group).map(|g| g.iter().fold(0f32, |m, v| m.max(v.abs()))).collect();
    let mut best_err = vec![f32::INFINITY; rows * groups];
    let mut best_bound = absmax.clone();
    for i in 0..(MAX_SHRINK * N_GRID as f64) as usize {
        let shrink = 1.0 - i as f32 / N_GRID as f32;
        let mut delta = w.to_vec();
        for (g, chunk) in delta.chunks_exact_mut(group).enumerate() {
            let bound = absmax[g] * shrink;
            for v in chunk.iter_mut() {
                *v = v.clamp(-bound, bound);
            }
        }
        fake_quantize(&mut delta, group);
        for (d, v) in delta.iter_mut().zip(w.iter()) {
            *d -= v;
        }
        // (rows, groups, group) -> (groups, rows, group) @ (groups, group, tokens)
        let d = Tensor::from_vec(delta, (rows, groups, group), &dev)?.transpose(0, 1)?.contiguous()?;
        let err = d.matmul(&xg)?.sqr()?.mean(D::Minus1)?.t()?.contiguous()?; // (rows, groups)
        for ((e, b), (best, bound)) in
            err.flatten_all()?.to_vec1::<f32>()?.iter().zip(&absmax).zip(best_err.iter_mut().zip(best_bound.iter_mut()))
        {
            if *e < *best {
                *best = *e;
                *bound = b * shrink;
            }
        }
    }
    for (g, chunk) in w.chunks_exact_mut(group).enumerate() {
        for v in chunk.iter_mut() {
            *v = v.clamp(-best_bound[g], best_bound[g]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn candidate_scales_are_normalised_and_follow_the_formula() {
        let dev = Device::Cpu;
        let xm = Tensor::new(&[1.0f32, 4.0, 0.25, 2.0], &dev).unwrap();
        let wm = Tensor::new(&[0.5f32, 0.5, 1.0, 0.25], &dev).unwrap();
        let s = candidate_scales(&xm, &wm, 0.5).unwrap().to_vec1::<f32>().unwrap();
        let raw: Vec<f32> = [(1.0f32, 0.5f32), (4.0, 0.5), (0.25, 1.0), (2.0, 0.25)]
            .iter()
            .map(|(x, w)| x.sqrt() / (w.sqrt() + 1e-4))
            .collect();
        let norm = (raw.iter().cloned().fold(f32::MIN, f32::max) * raw.iter().cloned().fold(f32::MAX, f32::min)).sqrt();
        for (a, b) in s.iter().zip(&raw) {
            assert!((a - b / norm).abs() < 1e-5);
        }
        // ratio 0: s depends only on the weights.
        let s0 = candidate_scales(&xm, &wm, 0.0).unwrap().to_vec1::<f32>().unwrap();
        assert!((s0[0] - s0[1]).abs() < 1e-6);
    }

    #[test]
    fn clipping_never_hurts_the_sampled_output() {
        let dev = Device::Cpu;
        let (rows, cols, group) = (8, 32, 32); // one group per row: its error is the output error
        let mut w: Vec<f32> = (0..rows * cols).map(|i| ((i * 37 % 101) as f32 - 50.0) / 400.0).collect();
        w[5] = 0.9; // an outlier that spoils its group's quantization
        let x = Tensor::from_vec(
            (0..64 * cols).map(|i| ((i * 13 % 29) as f32 - 14.0) / 14.0).collect::<Vec<f32>>(),
            (64, cols),
            &dev,
        )
        .unwrap();
        let err = |w: &[f32]| {
            let mut q = w.to_vec();
            fake_quantize(&mut q, group);
            let orig = Tensor::from_vec(w.to_vec(), (rows, cols), &dev).unwrap();
            let q = Tensor::from_vec(q, (rows, cols), &dev).unwrap();
            mse(&x.matmul(&q.t().unwrap()).unwrap(), &x.matmul(&orig.t().unwrap()).unwrap()).unwrap()
        };
        let before = err(&w);
        let orig = w.clone();
        clip_weight(&mut w, rows, cols, &x, group).unwrap();
        let q_after = {
            let mut q = w.clone();
            fake_quantize(&mut q, group);
            q
        };
        let after = mse(
            &x.matmul(&Tensor::from_vec(q_after, (rows, cols), &dev).unwrap().t().unwrap()).unwrap(),
            &x.matmul(&Tensor::from_vec(orig, (rows, cols), &dev).unwrap().t().unwrap()).unwrap(),
        )
        .unwrap();
        assert!(after <= before + 1e-9, "{after} > {before}");
    }
}
