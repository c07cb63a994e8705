//! Token-level perplexity of a model on held-out sequences: `exp(mean NLL)` over
//! every token predicted from the ones before it in its sequence (the first token of
//! each sequence is context only). Used to compare a model with its quantized copies.

use candle_core::{DType, Tensor, D};

use crate::model::{LogitsAt, Mode, Transformer};
use crate::{Error, Result};

/// Summed negative log-likelihood over the predicted tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Perplexity {
    /// Sequences scored.
    pub sequences: usize,
    /// Tokens predicted.
    pub tokens: usize,
    /// Sum of `-ln p(token | prefix)`.
    pub nll_sum: f64,
}

impl Perplexity {
    /// Mean negative log-likelihood per predicted token (nats).
    pub fn mean_nll(&self) -> f64 {
        self.nll_sum / self.tokens.max(1) as f64
    }

    /// `exp(mean NLL)`.
    pub fn perplexity(&self) -> f64 {
        self.mean_nll().exp()
    }
}

/// Negative log-likelihood of each next token of `seq` (`seq.len() - 1` values).
pub fn sequence_nll(model: &Transformer, seq: &[u32]) -> Result<Vec<f32>> {
    if seq.len() < 2 {
        return Err(Error::msg("a sequence needs at least 2 tokens to score"));
    }
    let n = seq.len() - 1;
    let logits = model.forward(&seq[..n], &[n], None, Mode::Infer, LogitsAt::All)?;
    let logp = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let targets = Tensor::new(&seq[1..], logits.device())?.unsqueeze(1)?;
    Ok(logp.gather(&targets, 1)?.squeeze(1)?.neg()?.to_vec1::<f32>()?)
}

/// Perplexity of `model` over `seqs`; `on_seq(done, total)` reports progress.
pub fn perplexity(model: &Transformer, seqs: &[Vec<u32>], on_seq: &mut dyn FnMut(usize, usize)) -> Result<Perplexity> {
    let mut out = Perplexity { sequences: 0, tokens: 0, nll_sum: 0.0 };
    for (i, seq) in seqs.iter().enumerate() {
        let nll = sequence_nll(model, seq)?;
        out.sequences += 1;
        out.tokens += nll.len();
        out.nll_sum += nll.iter().map(|&v| v as f64).sum::<f64>();
        on_seq(i + 1, seqs.len());
    }
    Ok(out)
}
