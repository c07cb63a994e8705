//! The integration tests: one binary with a module per area (as cargo's `tests/testsuite/`),
//! so candle, polars and the library are linked once. Run one area with
//! `cargo test --release --test suite <area>::`.

mod common;
mod doubles;
mod mock_openai;
mod serve_support;

mod assistant_smollm2;
mod assistant_store_b;
mod assistant_turn;
mod cli;
mod data_store;
mod eval_endpoint;
mod eval_golden;
mod eval_text;
mod lora_peft;
mod merge_peft;
mod model_tiny;
mod nf4;
mod pipeline;
mod quant_awq;
mod qwen;
mod rag_encoders;
mod rag_index;
mod rag_search;
mod serve_api;
mod serve_openai;
mod smollm2;
mod synth_import;
mod synth_offline;
mod synth_teacher;
mod template;
mod train;
mod zalo_webhook;
