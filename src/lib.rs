//! stylevn: the ML lifecycle of a Vietnamese fashion store's support chatbot.
//!
//! The library holds every stage; the `stylevn` binary (in `commands/`) only parses
//! arguments, loads configs, drives progress bars and prints summaries. Nothing in
//! the library prints.

pub mod atomic;
pub mod conversation;
pub mod cpu;
pub mod csv_lines;
pub mod data;
pub mod error;
pub mod eval;
pub mod generate;
pub mod jsonl;
pub mod lora;
pub mod malloc_tuning;
pub mod merge;
pub mod model;
pub mod pipeline;
pub mod plot;
pub mod quant;
pub mod rag;
pub mod seeded;
pub mod serve;
pub mod threads;
pub mod tls;
pub mod tokenize;
pub mod train;

pub use error::{Error, Result};
