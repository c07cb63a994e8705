//! `configs/generate.toml`: the settings of `stylevn generate`.

use serde::{Deserialize, Serialize};

use super::SamplingParams;
use crate::model::linear::ComputeDtype;
use crate::quant::LmHead;

/// The settings of `stylevn generate`; its flags of the same names override them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateConfig {
    /// Sampling temperature; 0 is greedy.
    pub temperature: f64,
    /// Nucleus sampling mass; 1 disables.
    pub top_p: f64,
    /// Sample among the k most likely tokens; 0 disables.
    pub top_k: usize,
    /// Repetition penalty; 1 disables.
    pub repetition_penalty: f32,
    /// Random seed for sampling.
    pub seed: u64,
    /// Strings that end generation (not printed).
    pub stop: Vec<String>,
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// Compute dtype: `f32`, `f16` or `bf16` (CPU matmul supports f32 and f16).
    pub dtype: ComputeDtype,
    /// How a 4-bit checkpoint's LM head is held: `int8`, `int4` or `fp16`.
    pub lm_head: LmHead,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            temperature: 0.7,
            top_p: 0.9,
            top_k: 0,
            repetition_penalty: 1.0,
            seed: 42,
            stop: Vec::new(),
            max_new_tokens: 256,
            dtype: ComputeDtype::F32,
            lm_head: LmHead::default(),
        }
    }
}

impl GenerateConfig {
    /// The sampling settings.
    pub fn sampling(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            repetition_penalty: self.repetition_penalty,
            seed: self.seed,
        }
    }
}
