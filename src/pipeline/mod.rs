//! `stylevn pipeline`: the whole lifecycle in one command, as a build system runs
//! it. db -> synth -> train -> merge -> quantize -> embed -> eval of the base,
//! fine-tuned and quantized models -> summary, each stage skipped when its inputs
//! and command line are unchanged, train resumed after a kill; then the assistant
//! serves the result.

pub mod config;
pub mod runner;
pub mod stages;
pub mod stamp;
pub mod summary;

pub use config::PipelineConfig;
pub use runner::{run_stages, Event, StageOutcome};
pub use stages::{eval_server_args, plan, run_dir, Stage, StageKind};
pub use summary::{serve_command, write_summary};
