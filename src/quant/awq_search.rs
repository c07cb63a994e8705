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

use candle_core::{DType, Tensor};

use rayon::prelude::*;

use super::group_quant::{fake_quantize, fake_quantize_group};
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

/// The clipping bounds tried for each group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClipGrid {
    /// AutoAWQ's: `±absmax · (1 - i / N_GRID)`, `i < MAX_SHRINK · N_GRID`.
    Symmetric,
    /// AutoAWQ's, and also `[min · (1 - i / N_GRID), max · (1 - j / N_GRID)]` for every
    /// `i, j < MAX_SHRINK · N_GRID`: the two ends shrink apart, which also moves the
    /// zero point. A superset, so never worse on the sampled tokens.
    Asymmetric,
}

impl ClipGrid {
    /// The grid's name as the command line spells it.
    pub fn name(&self) -> &'static str {
        match self {
            ClipGrid::Symmetric => "symmetric",
            ClipGrid::Asymmetric => "asymmetric",
        }
    }

    /// `(lower, upper)` shrink factors; `None` for the lower one means symmetric.
    fn candidates(self) -> Vec<(Option<f32>, f32)> {
        let steps = (MAX_SHRINK * N_GRID as f64) as usize;
        let shrink = |i: usize| 1.0 - i as f32 / N_GRID as f32;
        let mut c: Vec<(Option<f32>, f32)> = (0..steps).map(|i| (None, shrink(i))).collect();
        if self == ClipGrid::Asymmetric {
            for i in 0..steps {
                c.extend((0..steps).map(|j| (Some(shrink(i)), shrink(j))));
            }
        }
        c
    }
}

/// Clamps the weight `[out, in]` (row-major `w`) group by group to the bounds that
/// best preserve `x · w` on the sampled tokens `x` `(tokens, in)`.
///
/// A group's loss, the mean over tokens of `(δ · x_t)²` with `δ = Q(clamp(w)) - w`,
/// is the quadratic form `δᵀ H δ` with `H = Xᵀ X / tokens` over the group's inputs:
/// `H` is computed once per group of inputs, and each candidate then costs
/// `group²` multiply-adds instead of `group · tokens`.
pub fn clip_weight(w: &mut [f32], rows: usize, cols: usize, x: &Tensor, group: usize, grid: ClipGrid) -> Result<()> {
    let groups = cols / group;
    let tokens = x.dim(0)?;
    // (groups, group, tokens) @ (groups, tokens, group) -> (groups, group, group)
    let xg = x.reshape((tokens, groups, group))?.permute((1, 2, 0))?.contiguous()?;
    let h = (xg.matmul(&xg.t()?)? / tokens as f64)?.flatten_all()?.to_vec1::<f32>()?;
    let candidates = grid.candidates();
    debug_assert_eq!(w.len(), rows * cols);
    w.par_chunks_mut(group).enumerate().for_each(|(i, wg)| {
        let hg = &h[(i % groups) * group * group..][..group * group];
        let (lo, hi) = wg.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        let mut q = vec![0f32; group];
        let mut best = (f32::INFINITY, (lo, hi));
        for &(lower, upper) in &candidates {
            let (blo, bhi) = match lower {
                None => {
                    let b = lo.abs().max(hi.abs()) * upper;
                    (-b, b)
                }
                Some(l) => (lo * l, hi * upper),
            };
            for (qk, &wk) in q.iter_mut().zip(wg.iter()) {
                *qk = wk.clamp(blo, bhi);
            }
            fake_quantize_group(&mut q);
            for (qk, &wk) in q.iter_mut().zip(wg.iter()) {
                *qk -= wk;
            }
            let err = quadratic_form(hg, &q);
            if err < best.0 {
                best = (err, (blo, bhi));
            }
        }
        let (blo, bhi) = best.1;
        for v in wg.iter_mut() {
            *v = v.clamp(blo, bhi);
        }
    });
    Ok(())
}

