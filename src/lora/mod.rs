//! LoRA: trainable low-rank adapters around frozen projections, PEFT-compatible.

pub mod adapter;
pub mod config;
pub mod layer;
pub mod token_rows;

pub use adapter::{attach, attach_peft, LoraAdapter};
pub use config::LoraConfig;
pub use layer::{DropoutState, LoraLinear};
