//! QLoRA training on candle: a frozen (NF4 or f32) base, trainable LoRA adapters,
//! PEFT-format output.

pub mod checkpoint;
pub mod config;
pub mod examples;
pub mod optimizer;
pub mod schedule;
pub mod trainer;

pub use config::{BaseQuant, TrainConfig};
pub use schedule::ScheduleKind;
pub use trainer::{train, StepMetrics, TrainInfo, TrainObserver, TrainSummary};
