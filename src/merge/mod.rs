//! `stylevn merge`: a LoRA adapter folded into its full-precision base, written as a
//! complete, sharded HF model directory (`model::hf_dir_writer`).

pub mod adapter_merge;
pub mod config;
pub mod tensor_reader;

pub use adapter_merge::{merge_adapter, MergeOptions, MergeSummary};
pub use config::{MergeConfig, MergeDtype};
