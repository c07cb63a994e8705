//! Quantized weight formats: NF4 (the frozen QLoRA base, as bitsandbytes stores it).

pub mod dynamic_map;
pub mod nf4;
pub mod nf4_linear;

pub use nf4::Nf4Weight;
pub use nf4_linear::{Nf4Linear, Nf4Loader};
