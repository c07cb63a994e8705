//! BERT and XLM-RoBERTa encoders run on packed sequences with bf16 matrix products
//! ([`super::bf16_gemm`]): the texts of a batch are laid end to end (no padding), the
//! linear layers run on all their tokens at once, attention runs per text and head.
//! Everything but the products (embeddings, layer norm, softmax, GELU, pooling) stays
//! in f32. Same architecture as HF's `BertModel` / `XLMRobertaModel` (absolute
//! positions, post-norm, erf GELU); token types all 0.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use rayon::prelude::*;
use serde_json::Value;

use super::vector_math::{add_layer_norm, gelu, softmax};
use super::Pooling;
use crate::model::bf16_gemm::{matmul, PackedB};
use crate::{Error, Result};

/// Tokens per parallel task of the element-wise passes.
const ROWS_PER_TASK: usize = 64;

/// Layer-norm weight and bias.
struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// One encoder layer, its query, key and value projections fused into one product.
struct Layer {
    qkv: PackedB,
    qkv_bias: Vec<f32>,
    attn_out: PackedB,
    attn_out_bias: Vec<f32>,
    attn_norm: Norm,
    up: PackedB,
    up_bias: Vec<f32>,
    down: PackedB,
    down_bias: Vec<f32>,
    out_norm: Norm,
}

/// A BERT / XLM-RoBERTa backbone with its weights packed for the bf16 kernel.
pub(super) struct PackedBert {
    word: Vec<f32>,
    position: Vec<f32>,
    /// Token type 0's embedding.
    token_type: Vec<f32>,
    embed_norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    /// Position id of a text's first token: 0 for BERT, `pad_token_id + 1` for XLM-RoBERTa.
    first_position: usize,
    eps: f32,
}

