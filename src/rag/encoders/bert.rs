//! BERT encoders (all-MiniLM-L6-v2, multilingual-e5): candle-transformers' `BertModel`,
//! which reads HF's weight names (`embeddings.*`, `encoder.layer.{i}.*`, with or
//! without a `bert.` prefix) and takes an attention mask, so padded batches match
//! the unpadded texts. Token type ids are all 0, as sentence-transformers sends.

use std::path::Path;

use candle_core::Tensor;
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde_json::Value;

use crate::{Error, Result};

/// A BERT backbone: token ids in, last hidden states out.
pub(super) struct Bert {
    model: BertModel,
}

impl Bert {
    /// Loads the weights in `vb` with `config` (read from `config_path`).
    pub fn load(vb: VarBuilder, config: Value, config_path: &Path) -> Result<Self> {
        let config: Config = serde_json::from_value(config)
            .map_err(|e| Error::bad_input(config_path, None, format!("not a BERT config: {e}")))?;
        Ok(Bert { model: BertModel::load(vb, &config)? })
    }

    /// `(batch, seq)` ids and 0/1 mask -> `(batch, seq, hidden)` states.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let token_types = ids.zeros_like()?;
        Ok(self.model.forward(ids, &token_types, Some(mask))?)
    }
}
