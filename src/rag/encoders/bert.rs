//! BERT encoders (all-MiniLM-L6-v2, multilingual-e5): candle-transformers' `BertModel`,
//! which reads HF's weight names (`embeddings.*`, `encoder.layer.{i}.*`, with or
//! without a `bert.` prefix) and takes an attention mask, so padded batches match
//! the unpadded texts. Token type ids are all 0, as sentence-transformers sends.

use std::path::Path;

use candle_core::Tensor;
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};

use crate::{Error, Result};

/// A BERT backbone: token ids in, last hidden states out.
pub(super) struct Bert {
    model: BertModel,
    /// Id of the padding token (`pad_token_id` of `config.json`).
    pub pad_token_id: u32,
}

impl Bert {
    /// Loads the weights in `vb` with the `config.json` at `config_path`.
    pub fn load(vb: VarBuilder, config_path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(config_path).map_err(|e| Error::io(config_path, e))?;
        let config: Config = serde_json::from_str(&text)
            .map_err(|e| Error::bad_input(config_path, Some(e.line()), format!("not a BERT config: {e}")))?;
        let pad_token_id = config.pad_token_id as u32;
        Ok(Bert { model: BertModel::load(vb, &config)?, pad_token_id })
    }

    /// `(batch, seq)` ids and 0/1 mask -> `(batch, seq, hidden)` states.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let token_types = ids.zeros_like()?;
        Ok(self.model.forward(ids, &token_types, Some(mask))?)
    }
}