/// `dᵀ H d` for the row-major square `h`.
fn quadratic_form(h: &[f32], d: &[f32]) -> f32 {
    let n = d.len();
    let mut total = 0f32;
    for (a, row) in h.chunks_exact(n).enumerate() {
        // Eight independent sums, so the compiler can keep them in vector registers.
        let mut acc = [0f32; 8];
        let (head, tail) = row.split_at(n - n % 8);
        for (hc, dc) in head.chunks_exact(8).zip(d.chunks_exact(8)) {
            for l in 0..8 {
                acc[l] += hc[l] * dc[l];
            }
        }
        let mut hd: f32 = acc.iter().sum();
        hd += tail.iter().zip(&d[n - n % 8..]).map(|(x, y)| x * y).sum::<f32>();
        total += d[a] * hd;
    }
    total
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
        let orig = w.clone();
        clip_weight(&mut w, rows, cols, &x, group, ClipGrid::Symmetric).unwrap();
        let (before, after) =
            (output_error(&orig, &orig, rows, cols, group, &x), output_error(&orig, &w, rows, cols, group, &x));
        assert!(after <= before + 1e-9, "{after} > {before}");
    }

    /// The output error of the fake-quantized `w` against `w`: mean over tokens and rows.
    fn output_error(w: &[f32], quantized_from: &[f32], rows: usize, cols: usize, group: usize, x: &Tensor) -> f32 {
        let dev = x.device();
        let mut q = quantized_from.to_vec();
        fake_quantize(&mut q, group);
        let q = Tensor::from_vec(q, (rows, cols), dev).unwrap();
        let w = Tensor::from_vec(w.to_vec(), (rows, cols), dev).unwrap();
        mse(&x.matmul(&q.t().unwrap()).unwrap(), &x.matmul(&w.t().unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn quadratic_form_is_the_mean_squared_output_error() {
        // x: 3 tokens of 2 inputs; H = xᵀx / 3 = [[5/3, 2/3], [2/3, 8/3]].
        let x = [[1.0f32, 2.0], [2.0, 0.0], [0.0, -2.0]];
        let h = [5.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 8.0 / 3.0];
        let d = [0.5f32, -1.0];
        let direct: f32 = x.iter().map(|t| (t[0] * d[0] + t[1] * d[1]).powi(2)).sum::<f32>() / 3.0;
        assert!((quadratic_form(&h, &d) - direct).abs() < 1e-6);
        // ((-1.5)² + 1² + 2²) / 3 = 29 / 12.
        assert!((direct - 29.0 / 12.0).abs() < 1e-6);
    }

    #[test]
    fn asymmetric_clipping_is_never_worse_and_helps_one_sided_outliers() {
        let dev = Device::Cpu;
        let (rows, cols, group) = (8, 64, 32);
        // Each row's first group has a large positive outlier, its second group none.
        let mut w: Vec<f32> = (0..rows * cols).map(|i| ((i * 37 % 101) as f32 - 50.0) / 400.0).collect();
        for r in 0..rows {
            w[r * cols + 3] = 0.8 + r as f32 * 0.05;
        }
        let x = Tensor::from_vec(
            (0..96 * cols).map(|i| ((i * 13 % 29) as f32 - 14.0) / 14.0).collect::<Vec<f32>>(),
            (96, cols),
            &dev,
        )
        .unwrap();
        let clipped = |grid: ClipGrid| {
            let mut c = w.clone();
            clip_weight(&mut c, rows, cols, &x, group, grid).unwrap();
            output_error(&w, &c, rows, cols, group, &x)
        };
        let (none, sym, asym) =
            (output_error(&w, &w, rows, cols, group, &x), clipped(ClipGrid::Symmetric), clipped(ClipGrid::Asymmetric));
        assert!(sym <= none + 1e-9 && asym <= sym + 1e-9, "none {none}, symmetric {sym}, asymmetric {asym}");
        assert!(asym < 0.95 * sym, "asymmetric {asym} vs symmetric {sym}");
    }
}
