//! The decoder-only transformer shared by Qwen2/Qwen2.5 and the Llama family,
//! with weight names exactly as in HF checkpoints (`model.layers.{i}.self_attn.q_proj`, ...).
//!
//! Tokens travel *packed*: a batch of sequences is one `(tokens, hidden)` matrix,
//! so every projection is one matmul over all tokens of all sequences, while
//! attention runs per sequence (its own positions and KV cache). That one layout
//! serves batched prefill, continuous-batching decode (sequences at different
//! positions) and training with packed sequences (no attention across them).
//!
//! Three forward passes compute the same function:
//! - [`Mode::Train`] is the **reference**: differentiable ops only (`softmax`,
//!   `rms_norm_slow`, RoPE written with tensor ops), so candle's autograd reaches
//!   every parameter. Its logits are checked against transformers
//!   (`tests/model_tiny.rs`) and autograd through it is what the hand-written
//!   backward is checked against (`train::trainer` tests). No stage runs it.
//! - [`Mode::Infer`] uses candle's fused kernels, which drop gradients (see
//!   shared/REFERENCE.md): generation, serving, evaluation and AWQ calibration.
//! - [`Transformer::layer_forward_saving`] (`backward.rs`) is training's forward:
//!   the fused kernels, keeping what the hand-written backward needs.

use candle_core::{DType, Device, IndexOp, Tensor, D};
use candle_nn::VarBuilder;

use super::config::ModelConfig;
use super::kv_cache::KvCache;
use super::linear::{LinearLoader, Projection};
use super::projections::LayerProjection;
use crate::{Error, Result};

/// Which forward to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Differentiable ops only, gradients reach every parameter: the reference the
    /// other passes are checked against (training itself runs
    /// [`Transformer::layer_forward_saving`]).
    Train,
    /// Fused kernels, no gradients: generation, serving, evaluation, calibration.
    Infer,
}

/// Which positions get logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsAt {
    /// Every token: `(tokens, vocab)` (training, perplexity).
    All,
    /// The last token of each sequence: `(sequences, vocab)` (generation).
    Last,
}

/// RMSNorm with its learned scale.
#[derive(Debug, Clone)]
pub(super) struct RmsNorm {
    pub(super) weight: Tensor,
    pub(super) eps: f32,
}

impl RmsNorm {
    fn load(vb: VarBuilder, size: usize, eps: f64) -> Result<Self> {
        Ok(RmsNorm { weight: vb.get(size, "weight")?, eps: eps as f32 })
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        match mode {
            Mode::Infer => candle_nn::ops::rms_norm(x, &self.weight, self.eps),
            Mode::Train => candle_nn::ops::rms_norm_slow(x, &self.weight, self.eps),
        }
    }
}

/// Precomputed RoPE tables (`positions x head_dim/2`), HF's non-interleaved layout.
#[derive(Debug, Clone)]
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(cfg: &ModelConfig, dtype: DType, device: &Device) -> Result<Self> {
        let half = cfg.head_dim() / 2;
        let positions = cfg.max_position_embeddings;
        // As transformers: inv_freq in f32, angle = position * inv_freq in f32.
        let inv_freq: Vec<f32> =
            (0..half).map(|i| (1.0 / cfg.rope_theta.powf((2 * i) as f64 / cfg.head_dim() as f64)) as f32).collect();
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for p in 0..positions {
            for f in &inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let cos = Tensor::from_vec(cos, (positions, half), device)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (positions, half), device)?.to_dtype(dtype)?;
        Ok(Rope { cos, sin })
    }

    /// The cos and sin rows of `positions` (`(tokens, head_dim/2)` each).
    fn rows(&self, positions: &[u32], device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
        let index = Tensor::new(positions, device)?;
        Ok((self.cos.index_select(&index, 0)?, self.sin.index_select(&index, 0)?))
    }

    /// Rotates `x` of shape `(tokens, heads, head_dim)` by the rows of [`Rope::rows`].
    fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        match mode {
            Mode::Infer => candle_nn::rotary_emb::rope_thd(&x.unsqueeze(0)?.contiguous()?, cos, sin)?.squeeze(0),
            Mode::Train => {
                let cos = Tensor::cat(&[cos, cos], D::Minus1)?.unsqueeze(1)?;
                let sin = Tensor::cat(&[sin, sin], D::Minus1)?.unsqueeze(1)?;
                let half = x.dim(D::Minus1)? / 2;
                let x1 = x.narrow(D::Minus1, 0, half)?;
                let x2 = x.narrow(D::Minus1, half, half)?;
                let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
                x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?
            }
        }
    }
}

