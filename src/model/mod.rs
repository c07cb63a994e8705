//! The model engine: one transformer (Qwen2 + Llama family) for inference and
//! training, its config, pluggable linear layers, KV cache and loaders (HF
//! directory, HF hub, GGUF import).

pub mod backward;
#[cfg(target_arch = "x86_64")]
pub mod bf16_gemm;
pub mod config;
pub mod decode_attention;
pub mod files;
pub mod fused;
pub mod gemv;
pub mod gguf;
pub mod kv_cache;
pub mod linear;
pub mod load;
pub mod precision;
pub mod tiny;
pub mod transformer;

pub use config::{Arch, ModelConfig};
pub use files::ModelFiles;
pub use kv_cache::KvCache;
pub use linear::{DenseLinear, DenseLoader, LinearLoader, Projection};
pub use load::load_transformer;
pub use precision::Precision;
pub use transformer::{LogitsAt, Mode, Packing, Transformer};
