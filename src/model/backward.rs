//! Training without autograd: a decoder layer's forward that keeps exactly what its
//! backward needs, and the hand-written backward that turns the gradient of the
//! layer's output into the gradient of its input and of every LoRA `A` and `B`.
//! This forward is the one training runs; `Mode::Train` in `transformer.rs` is the
//! reference it is checked against (its autograd gradients, `train::trainer` tests).
//!
//! Candle's autograd keeps every intermediate of the graph and runs a generic
//! backward per op; here the forward uses the fused inference kernels and saves
//! about 6k floats per token per layer (input, roped q and k, v, attention output,
//! residual, gate and up), the attention probabilities and the norms are recomputed
//! in backward, and only the frozen weights' `dy W` and the low-rank products are
//! multiplied. The base weights never get a gradient.
//!
//! Derivatives (per token row, `H` the hidden size):
//! - RMSNorm `y = x r w`, `r = (mean(x²) + eps)^-1/2`: `dx = r (dy w) - x r³ mean((dy w) x)`.
//! - RoPE is a rotation, so its backward is the rotation by the negated angle.
//! - Softmax `p`: `ds = p (dp - sum(dp p))`.
//! - SiLU: `silu'(g) = σ(g) (1 + g (1 - σ(g)))`.
//! - LoRA `y = W x + B A (m x) s`: `dB = s dyᵀ h`, `dh = s dy B`, `dA = dhᵀ (m x)`,
//!   `dx = dy W + m (dh A)`, with `h = (m x) Aᵀ` saved from the forward.

use std::collections::HashMap;

use candle_core::{DType, Tensor, TensorId, D};

use super::fused::{causal_softmax, rms_norm_backward, silu_mul, silu_mul_backward, softmax_backward};
use super::linear::Projection;
use super::transformer::{Packing, Transformer};
use crate::Result;

/// What a decoder layer's backward needs from its forward.
#[derive(Debug)]
pub struct LayerActivations {
    x: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn: Tensor,
    x1: Tensor,
    gate: Tensor,
    up: Tensor,
    /// `(m x) Aᵀ` of each projection that carries a low-rank update, in
    /// q, k, v, o, gate, up, down order.
    low_rank: [Option<Tensor>; 7],
}

/// Gradients of trainable variables, summed over the calls that produce them.
#[derive(Debug, Default)]
pub struct ParamGrads {
    grads: HashMap<TensorId, Tensor>,
}

impl ParamGrads {
    /// Adds `g` to the gradient of the variable whose tensor id is `id`.
    pub fn add(&mut self, id: TensorId, g: Tensor) -> candle_core::Result<()> {
        let sum = match self.grads.remove(&id) {
            Some(prev) => (prev + g)?,
            None => g,
        };
        self.grads.insert(id, sum);
        Ok(())
    }

    /// Removes and returns the gradient of the variable with tensor id `id`.
    pub fn take(&mut self, id: TensorId) -> Option<Tensor> {
        self.grads.remove(&id)
    }
}

/// `p(x)` with the low-rank part's hidden `h = (m x) Aᵀ` when `p` has one.
fn project(p: &dyn Projection, x: &Tensor) -> candle_core::Result<(Tensor, Option<Tensor>)> {
    let Some(lr) = p.low_rank() else { return Ok((p.forward(x)?, None)) };
    let y = lr.base().forward(x)?;
    let xd = match lr.dropout_mask(x.shape())? {
        Some(m) => (x * m)?,
        None => x.clone(),
    };
    let h = xd.matmul(&lr.a().as_tensor().detach().t()?)?;
    let update = h.matmul(&(lr.b().as_tensor().detach() * lr.scale())?.t()?)?;
    Ok(((y + update)?, Some(h)))
}

/// The gradient of `p`'s input for `dy`, adding `p`'s low-rank gradients to `grads`.
fn project_backward(
    p: &dyn Projection,
    x: &Tensor,
    h: Option<&Tensor>,
    dy: &Tensor,
    grads: &mut ParamGrads,
) -> candle_core::Result<Tensor> {
    let dx = p.input_grad(dy)?;
    let (Some(lr), Some(h)) = (p.low_rank(), h) else { return Ok(dx) };
    let mask = lr.dropout_mask(x.shape())?;
    let xd = match &mask {
        Some(m) => (x * m)?,
        None => x.clone(),
    };
    let scale = lr.scale();
    let dh = dy.matmul(&(lr.b().as_tensor().detach() * scale)?)?;
    grads.add(lr.b().as_tensor().id(), (dy.t()?.matmul(h)? * scale)?)?;
    grads.add(lr.a().as_tensor().id(), dh.t()?.matmul(&xd)?)?;
    let dxl = dh.matmul(&lr.a().as_tensor().detach())?;
    let dxl = match &mask {
        Some(m) => (dxl * m)?,
        None => dxl,
    };
    dx + dxl
}