/// Self-attention with grouped-query heads.
#[derive(Debug)]
pub struct Attention {
    /// Query projection.
    pub q_proj: Box<dyn Projection>,
    /// Key projection.
    pub k_proj: Box<dyn Projection>,
    /// Value projection.
    pub v_proj: Box<dyn Projection>,
    /// Output projection.
    pub o_proj: Box<dyn Projection>,
    pub(super) num_heads: usize,
    pub(super) num_kv_heads: usize,
    pub(super) head_dim: usize,
}

/// The gated SiLU MLP: `down(silu(gate(x)) * up(x))`.
#[derive(Debug)]
pub struct Mlp {
    /// Gate projection.
    pub gate_proj: Box<dyn Projection>,
    /// Up projection.
    pub up_proj: Box<dyn Projection>,
    /// Down projection.
    pub down_proj: Box<dyn Projection>,
}

/// One decoder layer: pre-norm attention and pre-norm MLP, each with a residual.
#[derive(Debug)]
pub struct DecoderLayer {
    /// Self-attention block.
    pub self_attn: Attention,
    /// MLP block.
    pub mlp: Mlp,
    pub(super) input_layernorm: RmsNorm,
    pub(super) post_attention_layernorm: RmsNorm,
}

impl DecoderLayer {
    /// The layer's projections, each with its kind, in [`LayerProjection::ALL`] order.
    pub fn projections_mut(&mut self) -> [(LayerProjection, &mut Box<dyn Projection>); 7] {
        let Attention { q_proj, k_proj, v_proj, o_proj, .. } = &mut self.self_attn;
        let Mlp { gate_proj, up_proj, down_proj } = &mut self.mlp;
        [
            (LayerProjection::Q, q_proj),
            (LayerProjection::K, k_proj),
            (LayerProjection::V, v_proj),
            (LayerProjection::O, o_proj),
            (LayerProjection::Gate, gate_proj),
            (LayerProjection::Up, up_proj),
            (LayerProjection::Down, down_proj),
        ]
    }

    /// The slot of projection `kind`, to read, wrap or replace.
    pub fn projection_mut(&mut self, kind: LayerProjection) -> &mut Box<dyn Projection> {
        let [q, k, v, o, gate, up, down] = self.projections_mut();
        match kind {
            LayerProjection::Q => q.1,
            LayerProjection::K => k.1,
            LayerProjection::V => v.1,
            LayerProjection::O => o.1,
            LayerProjection::Gate => gate.1,
            LayerProjection::Up => up.1,
            LayerProjection::Down => down.1,
        }
    }
}

/// Where each sequence of a packed batch lies and where its positions start.
#[derive(Debug, Clone)]
pub struct Packing {
    /// (first token row, length, first position) per sequence.
    pub(super) spans: Vec<(usize, usize, usize)>,
    /// RoPE cos and sin rows of every token's position, gathered once per batch
    /// for all layers, `(tokens, head_dim/2)`.
    pub(super) rope_cos: Tensor,
    pub(super) rope_sin: Tensor,
    /// Sequence 0 is a prefix shared by every other sequence: they attend to its
    /// keys before their own, and their positions continue it.
    pub(super) shared_prefix: bool,
}

impl Packing {
    /// The token rows `(start, len)` that sequence `si` attends to before its own:
    /// the shared prefix, for every sequence but the prefix itself.
    pub(super) fn prefix_of(&self, si: usize) -> Option<(usize, usize)> {
        (self.shared_prefix && si > 0).then(|| (self.spans[0].0, self.spans[0].1))
    }

    /// The rows of `t` `(tokens, heads, head_dim)` that sequence `si` attends to,
    /// the shared prefix's and then its own, as `(heads, keys, head_dim)`.
    pub(super) fn attended(&self, t: &Tensor, si: usize) -> candle_core::Result<Tensor> {
        let (start, len, _) = self.spans[si];
        let own = t.narrow(0, start, len)?;
        let rows = match self.prefix_of(si) {
            Some((p_start, p_len)) => Tensor::cat(&[&t.narrow(0, p_start, p_len)?, &own], 0)?,
            None => own,
        };
        rows.transpose(0, 1)?.contiguous()
    }
}

/// The whole model: embeddings, decoder layers, final norm, LM head.
#[derive(Debug)]
pub struct Transformer {
    config: ModelConfig,
    embed_tokens: Tensor,
    /// The decoder layers, in order.
    pub layers: Vec<DecoderLayer>,
    pub(super) norm: RmsNorm,
    /// The LM head (the embedding matrix when tied).
    pub lm_head: Box<dyn Projection>,
    rope: Rope,
    dtype: DType,
    device: Device,
}

