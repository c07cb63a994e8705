//! Loading a [`Transformer`] from an HF model directory or repo id.

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use super::config::ModelConfig;
use super::files::ModelFiles;
use super::linear::LinearLoader;
use super::transformer::Transformer;
use crate::{Error, Result};

/// Loads the transformer of `files` in `dtype` on `device`, building every
/// projection through `linear` (dense, NF4, AWQ int4...): the caller picks the
/// loader the checkpoint needs (`quant::AwqLoader::for_checkpoint` for an AWQ one).
pub fn load_transformer(
    files: &ModelFiles,
    dtype: DType,
    device: &Device,
    linear: &dyn LinearLoader,
) -> Result<Transformer> {
    let config = ModelConfig::from_file(&files.config)?;
    if files.weights.is_empty() {
        return Err(Error::msg(format!(
            "{}: no model.safetensors or model.safetensors.index.json (for a GGUF file run `stylevn import-gguf` first)",
            files.spec
        )));
    }
    // SAFETY: the files are memory-mapped read-only; stylevn never writes to a
    // model directory while a model from it is loaded.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files.weights, dtype, device)? };
    Transformer::load(&config, vb, linear).map_err(|e| Error::msg(format!("{}: {e}", files.spec)))
}
