//! Choosing the next token: greedy, or sampling with temperature, top-k and top-p,
//! after an optional repetition penalty (as transformers applies it: over every
//! token of the prompt and the output, logits > 0 divided, < 0 multiplied).

use candle_core::Tensor;
use candle_transformers::generation::{LogitsProcessor, Sampling};
use serde::{Deserialize, Serialize};

use crate::Result;

/// Sampling settings of one generation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f64,
    /// Nucleus sampling mass (1.0 disables).
    pub top_p: f64,
    /// Keep only the k most likely tokens (0 disables).
    pub top_k: usize,
    /// Repetition penalty (1.0 disables).
    pub repetition_penalty: f32,
    /// RNG seed, for reproducible sampling.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams { temperature: 0.0, top_p: 1.0, top_k: 0, repetition_penalty: 1.0, seed: 42 }
    }
}

/// Picks next tokens according to [`SamplingParams`].
pub struct Sampler {
    processor: LogitsProcessor,
    repetition_penalty: f32,
}

impl Sampler {
    /// A sampler for `params`.
    pub fn new(params: &SamplingParams) -> Self {
        let t = params.temperature;
        let sampling = if t <= 0.0 {
            Sampling::ArgMax
        } else {
            match (params.top_k > 0, params.top_p < 1.0) {
                (false, false) => Sampling::All { temperature: t },
                (true, false) => Sampling::TopK { k: params.top_k, temperature: t },
                (false, true) => Sampling::TopP { p: params.top_p, temperature: t },
                (true, true) => Sampling::TopKThenTopP { k: params.top_k, p: params.top_p, temperature: t },
            }
        };
        Sampler {
            processor: LogitsProcessor::from_sampling(params.seed, sampling),
            repetition_penalty: params.repetition_penalty,
        }
    }

    /// The next token given `logits` (`(vocab,)`, f32) and every token so far.
    pub fn next(&mut self, logits: &Tensor, context: &[u32]) -> Result<u32> {
        let logits = if self.repetition_penalty != 1.0 {
            candle_transformers::utils::apply_repeat_penalty(logits, self.repetition_penalty, context)?
        } else {
            logits.clone()
        };
        Ok(self.processor.sample(&logits)?)
    }
}
