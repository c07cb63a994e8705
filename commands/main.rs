//! The `stylevn` binary: one thin file per subcommand. Each parses its flags,
//! merges them over its TOML config, calls the library, drives progress bars and
//! prints a one-line summary. No ML logic lives here.

mod config;
mod db;
mod embed_catalog;
mod eval;
mod eval_perplexity;
mod generate;
mod import_gguf;
mod merge;
mod pipeline;
mod quantize;
mod search;
mod serve;
mod synth;
mod template;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// stylevn: train, quantize, evaluate and serve a Vietnamese fashion store's
/// customer-support chatbot, from one binary.
#[derive(Parser)]
#[command(name = "stylevn", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render chat data through the model's own chat template, with assistant spans for training.
    Template(template::Args),
    /// Generate text from a model (chat-templated prompt, streamed to stdout).
    Generate(generate::Args),
    /// Convert a GGUF file (llama / qwen2) into a complete HF model directory.
    ImportGguf(import_gguf::Args),
    /// QLoRA fine-tuning (frozen NF4 base, LoRA adapters) writing a PEFT adapter.
    Train(Box<train::Args>),
    /// Embed the catalog and policies into a hybrid-search index (incremental, cron-safe).
    EmbedCatalog(embed_catalog::Args),
    /// Search a catalog index (hybrid dense + BM25) and print ranked hits with scores.
    Search(search::Args),
    /// Evaluate a model behind an OpenAI-compatible endpoint (the CI gate), or score predictions offline.
    Eval(eval::Args),
    /// Store database: `db init` builds data/stylevn.db from the CSVs and policies in data/.
    Db(db::Args),
    /// Synthetic chat JSONL from the store: offline templates, an OpenAI-compatible teacher, or imported logs.
    Synth(synth::Args),
    /// The whole lifecycle (db, synth, train, merge, quantize, embed, eval x3, summary, serve), up-to-date stages skipped.
    Pipeline(pipeline::Args),
    /// OpenAI-compatible chat server: continuous batching, prefix caching, tool calls, or an upstream proxy.
    Serve(Box<serve::Args>),
    /// Merge a PEFT LoRA adapter into its full-precision base (a complete, sharded HF directory).
    Merge(merge::Args),
    /// Quantize a model to 4 bits (AWQ or RTN) in the AutoAWQ gemm format vLLM and stylevn load.
    Quantize(quantize::Args),
}

fn main() -> ExitCode {
    stylevn::threads::fix_cpu_threads();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Template(args) => template::exec(args),
        Command::Generate(args) => generate::exec(args),
        Command::ImportGguf(args) => import_gguf::exec(args),
        Command::Train(args) => train::exec(*args),
        Command::EmbedCatalog(args) => embed_catalog::exec(args),
        Command::Search(args) => search::exec(args),
        Command::Eval(args) => eval::exec(args),
        Command::Db(args) => db::exec(args),
        Command::Synth(args) => synth::exec(args),
        Command::Pipeline(args) => pipeline::exec(args),
        Command::Serve(args) => serve::exec(*args),
        Command::Merge(args) => merge::exec(args),
        Command::Quantize(args) => quantize::exec(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
