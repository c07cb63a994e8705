//! Text generation with the engine: prefill the prompt in one batched forward,
//! then decode token by token with the KV cache, streaming text pieces out.

mod chat_model;
pub mod config;
mod sampler;
mod stop;
mod text_stream;

use std::time::Instant;

use tokenizers::Tokenizer;

pub use chat_model::ChatModel;
pub use config::GenerateConfig;
pub use sampler::{Sampler, SamplingParams};
pub use stop::{StopMatcher, StopStep};
pub use text_stream::TextStream;

use crate::model::Transformer;
use crate::Result;

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-sequence token or a stop string.
    Stop,
    /// `max_new_tokens` was reached.
    Length,
}

/// Limits and stopping rules of one generation.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Sampling settings.
    pub sampling: SamplingParams,
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// Token ids that end generation (not part of the output).
    pub eos_ids: Vec<u32>,
    /// Strings that end generation (not part of the output).
    pub stop: Vec<String>,
}

/// The result of one generation, with timings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Generation {
    /// The generated text (stop strings and EOS excluded).
    pub text: String,
    /// The generated token ids (EOS excluded).
    pub tokens: Vec<u32>,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Seconds spent on the prompt (until the first token's logits).
    pub prefill_secs: f64,
    /// Seconds spent decoding the rest.
    pub decode_secs: f64,
}

impl Generation {
    /// Prompt tokens per second.
    pub fn prefill_tokens_per_sec(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill_secs.max(1e-9)
    }
    /// Generated tokens per second after the first (each needs one decode step).
    pub fn decode_tokens_per_sec(&self) -> f64 {
        self.tokens.len().saturating_sub(1) as f64 / self.decode_secs.max(1e-9)
    }
}

/// Generates from `prompt` (token ids), calling `on_text` with each final text piece.
pub fn generate(
    model: &Transformer,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    options: &GenerateOptions,
    on_text: &mut dyn FnMut(&str),
) -> Result<Generation> {
    if prompt.is_empty() {
        return Err(crate::Error::msg("the prompt is empty"));
    }
    let mut cache = model.new_cache();
    let mut sampler = Sampler::new(&options.sampling);
    let mut stream = TextStream::new(tokenizer);
    let mut stops = StopMatcher::new(&options.stop);
    let mut context = prompt.to_vec();
    let mut generated = Vec::new();
    let mut text = String::new();
    let mut finish = FinishReason::Length;

    let start = Instant::now();
    let mut logits = model.forward_next(prompt, &mut cache)?;
    let prefill_secs = start.elapsed().as_secs_f64();
    let decode_start = Instant::now();
    while generated.len() < options.max_new_tokens {
        let next = sampler.next(&logits, &context)?;
        if options.eos_ids.contains(&next) {
            finish = FinishReason::Stop;
            break;
        }
        generated.push(next);
        context.push(next);
        if let Some(piece) = stream.push(next)? {
            match stops.push(&piece) {
                StopStep::Continue(out) => {
                    on_text(&out);
                    text.push_str(&out);
                }
                StopStep::Stop(out) => {
                    on_text(&out);
                    text.push_str(&out);
                    finish = FinishReason::Stop;
                    break;
                }
            }
        }
        if generated.len() < options.max_new_tokens {
            logits = model.forward_next(&[next], &mut cache)?;
        }
    }
    // Text held back as a possible stop-string start is final now.
    let rest = stops.flush();
    if !rest.is_empty() {
        on_text(&rest);
        text.push_str(&rest);
    }
    Ok(Generation {
        text,
        tokens: generated,
        prompt_tokens: prompt.len(),
        finish_reason: finish,
        prefill_secs,
        decode_secs: decode_start.elapsed().as_secs_f64(),
    })
}
