//! Tiny deterministic random models for tests and benchmarks.
//!
//! Every weight is a pure function of its name and index, so the Python reference
//! (`scripts/reference/tiny_models.py`) rebuilds bit-identical weights without any
//! file changing hands:
//!
//! ```text
//! seed(name)  = FNV-1a 64 of the UTF-8 name
//! u(name, i)  = (splitmix64(seed(name) + i) >> 40) / 2^24 * 2 - 1      in [-1, 1)
//! weight[i]   = 0.08 * u      norm[i] = 1 + 0.1 * u      bias[i] = 0.05 * u
//! embed[i]    = 0.5 * u
//! ```
//! with wrapping 64-bit arithmetic and `i` the row-major element index.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::json;

pub use crate::seeded::uniform;

use super::config::ModelConfig;
use super::projections::LayerProjection;
use crate::atomic::write_atomic;
use crate::{Error, Result};

/// The shapes of a tiny model.
#[derive(Debug, Clone, Copy)]
pub struct TinySpec {
    /// Fixture name (directory name under the output root).
    pub name: &'static str,
    /// `qwen2` or `llama`.
    pub model_type: &'static str,
    /// Whether `lm_head` is the embedding.
    pub tied: bool,
    /// Vocabulary size.
    pub vocab: usize,
    /// Hidden size.
    pub hidden: usize,
    /// MLP width.
    pub intermediate: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// RoPE base.
    pub rope_theta: f64,
    /// RMSNorm epsilon.
    pub eps: f64,
}

/// The four fixtures: Qwen2 and Llama, tied and untied, all with GQA.
pub const TINY_MODELS: [TinySpec; 4] = [
    TinySpec {
        name: "tiny-qwen2",
        model_type: "qwen2",
        tied: false,
        vocab: 160,
        hidden: 64,
        intermediate: 128,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        rope_theta: 1_000_000.0,
        eps: 1e-6,
    },
    TinySpec {
        name: "tiny-qwen2-tied",
        model_type: "qwen2",
        tied: true,
        vocab: 160,
        hidden: 64,
        intermediate: 96,
        layers: 3,
        heads: 8,
        kv_heads: 2,
        rope_theta: 10_000.0,
        eps: 1e-6,
    },
    TinySpec {
        name: "tiny-llama",
        model_type: "llama",
        tied: true,
        vocab: 160,
        hidden: 48,
        intermediate: 96,
        layers: 2,
        heads: 3,
        kv_heads: 1,
        rope_theta: 100_000.0,
        eps: 1e-5,
    },
    TinySpec {
        name: "tiny-llama-untied",
        model_type: "llama",
        tied: false,
        vocab: 160,
        hidden: 64,
        intermediate: 160,
        layers: 2,
        heads: 4,
        kv_heads: 4,
        rope_theta: 10_000.0,
        eps: 1e-5,
    },
];

impl TinySpec {
    /// The HF `config.json` of this fixture.
    pub fn config_json(&self) -> serde_json::Value {
        let arch = if self.model_type == "qwen2" { "Qwen2ForCausalLM" } else { "LlamaForCausalLM" };
        json!({
            "architectures": [arch],
            "model_type": self.model_type,
            "vocab_size": self.vocab,
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "rms_norm_eps": self.eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": 256,
            "tie_word_embeddings": self.tied,
            "hidden_act": "silu",
            "bos_token_id": 1,
            "eos_token_id": 2,
            "torch_dtype": "float32",
        })
    }

    /// Every tensor of the fixture, by HF name.
    pub fn tensors(&self) -> Result<HashMap<String, Tensor>> {
        let dev = Device::Cpu;
        let config: ModelConfig =
            serde_json::from_value(self.config_json()).map_err(|e| Error::msg(format!("{}: {e}", self.name)))?;
        let mut out = HashMap::new();
        let mut put = |name: String, shape: Vec<usize>, scale: f32, shift: f32| -> Result<()> {
            let n = shape.iter().product();
            let data: Vec<f32> = uniform(&name, n).into_iter().map(|u| shift + scale * u).collect();
            out.insert(name, Tensor::from_vec(data, shape, &dev)?);
            Ok(())
        };
        put("model.embed_tokens.weight".into(), vec![self.vocab, self.hidden], 0.5, 0.0)?;
        for l in 0..self.layers {
            let p = format!("model.layers.{l}");
            for kind in LayerProjection::ALL {
                let (o, i) = kind.shape(&config);
                put(format!("{}.weight", kind.in_layer(l)), vec![o, i], 0.08, 0.0)?;
                if kind.has_bias(&config) {
                    put(format!("{}.bias", kind.in_layer(l)), vec![o], 0.05, 0.0)?;
                }
            }
            put(format!("{p}.input_layernorm.weight"), vec![self.hidden], 0.1, 1.0)?;
            put(format!("{p}.post_attention_layernorm.weight"), vec![self.hidden], 0.1, 1.0)?;
        }
        put("model.norm.weight".into(), vec![self.hidden], 0.1, 1.0)?;
        if !self.tied {
            put("lm_head.weight".into(), vec![self.vocab, self.hidden], 0.08, 0.0)?;
        }
        Ok(out)
    }

    /// Writes the fixture as an HF directory (`config.json`, `model.safetensors`).
    pub fn write_dir(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let config = serde_json::to_vec_pretty(&self.config_json()).map_err(|e| Error::msg(e.to_string()))?;
        write_atomic(&dir.join("config.json"), &config)?;
        let tensors = self.tensors()?;
        let path = dir.join("model.safetensors");
        let meta = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
        let bytes = safetensors::serialize(tensors.iter().map(|(k, v)| (k.clone(), v)), meta)
            .map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
        write_atomic(&path, &bytes)
    }
}
