//! `configs/merge.toml`: how `stylevn merge` writes the merged model.

use candle_core::DType;
use serde::{Deserialize, Serialize};

use super::adapter_merge::MergeOptions;
use crate::model::parse_size;
use crate::Result;

/// The stored dtype of the merged tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MergeDtype {
    /// Each base tensor's own dtype.
    Auto,
    /// bfloat16.
    #[serde(alias = "bfloat16")]
    #[value(alias = "bfloat16")]
    Bf16,
    /// float16.
    #[serde(alias = "float16")]
    #[value(alias = "float16")]
    F16,
    /// float32.
    #[serde(alias = "float32")]
    #[value(alias = "float32")]
    F32,
}

impl MergeDtype {
    /// The dtype every tensor is stored in; `None` keeps each one's own.
    pub fn dtype(self) -> Option<DType> {
        match self {
            MergeDtype::Auto => None,
            MergeDtype::Bf16 => Some(DType::BF16),
            MergeDtype::F16 => Some(DType::F16),
            MergeDtype::F32 => Some(DType::F32),
        }
    }
}

/// The settings of `stylevn merge`; its flags of the same names override them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MergeConfig {
    /// Stored dtype.
    pub dtype: MergeDtype,
    /// Largest weight shard, e.g. `5GB` or `500MB` (GB = 10^9 bytes, as transformers).
    pub max_shard_size: String,
}

impl Default for MergeConfig {
    fn default() -> Self {
        MergeConfig { dtype: MergeDtype::Auto, max_shard_size: "5GB".into() }
    }
}

impl MergeConfig {
    /// The merge options (fails on an unreadable `max_shard_size`).
    pub fn options(&self) -> Result<MergeOptions> {
        Ok(MergeOptions { dtype: self.dtype.dtype(), max_shard_bytes: parse_size(&self.max_shard_size)? })
    }
}