/// RoPE of `x` `(tokens, heads, head_dim)` with the batch's rows (fused kernel).
fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    candle_nn::rotary_emb::rope_thd(&x.unsqueeze(0)?.contiguous()?, cos, sin)?.squeeze(0)
}

/// Rows of the LM head computed at once: bounds the `(rows, vocab)` logits in memory.
const HEAD_CHUNK: usize = 256;

impl Transformer {
    /// Summed negative log-likelihood of `targets[i]` predicted from hidden row
    /// `rows[i]` of the last layer's output `x`, without autograd; with `grad_scale`,
    /// also the gradient of `grad_scale * NLL` with respect to `x` (zero on rows
    /// that predict nothing). The head runs over at most [`HEAD_CHUNK`] rows at a
    /// time: `dz = softmax(z) - onehot(target)`, `dh = dz W`, then the final norm.
    /// When the head has trained rows ([`Projection::trained_rows`]), their gradient
    /// `dz[:, ids]ᵀ h` goes into `grads`.
    pub fn head_nll(
        &self,
        x: &Tensor,
        rows: &[u32],
        targets: &[u32],
        mut grad_scale: Option<(f64, &mut ParamGrads)>,
    ) -> Result<(f64, Option<Tensor>)> {
        let dev = x.device();
        let (n, hidden) = x.dims2()?;
        let mut nll = 0f64;
        let mut dx = grad_scale.as_ref().map(|_| vec![0f32; n * hidden]);
        for (rows, targets) in rows.chunks(HEAD_CHUNK).zip(targets.chunks(HEAD_CHUNK)) {
            let index = Tensor::new(rows, dev)?;
            let picked = x.index_select(&index, 0)?;
            let h = candle_nn::ops::rms_norm(&picked, &self.norm.weight, self.norm.eps)?;
            let log_probs = candle_nn::ops::log_softmax(&self.lm_head.forward(&h)?.to_dtype(DType::F32)?, D::Minus1)?;
            let target = Tensor::new(targets, dev)?.unsqueeze(1)?;
            nll -= log_probs.gather(&target, 1)?.sum_all()?.to_scalar::<f32>()? as f64;
            let (Some((scale, grads)), Some(dx)) = (grad_scale.as_mut(), dx.as_mut()) else { continue };
            let onehot = Tensor::ones((rows.len(), 1), DType::F32, dev)?;
            // Detached: trained head rows make the logits track their variable, and a
            // gradient keeping that graph would keep every chunk's logits alive.
            let dz = (log_probs.exp()?.scatter_add(&target, &onehot.neg()?, 1)? * *scale)?.detach();
            if let Some(trained) = self.lm_head.trained_rows() {
                let ids = Tensor::new(trained.ids(), dev)?;
                let dz_rows = dz.index_select(&ids, 1)?;
                grads.add(trained.values().as_tensor().id(), dz_rows.t()?.matmul(&h.to_dtype(DType::F32)?)?)?;
            }
            let dh = self.lm_head.input_grad(&dz.to_dtype(h.dtype())?)?;
            let dpicked = rms_norm_backward(&picked, &self.norm.weight, self.norm.eps, &dh)?;
            let dpicked = dpicked.to_dtype(DType::F32)?.to_vec2::<f32>()?;
            for (&row, d) in rows.iter().zip(dpicked) {
                let at = row as usize * hidden;
                for (acc, v) in dx[at..at + hidden].iter_mut().zip(d) {
                    *acc += v;
                }
            }
        }
        let dx = dx.map(|d| Tensor::from_vec(d, (n, hidden), dev)?.to_dtype(x.dtype())).transpose()?;
        Ok((nll, dx))
    }

