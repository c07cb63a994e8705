//! Quantized weight formats: NF4 (the frozen QLoRA base, as bitsandbytes stores it).

pub mod dynamic_map;
pub mod nf4;
pub mod nf4_linear;

pub use nf4::Nf4Weight;
pub use nf4_linear::{Nf4Linear, Nf4Loader};

// AWQ / RTN int4: the group quantizer, the AutoAWQ gemm layout, the CPU kernels
// (int4 layers, the int8 LM head) and the `stylevn quantize` pipeline.
pub mod awq;
pub mod awq_checkpoint;
pub mod awq_gemm;
pub mod awq_search;
pub mod calib;
pub mod config;
pub mod group_quant;
pub mod int4;
pub mod int8;
pub mod int8_acts;
pub mod packed_linear;
pub mod quantize_model;

pub use awq_checkpoint::{checkpoint_loader, AwqConfig, AwqLoader, LmHead};
pub use awq_search::ClipGrid;
pub use config::QuantizeConfig;
pub use int4::Int4Weight;
pub use int8::Int8Weight;
pub use packed_linear::{Int4Linear, Int8Linear, PackedLinear, PackedWeight};
pub use quantize_model::{quantize_model, QuantMethod, QuantizeOptions, QuantizeSummary};
