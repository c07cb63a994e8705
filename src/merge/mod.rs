//! `stylevn merge`: a LoRA adapter folded into its full-precision base, written as a
//! complete, sharded HF model directory.

pub mod adapter_merge;
pub mod model_dir;
pub mod shard_writer;
pub mod tensor_reader;

pub use adapter_merge::{merge_adapter, MergeOptions, MergeSummary};
pub use shard_writer::{parse_size, write_sharded, TensorSpec};