    /// Decoder layer `li` on `x` (a packed batch), without autograd: returns the
    /// output and the activations [`Transformer::layer_backward`] needs.
    pub fn layer_forward_saving(&self, li: usize, x: &Tensor, packing: &Packing) -> Result<(Tensor, LayerActivations)> {
        let layer = &self.layers[li];
        let (attn_l, mlp) = (&layer.self_attn, &layer.mlp);
        let n = x.dim(0)?;
        let (nh, nkv, hd) = (attn_l.num_heads, attn_l.num_kv_heads, attn_l.head_dim);
        let norm1 = &layer.input_layernorm;
        let h1 = candle_nn::ops::rms_norm(x, &norm1.weight, norm1.eps)?;
        let (q, lq) = project(attn_l.q_proj.as_ref(), &h1)?;
        let (k, lk) = project(attn_l.k_proj.as_ref(), &h1)?;
        let (v, lv) = project(attn_l.v_proj.as_ref(), &h1)?;
        let q = rope(&q.reshape((n, nh, hd))?, &packing.rope_cos, &packing.rope_sin)?;
        let k = rope(&k.reshape((n, nkv, hd))?, &packing.rope_cos, &packing.rope_sin)?;
        let v = v.reshape((n, nkv, hd))?;
        let mut outputs = Vec::with_capacity(packing.spans.len());
        for (si, &(_, len, _)) in packing.spans.iter().enumerate() {
            let (q_g, k_s, v_s) = self.sequence_heads(li, &q, &k, &v, packing, si)?;
            let p = attention_probs(&q_g, &k_s, hd, len)?;
            let o = p.matmul(&v_s)?;
            outputs.push(o.reshape((nh, len, hd))?.transpose(0, 1)?.reshape((len, nh * hd))?);
        }
        let attn = Tensor::cat(&outputs, 0)?;
        let (a, lo) = project(attn_l.o_proj.as_ref(), &attn)?;
        let x1 = (x + a)?;
        let norm2 = &layer.post_attention_layernorm;
        let h2 = candle_nn::ops::rms_norm(&x1, &norm2.weight, norm2.eps)?;
        let (gate, lg) = project(mlp.gate_proj.as_ref(), &h2)?;
        let (up, lu) = project(mlp.up_proj.as_ref(), &h2)?;
        let m = silu_mul(&gate, &up)?;
        let (d, ld) = project(mlp.down_proj.as_ref(), &m)?;
        let out = (&x1 + d)?;
        let acts =
            LayerActivations { x: x.clone(), q, k, v, attn, x1, gate, up, low_rank: [lq, lk, lv, lo, lg, lu, ld] };
        Ok((out, acts))
    }

