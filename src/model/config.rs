//! The model's `config.json`, as Hugging Face writes it for Qwen2/Qwen2.5
//! (`model_type: qwen2`) and the Llama family (`llama`, `mistral`: SmolLM2,
//! TinyLlama, Vistral). Field names are HF's, so the file deserializes directly.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The two architectures stylevn runs. They differ only in details the
/// transformer reads from here: Qwen2 has q/k/v biases, Llama may have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Qwen2 / Qwen2.5 (q, k and v projections carry a bias).
    Qwen2,
    /// Llama, Mistral and their fine-tunes (biases only with `attention_bias`).
    Llama,
}

/// A token id field that HF writes either as one id or as a list of ids.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum TokenIds {
    /// One id.
    One(u32),
    /// Several ids (any of them ends generation, for `eos_token_id`).
    Many(Vec<u32>),
}

impl TokenIds {
    /// The ids as a list.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// The fields of `config.json` the transformer needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelConfig {
    /// `qwen2`, `llama` or `mistral`.
    pub model_type: String,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (GQA); defaults to the query heads.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base frequency.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// Longest sequence the model was trained for.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// Whether `lm_head` shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Llama: whether q/k/v/o carry biases (Qwen2 always has q/k/v biases).
    #[serde(default)]
    pub attention_bias: bool,
    /// Llama: whether the MLP projections carry biases.
    #[serde(default)]
    pub mlp_bias: bool,
    /// Activation of the MLP; only `silu` is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// RoPE scaling; only `null` is supported.
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// Beginning-of-sequence token id(s).
    #[serde(default)]
    pub bos_token_id: Option<TokenIds>,
    /// End-of-sequence token id(s).
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
}

fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_max_positions() -> usize {
    4096
}
fn default_act() -> String {
    "silu".into()
}

impl ModelConfig {
    /// Reads and validates a `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: ModelConfig = serde_json::from_str(&text)
            .map_err(|e| Error::bad_input(path, Some(e.line()), format!("not a model config.json: {e}")))?;
        cfg.validate().map_err(|m| Error::bad_input(path, None, m))?;
        Ok(cfg)
    }

    /// Checks that stylevn can run this configuration.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !matches!(self.model_type.as_str(), "qwen2" | "llama" | "mistral") {
            return Err(format!(
                "model_type `{}` is not supported (supported: qwen2, llama, mistral)",
                self.model_type
            ));
        }
        if self.hidden_act != "silu" {
            return Err(format!("hidden_act `{}` is not supported (only silu)", self.hidden_act));
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err("rope_scaling is not supported (only plain RoPE)".into());
        }
        if !self.num_attention_heads.is_multiple_of(self.num_kv_heads()) {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads,
                self.num_kv_heads()
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(format!("head_dim {} must be even for RoPE", self.head_dim()));
        }
        Ok(())
    }

    /// The architecture family.
    pub fn arch(&self) -> Arch {
        if self.model_type == "qwen2" {
            Arch::Qwen2
        } else {
            Arch::Llama
        }
    }

    /// Number of key/value heads.
    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Whether q/k/v carry biases.
    pub fn qkv_bias(&self) -> bool {
        self.arch() == Arch::Qwen2 || self.attention_bias
    }

    /// Whether o_proj carries a bias.
    pub fn o_bias(&self) -> bool {
        self.arch() == Arch::Llama && self.attention_bias
    }

    /// End-of-sequence ids from the config (generation_config may add more).
    pub fn eos_ids(&self) -> Vec<u32> {
        self.eos_token_id.as_ref().map(TokenIds::to_vec).unwrap_or_default()
    }
}