impl PackedBert {
    /// Packs the weights in `tensors` (HF names, with or without a `bert.` / `roberta.`
    /// prefix), or `None` when `config` asks for something this forward does not do
    /// (another activation or position scheme): the caller then runs candle's model.
    /// `first_position` as in [`PackedBert::first_position`].
    pub fn load(
        tensors: &HashMap<String, Tensor>,
        config: &Value,
        config_path: &Path,
        first_position: usize,
    ) -> Result<Option<Self>> {
        let act = config["hidden_act"].as_str().unwrap_or("gelu");
        let positions = config["position_embedding_type"].as_str().unwrap_or("absolute");
        if act != "gelu" || positions != "absolute" {
            return Ok(None);
        }
        let field = |name: &str| {
            config[name].as_u64().map(|v| v as usize).ok_or_else(|| {
                Error::bad_input(config_path, None, format!("no {name} (a whole number) in the encoder's config"))
            })
        };
        let (hidden, heads, layers) =
            (field("hidden_size")?, field("num_attention_heads")?, field("num_hidden_layers")?);
        if heads == 0 || hidden % heads != 0 {
            return Err(Error::bad_input(
                config_path,
                None,
                format!("hidden_size {hidden} is not a multiple of {heads} heads"),
            ));
        }
        let eps = config["layer_norm_eps"].as_f64().unwrap_or(1e-12) as f32;
        let prefix = ["bert.", "roberta.", ""]
            .into_iter()
            .find(|p| tensors.contains_key(&format!("{p}embeddings.word_embeddings.weight")))
            .ok_or_else(|| Error::msg(format!("{}: no embeddings.word_embeddings.weight", config_path.display())))?;
        let get = |name: &str| -> Result<(Vec<f32>, Vec<usize>)> {
            let full = format!("{prefix}{name}");
            let t = tensors.get(&full).ok_or_else(|| Error::msg(format!("the encoder has no weight {full}")))?;
            Ok((t.flatten_all()?.to_vec1::<f32>()?, t.dims().to_vec()))
        };
        let vector = |name: &str, len: usize| -> Result<Vec<f32>> {
            let (v, _) = get(name)?;
            if v.len() != len {
                return Err(Error::msg(format!("{prefix}{name}: {} values, expected {len}", v.len())));
            }
            Ok(v)
        };
        let norm = |name: &str| -> Result<Norm> {
            // Old checkpoints name them gamma / beta.
            let pick = |a: &str, b: &str| {
                let first = format!("{name}.{a}");
                if tensors.contains_key(&format!("{prefix}{first}")) {
                    vector(&first, hidden)
                } else {
                    vector(&format!("{name}.{b}"), hidden)
                }
            };
            Ok(Norm { weight: pick("weight", "gamma")?, bias: pick("bias", "beta")? })
        };
        let linear = |names: &[&str]| -> Result<(PackedB, Vec<f32>)> {
            let (mut w, mut b, mut out_features, mut in_features) = (Vec::new(), Vec::new(), 0, 0);
            for name in names {
                let (weight, dims) = get(&format!("{name}.weight"))?;
                let &[out, inp] = dims.as_slice() else {
                    return Err(Error::msg(format!("{prefix}{name}.weight: shape {dims:?} is not (out, in)")));
                };
                // Fused projections (query, key, value) must read the same input.
                if in_features != 0 && inp != in_features {
                    return Err(Error::msg(format!("{prefix}{name}.weight: {inp} inputs, the others {in_features}")));
                }
                w.extend(weight);
                b.extend(vector(&format!("{name}.bias"), out)?);
                (out_features, in_features) = (out_features + out, inp);
            }
            Ok((PackedB::from_columns(&w, in_features, in_features, out_features), b))
        };
        let (word, word_dims) = get("embeddings.word_embeddings.weight")?;
        let (position, position_dims) = get("embeddings.position_embeddings.weight")?;
        if word_dims.get(1) != Some(&hidden) || position_dims.get(1) != Some(&hidden) {
            return Err(Error::msg(format!("{prefix}embeddings: width is not hidden_size {hidden}")));
        }
        let (token_types, _) = get("embeddings.token_type_embeddings.weight")?;
        // Layers are packed in parallel (e5-small's 12 take 40 ms on one core).
        let pack_layer = |i: usize| -> Result<Layer> {
            let l = format!("encoder.layer.{i}");
            let (qkv, qkv_bias) = linear(&[
                &format!("{l}.attention.self.query"),
                &format!("{l}.attention.self.key"),
                &format!("{l}.attention.self.value"),
            ])?;
            let (attn_out, attn_out_bias) = linear(&[&format!("{l}.attention.output.dense")])?;
            let (up, up_bias) = linear(&[&format!("{l}.intermediate.dense")])?;
            let (down, down_bias) = linear(&[&format!("{l}.output.dense")])?;
            if qkv.n() != 3 * hidden || down.n() != hidden || up.n() != down.k() {
                return Err(Error::msg(format!("{prefix}{l}: projection shapes do not fit hidden_size {hidden}")));
            }
            Ok(Layer {
                qkv,
                qkv_bias,
                attn_out,
                attn_out_bias,
                attn_norm: norm(&format!("{l}.attention.output.LayerNorm"))?,
                up,
                up_bias,
                down,
                down_bias,
                out_norm: norm(&format!("{l}.output.LayerNorm"))?,
            })
        };
        let out = (0..layers).into_par_iter().map(pack_layer).collect::<Result<Vec<_>>>()?;
        Ok(Some(PackedBert {
            word,
            position,
            token_type: token_types[..hidden].to_vec(),
            embed_norm: norm("embeddings.LayerNorm")?,
            layers: out,
            hidden,
            heads,
            first_position,
            eps,
        }))
    }

