//! Writing a derived HF model directory (merged or quantized) beside the source it
//! comes from, as `save_pretrained` lays it out: the weights, sharded
//! (`shard_writer.rs`) in natural name order (`layers.2` before `layers.10`); the
//! source's tokenizer files, chat template and generation config; its
//! `config.json` with the fields the derivation changes; and a provenance note.

use std::path::Path;

use candle_core::Tensor;

use super::shard_writer::{write_sharded, ShardSummary, TensorSpec};
use super::ModelFiles;
use crate::atomic::write_atomic;
use crate::{Error, Result};

/// Files copied as they are when present beside `config.json`.
const SIDE_FILES: [&str; 9] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "generation_config.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
];

/// Name of the provenance note written into every derived directory.
pub const PROVENANCE_FILE: &str = "stylevn_provenance.json";

/// Writes the derived directory `out` of `src`: the tensors `specs` (any order),
/// each made by `produce(spec)` when its turn comes (see [`write_sharded`]) in shards
/// of at most `max_shard_bytes`; `src`'s `config.json` changed by `edit_config`; its
/// side files; and the provenance note `provenance`.
pub fn write_hf_dir(
    src: &ModelFiles,
    out: &Path,
    mut specs: Vec<TensorSpec>,
    max_shard_bytes: u64,
    mut produce: impl FnMut(&TensorSpec) -> Result<Tensor>,
    edit_config: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
    provenance: serde_json::Map<String, serde_json::Value>,
) -> Result<ShardSummary> {
    specs.sort_by_key(|s| natural_key(&s.name));
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let summary = write_sharded(out, &specs, max_shard_bytes, |_, spec| produce(spec))?;
    write_config(src, out, edit_config)?;
    copy_side_files(src, out)?;
    write_provenance(out, provenance)?;
    Ok(summary)
}

/// Copies the tokenizer, chat template and generation config of `src` into `out`.
fn copy_side_files(src: &ModelFiles, out: &Path) -> Result<()> {
    for name in SIDE_FILES {
        let from = src.dir().join(name);
        if from.is_file() {
            let bytes = std::fs::read(&from).map_err(|e| Error::io(&from, e))?;
            write_atomic(&out.join(name), &bytes)?;
        }
    }
    Ok(())
}

/// Reads `src`'s `config.json` as JSON, lets `edit` change it, and writes it to `out`.
fn write_config(
    src: &ModelFiles,
    out: &Path,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> Result<()> {
    let text = std::fs::read_to_string(&src.config).map_err(|e| Error::io(&src.config, e))?;
    let mut json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::bad_input(&src.config, Some(e.line()), e.to_string()))?;
    let map = json.as_object_mut().ok_or_else(|| Error::bad_input(&src.config, None, "not a JSON object"))?;
    edit(map);
    let text = serde_json::to_string_pretty(&json).map_err(|e| Error::msg(e.to_string()))?;
    write_atomic(&out.join("config.json"), text.as_bytes())
}

/// Writes the provenance note `fields` (what was derived from what, and when) into `out`,
/// adding the stylevn version and the UTC time.
fn write_provenance(out: &Path, mut fields: serde_json::Map<String, serde_json::Value>) -> Result<()> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    fields
        .insert("created_utc".into(), crate::tokenize::strftime::strftime_utc("%Y-%m-%dT%H:%M:%SZ", now as i64).into());
    fields.insert("stylevn_version".into(), env!("CARGO_PKG_VERSION").into());
    let text = serde_json::to_string_pretty(&fields).map_err(|e| Error::msg(e.to_string()))?;
    write_atomic(&out.join(PROVENANCE_FILE), text.as_bytes())
}

/// The HF `torch_dtype` name of a dtype.
pub fn torch_dtype_name(dtype: candle_core::DType) -> &'static str {
    match dtype {
        candle_core::DType::F16 => "float16",
        candle_core::DType::BF16 => "bfloat16",
        _ => "float32",
    }
}

/// Orders checkpoint names as a person would (`layers.2` before `layers.10`).
fn natural_key(name: &str) -> Vec<(u64, String)> {
    name.split('.')
        .map(|part| part.parse::<u64>().map(|n| (n, String::new())).unwrap_or((u64::MAX, part.to_string())))
        .collect()
}
