//! `configs/quantize.toml`: the settings of `stylevn quantize`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::awq_search::ClipGrid;
use super::quantize_model::{QuantMethod, QuantizeOptions};
use crate::model::parse_size;
use crate::Result;

/// The settings of `stylevn quantize`; its flags of the same names override them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuantizeConfig {
    /// AWQ or RTN (round-to-nearest baseline).
    pub method: QuantMethod,
    /// AWQ calibration data: chat JSONL/CSV (templated with the model's chat template) or any text file.
    pub calib: PathBuf,
    /// Calibration sequences (AutoAWQ uses 128).
    pub calib_samples: usize,
    /// Tokens per calibration sequence, at most (AutoAWQ's default 512).
    pub calib_len: usize,
    /// Inputs per quantization group (AutoAWQ's default 128; reduced when it does not divide the widths).
    pub group_size: usize,
    /// AWQ: calibration tokens (whole sequences) the scale-search losses are measured on.
    pub search_tokens: usize,
    /// AWQ clip search.
    pub clip: ClipGrid,
    /// Seed of the calibration sample.
    pub seed: u64,
    /// Largest weight shard, e.g. `5GB`.
    pub max_shard_size: String,
}

impl Default for QuantizeConfig {
    fn default() -> Self {
        QuantizeConfig {
            method: QuantMethod::Awq,
            calib: PathBuf::from("data/chats.jsonl"),
            calib_samples: 32,
            calib_len: 512,
            group_size: 128,
            search_tokens: 2048,
            clip: ClipGrid::Asymmetric,
            seed: 42,
            max_shard_size: "5GB".into(),
        }
    }
}

impl QuantizeConfig {
    /// The quantization options (fails on an unreadable `max_shard_size`).
    pub fn options(&self) -> Result<QuantizeOptions> {
        Ok(QuantizeOptions {
            method: self.method,
            group_size: self.group_size,
            max_shard_bytes: parse_size(&self.max_shard_size)?,
            search_tokens: self.search_tokens,
            clip: self.clip,
        })
    }
}