impl Transformer {
    /// Builds the model from checkpoint tensors under `vb` (HF names), creating every
    /// projection through `linear`.
    pub fn load(config: &ModelConfig, vb: VarBuilder, linear: &dyn LinearLoader) -> Result<Self> {
        config.validate().map_err(Error::msg)?;
        let (h, hd) = (config.hidden_size, config.head_dim());
        let (nh, nkv) = (config.num_attention_heads, config.num_kv_heads());
        let vb_m = vb.pp("model");
        let embed_tokens =
            vb_m.pp("embed_tokens").set_dtype(linear.table_dtype(vb.dtype())).get((config.vocab_size, h), "weight")?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let vb_l = vb_m.pp(format!("layers.{i}"));
            let proj = |kind: LayerProjection| {
                let (o_dim, i_dim) = kind.shape(config);
                linear.load(vb_l.pp(kind.module()), &kind.in_layer(i), i_dim, o_dim, kind.has_bias(config))
            };
            let self_attn = Attention {
                q_proj: proj(LayerProjection::Q)?,
                k_proj: proj(LayerProjection::K)?,
                v_proj: proj(LayerProjection::V)?,
                o_proj: proj(LayerProjection::O)?,
                num_heads: nh,
                num_kv_heads: nkv,
                head_dim: hd,
            };
            let mlp = Mlp {
                gate_proj: proj(LayerProjection::Gate)?,
                up_proj: proj(LayerProjection::Up)?,
                down_proj: proj(LayerProjection::Down)?,
            };
            layers.push(DecoderLayer {
                self_attn,
                mlp,
                input_layernorm: RmsNorm::load(vb_l.pp("input_layernorm"), h, config.rms_norm_eps)?,
                post_attention_layernorm: RmsNorm::load(vb_l.pp("post_attention_layernorm"), h, config.rms_norm_eps)?,
            });
        }
        let norm = RmsNorm::load(vb_m.pp("norm"), h, config.rms_norm_eps)?;
        let lm_head: Box<dyn Projection> = if config.tie_word_embeddings {
            linear.tied_head(&embed_tokens)?
        } else {
            linear.load(vb.pp("lm_head"), "lm_head", h, config.vocab_size, false)?
        };
        let rope = Rope::new(config, vb.dtype(), vb.device())?;
        Ok(Transformer {
            config: config.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            rope,
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The compute dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Every per-layer projection by its HF name (`model.layers.{i}.self_attn.q_proj`),
    /// to wrap (LoRA) or replace (quantization) in place.
    pub fn projections_mut(&mut self) -> Vec<(String, &mut Box<dyn Projection>)> {
        let mut out = Vec::with_capacity(self.layers.len() * LayerProjection::ALL.len());
        for (i, layer) in self.layers.iter_mut().enumerate() {
            out.extend(layer.projections_mut().map(|(kind, slot)| (kind.in_layer(i), slot)));
        }
        out
    }

    /// Bytes of weights one decoded token reads: every projection and the LM head
    /// (norms and the one embedding row aside); the bound decoding works against.
    pub fn weight_bytes_per_token(&self) -> usize {
        let layers = self.layers.iter().flat_map(|l| {
            let (a, m) = (&l.self_attn, &l.mlp);
            [&a.q_proj, &a.k_proj, &a.v_proj, &a.o_proj, &m.gate_proj, &m.up_proj, &m.down_proj]
        });
        layers
            .chain(std::iter::once(&self.lm_head))
            .map(|p| p.stored_bytes().unwrap_or(p.in_features() * p.out_features() * self.dtype.size_in_bytes()))
            .sum()
    }

    /// A fresh, empty KV cache for one sequence.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.layers.len())
    }

    /// Runs a packed batch.
    ///
    /// `tokens` holds the new tokens of every sequence back to back; `seq_lens[i]`
    /// says how many belong to sequence `i`. With `caches`, sequence `i` continues
    /// from `caches[i]` (its positions start at the cache length) and its keys and
    /// values are appended; without, every sequence starts at position 0.
    /// Returns logits as `(tokens, vocab)` or `(sequences, vocab)` (see [`LogitsAt`]), in f32.
    ///
    /// The pass runs on a rayon worker thread: every kernel it starts (hundreds per
    /// decoded token) is then split by work stealing within the pool instead of being
    /// handed over from an outside thread that sleeps until it returns, which cost a
    /// third of single-token decode time (`stylevn generate`, 2 threads).
    pub fn forward(
        &self,
        tokens: &[u32],
        seq_lens: &[usize],
        caches: Option<&mut [KvCache]>,
        mode: Mode,
        at: LogitsAt,
    ) -> Result<Tensor> {
        rayon::scope(|_| self.forward_in_pool(tokens, seq_lens, caches, mode, at))
    }

    fn forward_in_pool(
        &self,
        tokens: &[u32],
        seq_lens: &[usize],
        mut caches: Option<&mut [KvCache]>,
        mode: Mode,
        at: LogitsAt,
    ) -> Result<Tensor> {
        let total: usize = seq_lens.iter().sum();
        if total != tokens.len() || seq_lens.contains(&0) {
            return Err(Error::msg(format!(
                "packed batch: {} tokens but sequence lengths {:?} (each must be non-zero)",
                tokens.len(),
                seq_lens
            )));
        }
        if let Some(c) = caches.as_deref() {
            if c.len() != seq_lens.len() {
                return Err(Error::msg(format!("{} caches for {} sequences", c.len(), seq_lens.len())));
            }
        }
        let packing = self.packing(seq_lens, caches.as_deref())?;
        let mut x = self.embed(tokens)?;
        for li in 0..self.layers.len() {
            x = self.layer_forward(li, &x, &packing, caches.as_deref_mut(), mode)?;
        }
        let x = match at {
            LogitsAt::All => x,
            LogitsAt::Last => {
                let last: Vec<u32> = packing.spans.iter().map(|(s, l, _)| (s + l - 1) as u32).collect();
                x.index_select(&Tensor::new(last.as_slice(), &self.device)?, 0)?
            }
        };
        self.head(&x, mode)
    }

    /// The embeddings of `tokens`, `(tokens, hidden)`: the input of layer 0.
    pub fn embed(&self, tokens: &[u32]) -> Result<Tensor> {
        Ok(self.embed_tokens.index_select(&Tensor::new(tokens, &self.device)?, 0)?.to_dtype(self.dtype)?)
    }

    /// Decoder layer `li` on hidden states `x` of a packed batch (see [`Transformer::packing`]).
    /// Training runs it layer by layer to recompute activations in backward.
    pub fn layer_forward(
        &self,
        li: usize,
        x: &Tensor,
        packing: &Packing,
        caches: Option<&mut [KvCache]>,
        mode: Mode,
    ) -> Result<Tensor> {
        let layer = &self.layers[li];
        let h = layer.input_layernorm.forward(x, mode)?;
        let h = layer.self_attn.forward(&h, li, packing, caches, mode)?;
        let x1 = (x + h)?;
        let h = layer.post_attention_layernorm.forward(&x1, mode)?;
        let h = layer.mlp.forward(&h)?;
        Ok((x1 + h)?)
    }

    /// Final norm and LM head: logits (f32) of the hidden states `x`, `(rows, vocab)`.
    pub fn head(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let x = self.norm.forward(x, mode)?;
        Ok(self.lm_head.forward(&x)?.to_dtype(DType::F32)?)
    }

    /// Logits `(vocab,)` of the last of `tokens`, continuing `cache`.
    pub fn forward_next(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let logits =
            self.forward(tokens, &[tokens.len()], Some(std::slice::from_mut(cache)), Mode::Infer, LogitsAt::Last)?;
        Ok(logits.i(0)?)
    }

    /// Where each sequence of a packed batch lies; positions continue `caches` when given.
    pub fn packing(&self, seq_lens: &[usize], caches: Option<&[KvCache]>) -> Result<Packing> {
        let offsets = (0..seq_lens.len()).map(|i| caches.map(|c| c[i].len()).unwrap_or(0));
        self.pack(seq_lens.iter().copied().zip(offsets), false)
    }

    /// A packed batch of sequences that share their first `prefix` tokens, stored
    /// once: the prefix's rows first, then each sequence's rest (`suffix_lens`),
    /// whose positions start at `prefix` and whose attention sees the prefix. The
    /// outputs equal those of the full sequences packed side by side; training
    /// computes a long common system prompt once per micro-batch instead of per row.
    pub fn packing_shared_prefix(&self, prefix: usize, suffix_lens: &[usize]) -> Result<Packing> {
        if prefix == 0 || suffix_lens.contains(&0) {
            return Err(Error::msg(format!("shared prefix of {prefix} tokens with suffixes {suffix_lens:?}")));
        }
        let suffixes = suffix_lens.iter().map(|&len| (len, prefix));
        self.pack(std::iter::once((prefix, 0)).chain(suffixes), true)
    }

    /// Spans and RoPE rows of sequences given as (length, first position), back to back.
    fn pack(&self, seqs: impl Iterator<Item = (usize, usize)>, shared_prefix: bool) -> Result<Packing> {
        let (mut spans, mut positions, mut start) = (Vec::new(), Vec::new(), 0);
        for (len, offset) in seqs {
            if offset + len > self.config.max_position_embeddings {
                return Err(Error::msg(format!(
                    "sequence of {} tokens exceeds max_position_embeddings {}",
                    offset + len,
                    self.config.max_position_embeddings
                )));
            }
            spans.push((start, len, offset));
            positions.extend((offset..offset + len).map(|p| p as u32));
            start += len;
        }
        let (rope_cos, rope_sin) = self.rope.rows(&positions, &self.device)?;
        Ok(Packing { spans, rope_cos, rope_sin, shared_prefix })
    }
}

impl Attention {
    fn forward(
        &self,
        x: &Tensor,
        layer: usize,
        packing: &Packing,
        mut caches: Option<&mut [KvCache]>,
        mode: Mode,
    ) -> Result<Tensor> {
        let n = x.dim(0)?;
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let q = self.q_proj.forward(x)?.reshape((n, nh, hd))?;
        let k = self.k_proj.forward(x)?.reshape((n, nkv, hd))?;
        let v = self.v_proj.forward(x)?.reshape((n, nkv, hd))?;
        let q = Rope::apply(&q, &packing.rope_cos, &packing.rope_sin, mode)?;
        let k = Rope::apply(&k, &packing.rope_cos, &packing.rope_sin, mode)?;
        let scale = 1.0 / (hd as f64).sqrt();
        let mut outputs = Vec::with_capacity(packing.spans.len());
        for (si, &(start, len, offset)) in packing.spans.iter().enumerate() {
            // (heads, t, head_dim) per sequence.
            let q_s = q.narrow(0, start, len)?.transpose(0, 1)?;
            let (k_s, v_s) = (packing.attended(&k, si)?, packing.attended(&v, si)?);
            let (k_all, v_all) = match caches.as_deref_mut() {
                Some(c) => c[si].append(layer, &k_s, &v_s)?,
                None => (k_s, v_s),
            };
            if len == 1 && mode == Mode::Infer {
                if let Some(out) =
                    super::decode_attention::decode_attention(&q_s.squeeze(1)?, &k_all, &v_all, scale as f32)?
                {
                    outputs.push(out);
                    continue;
                }
            }
            let keys = k_all.dim(1)?;
            // GQA without copying keys: query heads that share a kv head are stacked
            // along the rows, `(kv_heads, group * t, head_dim)`.
            let group = nh / nkv;
            let q_g = q_s.contiguous()?.reshape((nkv, group * len, hd))?;
            let scores = (q_g.matmul(&k_all.t()?)? * scale)?.to_dtype(DType::F32)?;
            let scores = if len > 1 {
                let mask = causal_mask(len, offset, keys, scores.device())?;
                scores.reshape((nkv, group, len, keys))?.broadcast_add(&mask)?.reshape((nkv, group * len, keys))?
            } else {
                scores
            };
            let probs = match mode {
                Mode::Infer => candle_nn::ops::softmax_last_dim(&scores)?,
                Mode::Train => candle_nn::ops::softmax(&scores, D::Minus1)?,
            };
            let out = probs.to_dtype(v_all.dtype())?.matmul(&v_all)?; // (kv, group*t, hd)
            let out = out.reshape((nh, len, hd))?.transpose(0, 1)?.reshape((len, nh * hd))?;
            outputs.push(out);
        }
        let out = Tensor::cat(&outputs, 0)?;
        Ok(self.o_proj.forward(&out)?)
    }
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = self.gate_proj.forward(x)?.silu()?;
        let up = self.up_proj.forward(x)?;
        Ok(self.down_proj.forward(&(gate * up)?)?)
    }
}

/// Additive causal mask `(t, keys)`: query `j` (at position `offset + j`) sees keys `0..=offset + j`.
fn causal_mask(t: usize, offset: usize, keys: usize, device: &Device) -> candle_core::Result<Tensor> {
    let mask: Vec<f32> =
        (0..t).flat_map(|j| (0..keys).map(move |s| if s > offset + j { f32::NEG_INFINITY } else { 0.0 })).collect();
    Tensor::from_vec(mask, (t, keys), device)
}
