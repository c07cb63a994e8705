//! A model ready to chat: the transformer, its tokenizer and the token ids that
//! end a turn.

use std::path::Path;

use candle_core::{DType, Device};
use tokenizers::Tokenizer;

use crate::model::config::TokenIds;
use crate::model::{load_transformer, LinearLoader, ModelFiles, Transformer};
use crate::quant::{checkpoint_loader, LmHead};
use crate::{Error, Result};

/// The transformer with everything generation needs beside it.
pub struct ChatModel {
    /// Where the files came from.
    pub files: ModelFiles,
    /// The engine.
    pub transformer: Transformer,
    /// The model's tokenizer.
    pub tokenizer: Tokenizer,
    /// Ids that end generation: `generation_config.json`'s and `config.json`'s
    /// `eos_token_id`, and the tokenizer config's `eos_token`.
    pub eos_ids: Vec<u32>,
}

impl ChatModel {
    /// Loads `spec` (HF directory or repo id) in `dtype` on the CPU: dense weights,
    /// or an AWQ checkpoint's int4 weights with its LM head held as `head`.
    pub fn load(spec: &str, dtype: DType, head: LmHead) -> Result<Self> {
        let files = ModelFiles::resolve(spec)?;
        let linear = checkpoint_loader(&files, head)?;
        Self::load_with(files, dtype, &Device::Cpu, linear.as_ref())
    }

    /// Loads `files` with projections built by `linear`.
    pub fn load_with(files: ModelFiles, dtype: DType, device: &Device, linear: &dyn LinearLoader) -> Result<Self> {
        let transformer = load_transformer(&files, dtype, device, linear)?;
        let tokenizer = files.load_tokenizer()?;
        let mut eos_ids = transformer.config().eos_ids();
        if let Some(path) = &files.generation_config {
            if let Some(ids) = read_json(path)?.get("eos_token_id") {
                let ids: TokenIds = serde_json::from_value(ids.clone())
                    .map_err(|e| Error::bad_input(path, None, format!("eos_token_id: {e}")))?;
                eos_ids.extend(ids.to_vec());
            }
        }
        if let Some(path) = &files.tokenizer_config {
            let eos = read_json(path)?.get("eos_token").cloned();
            let name = match &eos {
                Some(serde_json::Value::String(s)) => Some(s.as_str()),
                Some(v) => v.get("content").and_then(|c| c.as_str()),
                None => None,
            };
            if let Some(id) = name.and_then(|n| tokenizer.token_to_id(n)) {
                eos_ids.push(id);
            }
        }
        eos_ids.sort_unstable();
        eos_ids.dedup();
        Ok(ChatModel { files, transformer, tokenizer, eos_ids })
    }

    /// Token ids of `text` exactly as written (special tokens in the text are
    /// recognised; no BOS/EOS added), as transformers tokenizes a rendered chat.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.tokenizer.encode(text, false)?.get_ids().to_vec())
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::bad_input(path, Some(e.line()), e.to_string()))
}