    /// The gradient of layer `li`'s input from the gradient `dout` of its output,
    /// adding the low-rank variables' gradients to `grads`.
    pub fn layer_backward(
        &self,
        li: usize,
        acts: &LayerActivations,
        packing: &Packing,
        dout: &Tensor,
        grads: &mut ParamGrads,
    ) -> Result<Tensor> {
        let layer = &self.layers[li];
        let (attn_l, mlp) = (&layer.self_attn, &layer.mlp);
        let [lq, lk, lv, lo, lg, lu, ld] = &acts.low_rank;
        let n = acts.x.dim(0)?;
        let (nh, nkv, hd) = (attn_l.num_heads, attn_l.num_kv_heads, attn_l.head_dim);

        // MLP: out = x1 + down(silu(gate) * up).
        let m = silu_mul(&acts.gate, &acts.up)?;
        let dm = project_backward(mlp.down_proj.as_ref(), &m, ld.as_ref(), dout, grads)?;
        let (dg, du) = silu_mul_backward(&acts.gate, &acts.up, &dm)?;
        let norm2 = &layer.post_attention_layernorm;
        let h2 = candle_nn::ops::rms_norm(&acts.x1, &norm2.weight, norm2.eps)?;
        let dh2 = (project_backward(mlp.gate_proj.as_ref(), &h2, lg.as_ref(), &dg, grads)?
            + project_backward(mlp.up_proj.as_ref(), &h2, lu.as_ref(), &du, grads)?)?;
        let dx1 = (dout + rms_norm_backward(&acts.x1, &norm2.weight, norm2.eps, &dh2)?)?;

        // Attention: x1 = x + o(attention(rope(q(h1)), rope(k(h1)), v(h1))).
        let dattn = project_backward(attn_l.o_proj.as_ref(), &acts.attn, lo.as_ref(), &dx1, grads)?;
        let group = nh / nkv;
        let (mut dqs, mut dks, mut dvs) = (Vec::new(), Vec::new(), Vec::new());
        for (si, &(start, len, _)) in packing.spans.iter().enumerate() {
            let (q_g, k_s, v_s) = self.sequence_heads(li, &acts.q, &acts.k, &acts.v, packing, si)?;
            let p = attention_probs(&q_g, &k_s, hd, len)?;
            let d_o = dattn.narrow(0, start, len)?.reshape((len, nh, hd))?.transpose(0, 1)?.contiguous()?;
            let d_o = d_o.reshape((nkv, group * len, hd))?;
            let dv = p.t()?.matmul(&d_o)?;
            let dp = d_o.matmul(&v_s.t()?)?;
            let ds = softmax_backward(&p, &dp, 1.0 / (hd as f64).sqrt())?;
            let dq = ds.matmul(&k_s)?.reshape((nh, len, hd))?.transpose(0, 1)?;
            let dk = ds.t()?.matmul(&q_g)?;
            let (dk, dv) = match packing.prefix_of(si) {
                // The shared prefix is sequence 0, already done: its keys and values
                // also get this sequence's gradient.
                Some((_, p_len)) => {
                    dks[0] = (&dks[0] + dk.narrow(1, 0, p_len)?.transpose(0, 1)?)?;
                    dvs[0] = (&dvs[0] + dv.narrow(1, 0, p_len)?.transpose(0, 1)?)?;
                    (dk.narrow(1, p_len, len)?, dv.narrow(1, p_len, len)?)
                }
                None => (dk, dv),
            };
            dqs.push(dq);
            dks.push(dk.transpose(0, 1)?);
            dvs.push(dv.transpose(0, 1)?);
        }
        let neg_sin = packing.rope_sin.neg()?;
        let dq = rope(&Tensor::cat(&dqs, 0)?, &packing.rope_cos, &neg_sin)?.reshape((n, nh * hd))?;
        let dk = rope(&Tensor::cat(&dks, 0)?, &packing.rope_cos, &neg_sin)?.reshape((n, nkv * hd))?;
        let dv = Tensor::cat(&dvs, 0)?.reshape((n, nkv * hd))?;
        let norm1 = &layer.input_layernorm;
        let h1 = candle_nn::ops::rms_norm(&acts.x, &norm1.weight, norm1.eps)?;
        let dh1 = (project_backward(attn_l.q_proj.as_ref(), &h1, lq.as_ref(), &dq, grads)?
            + project_backward(attn_l.k_proj.as_ref(), &h1, lk.as_ref(), &dk, grads)?)?;
        let dh1 = (dh1 + project_backward(attn_l.v_proj.as_ref(), &h1, lv.as_ref(), &dv, grads)?)?;
        Ok((dx1 + rms_norm_backward(&acts.x, &norm1.weight, norm1.eps, &dh1)?)?)
    }

    /// Sequence `si`'s roped queries grouped by KV head `(kv_heads, group * len, head_dim)`,
    /// and the keys and values it attends to `(kv_heads, keys, head_dim)`: the shared
    /// prefix's (when it has one) followed by its own.
    fn sequence_heads(
        &self,
        li: usize,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        packing: &Packing,
        si: usize,
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let attn = &self.layers[li].self_attn;
        let (start, len, _) = packing.spans[si];
        let q_g = q.narrow(0, start, len)?.transpose(0, 1)?.contiguous()?;
        let q_g = q_g.reshape((attn.num_kv_heads, (attn.num_heads / attn.num_kv_heads) * len, attn.head_dim))?;
        Ok((q_g, packing.attended(k, si)?, packing.attended(v, si)?))
    }
}

/// Causal attention probabilities `(kv_heads, group * len, keys)` of one sequence's
/// `len` queries: each sees the `keys - len` keys before the sequence and its own
/// keys up to itself.
fn attention_probs(q_g: &Tensor, k_s: &Tensor, head_dim: usize, len: usize) -> candle_core::Result<Tensor> {
    let keys = k_s.dim(1)?;
    causal_softmax(&q_g.matmul(&k_s.t()?)?, len, keys - len, 1.0 / (head_dim as f64).sqrt())
}
