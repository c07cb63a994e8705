//! XLM-RoBERTa encoders (BGE-M3's dense head: CLS pooling, normalised): candle-transformers'
//! `XLMRobertaModel`, whose position ids start after the padding id as in HF
//! (`padding_idx + 1 + cumsum(mask)`), so padded batches match single texts.

use std::path::Path;

use candle_core::Tensor;
use candle_nn::VarBuilder;
use candle_transformers::models::xlm_roberta::{Config, XLMRobertaModel};
use serde_json::Value;

use crate::{Error, Result};

/// An XLM-RoBERTa backbone: token ids in, last hidden states out.
pub(super) struct XlmRoberta {
    model: XLMRobertaModel,
}

impl XlmRoberta {
    /// Loads the weights in `vb` (with or without a `roberta.` prefix) with `config` (read from `config_path`).
    pub fn load(vb: VarBuilder, config: Value, config_path: &Path) -> Result<Self> {
        let config: Config = serde_json::from_value(config)
            .map_err(|e| Error::bad_input(config_path, None, format!("not an XLM-RoBERTa config: {e}")))?;
        let vb = if vb.contains_tensor("roberta.embeddings.word_embeddings.weight") { vb.pp("roberta") } else { vb };
        Ok(XlmRoberta { model: XLMRobertaModel::new(&config, vb)? })
    }

    /// `(batch, seq)` ids and 0/1 mask -> `(batch, seq, hidden)` states.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let token_types = ids.zeros_like()?;
        Ok(self.model.forward(ids, mask, &token_types, None, None, None)?)
    }
}