    /// One pooled (not normalised) vector per text of token ids.
    pub fn embed(&self, texts: &[&[u32]], pooling: Pooling) -> Result<Vec<Vec<f32>>> {
        let h = self.hidden;
        let mut starts = Vec::with_capacity(texts.len() + 1);
        starts.push(0);
        for t in texts {
            if t.is_empty() {
                return Err(Error::msg("a text with no tokens (not even the special ones) has no embedding"));
            }
            starts.push(starts.last().copied().unwrap_or(0) + t.len());
        }
        let tokens = *starts.last().unwrap_or(&0);
        let (vocab, positions) = (self.word.len() / h, self.position.len() / h);
        let mut x = vec![0f32; tokens * h];
        for (t, ids) in texts.iter().enumerate() {
            for (i, &id) in ids.iter().enumerate() {
                let (id, pos) = (id as usize, self.first_position + i);
                if id >= vocab || pos >= positions {
                    return Err(Error::msg(format!(
                        "token {id} at position {pos} is past the encoder's {vocab} tokens or {positions} positions"
                    )));
                }
                let row = &mut x[(starts[t] + i) * h..(starts[t] + i + 1) * h];
                for (j, v) in row.iter_mut().enumerate() {
                    *v = self.word[id * h + j] + self.position[pos * h + j] + self.token_type[j];
                }
            }
        }
        self.norm_rows(&mut x, None, &self.embed_norm);
        let mut qkv = vec![0f32; tokens * 3 * h];
        let mut attn = vec![0f32; tokens * h];
        let mut up = vec![0f32; tokens * self.layers.first().map_or(0, |l| l.up.n())];
        for layer in &self.layers {
            matmul(&x, h, tokens, &layer.qkv, Some(&layer.qkv_bias), &mut qkv, 3 * h, true);
            let context = self.attention(&qkv, &starts);
            matmul(&context, h, tokens, &layer.attn_out, Some(&layer.attn_out_bias), &mut attn, h, true);
            self.norm_rows(&mut attn, Some(&x), &layer.attn_norm);
            std::mem::swap(&mut x, &mut attn);
            let width = layer.up.n();
            matmul(&x, h, tokens, &layer.up, Some(&layer.up_bias), &mut up, width, true);
            up.par_chunks_mut(ROWS_PER_TASK * width).for_each(|rows| {
                // SAFETY: a PackedBert is built only where the CPU has AVX-512 (bf16_gemm::supported).
                unsafe { gelu(rows) }
            });
            matmul(&up, width, tokens, &layer.down, Some(&layer.down_bias), &mut attn, h, true);
            self.norm_rows(&mut attn, Some(&x), &layer.out_norm);
            std::mem::swap(&mut x, &mut attn);
        }
        Ok(starts
            .windows(2)
            .map(|w| {
                let rows = &x[w[0] * h..w[1] * h];
                match pooling {
                    Pooling::Cls => rows[..h].to_vec(),
                    Pooling::Mean => {
                        let n = (w[1] - w[0]) as f32;
                        let mut mean = vec![0f32; h];
                        for row in rows.chunks_exact(h) {
                            for (m, v) in mean.iter_mut().zip(row) {
                                *m += v;
                            }
                        }
                        mean.iter_mut().for_each(|m| *m /= n);
                        mean
                    }
                }
            })
            .collect())
    }

    /// `x = layer_norm(x + residual)` row by row, in parallel.
    fn norm_rows(&self, x: &mut [f32], residual: Option<&[f32]>, norm: &Norm) {
        let chunk = ROWS_PER_TASK * self.hidden;
        x.par_chunks_mut(chunk).enumerate().for_each(|(i, rows)| {
            let res = residual.map(|r| &r[i * chunk..i * chunk + rows.len()]);
            // SAFETY: as in `embed`.
            unsafe { add_layer_norm(rows, res, &norm.weight, &norm.bias, self.eps) }
        });
    }

    /// Self-attention of each text over its own tokens, from the fused `qkv` rows
    /// (`tokens x 3 hidden`); the heads' outputs side by side (`tokens x hidden`).
    fn attention(&self, qkv: &[f32], starts: &[usize]) -> Vec<f32> {
        let (h, heads) = (self.hidden, self.heads);
        let d = h / heads;
        let scale = 1.0 / (d as f32).sqrt();
        let jobs: Vec<(usize, usize)> = (0..starts.len() - 1).flat_map(|t| (0..heads).map(move |hd| (t, hd))).collect();
        let outputs: Vec<Vec<f32>> = jobs
            .par_iter()
            .map(|&(t, hd)| {
                let (start, len) = (starts[t], starts[t + 1] - starts[t]);
                let row = |i: usize, part: usize| (start + i) * 3 * h + part * h + hd * d;
                let keys = PackedB::from_columns(&qkv[row(0, 1)..], 3 * h, d, len);
                let mut scores = vec![0f32; len * len];
                matmul(&qkv[row(0, 0)..], 3 * h, len, &keys, None, &mut scores, len, false);
                for s in scores.chunks_exact_mut(len) {
                    // SAFETY: as in `embed`.
                    unsafe { softmax(s, scale) }
                }
                let values = PackedB::from_rows(&qkv[row(0, 2)..], 3 * h, len, d);
                let mut out = vec![0f32; len * d];
                matmul(&scores, len, len, &values, None, &mut out, d, false);
                out
            })
            .collect();
        let mut context = vec![0f32; starts[starts.len() - 1] * h];
        for (&(t, hd), out) in jobs.iter().zip(&outputs) {
            for (i, row) in out.chunks_exact(d).enumerate() {
                let at = (starts[t] + i) * h + hd * d;
                context[at..at + d].copy_from_slice(row);
            }
        }
        context
    }
}
