//! Attention of one new token per sequence (decoding) on the CPU: for each query
//! head, scores against every cached key, softmax, and the weighted sum of the
//! values, in one pass over the cache. candle's batched GEMM spends most of its time
//! packing and dispatching for a one-row product; here a head is a few thousand
//! multiply-adds, heads run in parallel, and the strided cache view is read in place.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

/// `softmax(scale · q Kᵀ) V` for one query per head: `q` `(heads, head_dim)`, `k` and
/// `v` `(kv_heads, keys, head_dim)` (the KV cache; rows of a head contiguous), query
/// head `h` reading kv head `h / (heads / kv_heads)`. Returns `(1, heads * head_dim)`;
/// `None` when the inputs do not fit (not f32 on the CPU, gradients tracked).
pub fn decode_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> candle_core::Result<Option<Tensor>> {
    let f32_cpu = |t: &Tensor| t.dtype() == candle_core::DType::F32 && t.device().is_cpu() && !t.track_op();
    if !(f32_cpu(q) && f32_cpu(k) && f32_cpu(v)) || q.rank() != 2 || k.rank() != 3 || v.rank() != 3 {
        return Ok(None);
    }
    let (heads, head_dim) = q.dims2()?;
    // The cache's views read in place; anything else (a fresh sequence's own keys) is copied.
    let k = if rows_contiguous(k.layout(), head_dim) { k.clone() } else { k.contiguous()? };
    let v = if rows_contiguous(v.layout(), head_dim) { v.clone() } else { v.contiguous()? };
    let out = q.contiguous()?.apply_op3_no_bwd(&k, &v, &DecodeAttention { scale })?;
    Ok(Some(out.reshape((1, heads * head_dim))?))
}

struct DecodeAttention {
    scale: f32,
}

/// Whether each row of a `(kv_heads, keys, head_dim)` view is `head_dim` consecutive
/// values and a head's rows follow one another.
fn rows_contiguous(layout: &Layout, head_dim: usize) -> bool {
    let (stride, dims) = (layout.stride(), layout.dims());
    stride[2] == 1 && (stride[1] == head_dim || dims[1] == 1)
}

/// The f32 data of a `(kv_heads, keys, head_dim)` view with contiguous rows, and the
/// offset of head `h`'s first row.
fn cache_view<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    head_dim: usize,
) -> candle_core::Result<(&'a [f32], impl Fn(usize) -> usize)> {
    let CpuStorage::F32(data) = storage else { candle_core::bail!("decode-attention: f32 only") };
    if !rows_contiguous(layout, head_dim) {
        candle_core::bail!("decode-attention: cache rows must be contiguous (strides {:?})", layout.stride())
    }
    let (start, head_stride) = (layout.start_offset(), layout.stride()[0]);
    Ok((data.as_slice(), move |h: usize| start + h * head_stride))
}

impl CustomOp3 for DecodeAttention {
    fn name(&self) -> &'static str {
        "decode-attention"
    }

    fn cpu_fwd(
        &self,
        sq: &CpuStorage,
        lq: &Layout,
        sk: &CpuStorage,
        lk: &Layout,
        sv: &CpuStorage,
        lv: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (heads, head_dim) = lq.shape().dims2()?;
        let (kv_heads, keys, kd) = lk.shape().dims3()?;
        if lv.shape() != lk.shape() || kd != head_dim || kv_heads == 0 || heads % kv_heads != 0 || keys == 0 {
            candle_core::bail!(
                "decode-attention: q {:?}, k {:?}, v {:?} do not fit",
                lq.shape(),
                lk.shape(),
                lv.shape()
            )
        }
        let CpuStorage::F32(q) = sq else { candle_core::bail!("decode-attention: f32 only") };
        let Some((q0, _)) = lq.contiguous_offsets() else {
            candle_core::bail!("decode-attention: q must be contiguous")
        };
        let (k, k_head) = cache_view(sk, lk, head_dim)?;
        let (v, v_head) = cache_view(sv, lv, head_dim)?;
        let group = heads / kv_heads;
        let dot = super::gemv::dot;
        let mut out = vec![0f32; heads * head_dim];
        out.par_chunks_mut(head_dim).enumerate().for_each(|(h, o)| {
            let qh = &q[q0 + h * head_dim..q0 + (h + 1) * head_dim];
            let (kb, vb) = (k_head(h / group), v_head(h / group));
            let mut p: Vec<f32> =
                (0..keys).map(|t| dot(qh, &k[kb + t * head_dim..kb + (t + 1) * head_dim]) * self.scale).collect();
            let max = p.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
            let mut sum = 0f32;
            for s in p.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            for (t, &pt) in p.iter().enumerate() {
                for (oi, vi) in o.iter_mut().zip(&v[vb + t * head_dim..vb + (t + 1) * head_dim]) {
                    *oi += pt * vi;
                }
            }
            for oi in o.iter_mut() {
                *oi /= sum;
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((heads, head_dim))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, IndexOp};

    #[test]
    fn equals_softmax_attention_over_a_strided_cache() {
        let dev = Device::Cpu;
        let (heads, kv_heads, hd, keys, capacity) = (6, 2, 8, 37, 50);
        let vals = |n: usize, seed: usize| -> Vec<f32> {
            (0..n).map(|i| (((i * 31 + seed * 17) % 97) as f32 - 48.0) / 40.0).collect()
        };
        let q = Tensor::from_vec(vals(heads * hd, 1), (heads, hd), &dev).unwrap();
        // The cache holds `capacity` rows per head; `keys` of them are filled.
        let k_buf = Tensor::from_vec(vals(kv_heads * capacity * hd, 2), (kv_heads, capacity, hd), &dev).unwrap();
        let v_buf = Tensor::from_vec(vals(kv_heads * capacity * hd, 3), (kv_heads, capacity, hd), &dev).unwrap();
        let (k, v) = (k_buf.narrow(1, 0, keys).unwrap(), v_buf.narrow(1, 0, keys).unwrap());
        let scale = 1.0 / (hd as f32).sqrt();
        let got = decode_attention(&q, &k, &v, scale).unwrap().unwrap().reshape((heads, hd)).unwrap();
        let group = heads / kv_heads;
        for h in 0..heads {
            let (kh, vh) = (k.i(h / group).unwrap(), v.i(h / group).unwrap());
            let scores =
                (q.i(h).unwrap().unsqueeze(0).unwrap().matmul(&kh.t().unwrap()).unwrap() * scale as f64).unwrap();
            let want = candle_nn::ops::softmax_last_dim(&scores).unwrap().matmul(&vh).unwrap().squeeze(0).unwrap();
            let diff =
                (got.i(h).unwrap() - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-5, "head {h}: {diff}");
        }
    }

    #[test]
    fn declines_tracked_or_non_f32_inputs() {
        let dev = Device::Cpu;
        let q = Tensor::zeros((2, 4), candle_core::DType::F16, &dev).unwrap();
        let k = Tensor::zeros((1, 3, 4), candle_core::DType::F16, &dev).unwrap();
        assert!(decode_attention(&q, &k, &k, 1.0).unwrap().is_none());
    }
}
