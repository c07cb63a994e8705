//! The model engine: one transformer (Qwen2 + Llama family) for inference and
//! training, its config and layer projections, pluggable linear layers, KV cache,
//! loaders (HF directory, HF hub, GGUF import) and the writer of derived HF
//! directories (merge, quantize).

pub mod backward;
#[cfg(target_arch = "x86_64")]
pub mod bf16_gemm;
pub mod config;
pub mod decode_attention;
pub mod files;
pub mod fused;
pub mod gemv;
pub mod gguf;
pub mod hf_dir_writer;
pub mod kv_cache;
pub mod linear;
pub mod load;
pub mod precision;
pub mod projections;
pub mod shard_writer;
#[cfg(any(test, feature = "test-support"))]
pub mod tiny;
pub mod transformer;

pub use config::{Arch, ModelConfig};
pub use files::ModelFiles;
pub use kv_cache::KvCache;
pub use linear::{DenseLinear, DenseLoader, LinearLoader, Projection};
pub use load::load_transformer;
pub use precision::Precision;
pub use projections::LayerProjection;
pub use shard_writer::parse_size;
pub use transformer::{LogitsAt, Mode, Packing, Transformer};
