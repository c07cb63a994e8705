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

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};
    use stylevn::data::synth::SynthConfig;
    use stylevn::eval::EvalConfig;
    use stylevn::generate::GenerateConfig;
    use stylevn::merge::MergeConfig;
    use stylevn::pipeline::{eval_server_args, plan, serve_command, PipelineConfig, StageKind};
    use stylevn::quant::QuantizeConfig;
    use stylevn::rag::CatalogConfig;
    use stylevn::serve::config::ServeConfig;
    use stylevn::tokenize::TemplateConfig;
    use stylevn::train::TrainConfig;

    use super::Cli;

    #[test]
    fn the_command_tree_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Every command line the pipeline runs parses with the real flags, so a renamed
    /// or removed flag fails here rather than in the middle of a run.
    #[test]
    fn every_pipeline_command_line_parses() {
        let cfg = PipelineConfig::default();
        let mut lines = vec![serve_command(&cfg)];
        for stage in plan(&cfg) {
            match stage.kind {
                StageKind::Command(args) => {
                    let resumed = stage.resume.iter().map(|(arg, _)| [args.clone(), vec![arg.clone()]].concat());
                    lines.extend(resumed.chain([args.clone()]));
                }
                StageKind::Eval { model, served_name, port, eval_args } => {
                    lines.push(eval_server_args(&cfg, &model, &served_name, port));
                    lines.push(eval_args);
                }
            }
        }
        assert_eq!(lines.len(), 1 + 7 + 2 * 3, "serve, six commands and train resumed, three evals with their servers");
        for line in lines {
            let argv = std::iter::once("stylevn".to_string()).chain(line.iter().cloned());
            if let Err(e) = Cli::try_parse_from(argv) {
                panic!("`stylevn {}` does not parse: {e}", line.join(" "));
            }
        }
    }

    fn fields<T: serde::Serialize>(config: T) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(config).unwrap() {
            serde_json::Value::Object(map) => map,
            other => panic!("a config serializes to a table, not {other}"),
        }
    }

    /// Every field of every subcommand's config has a flag of its name; a TOML
    /// section's fields have flags with the section's prefix.
    #[test]
    fn every_config_field_has_a_flag() {
        type Sections = &'static [(&'static str, &'static str)];
        let configs: [(&str, serde_json::Map<String, serde_json::Value>, Sections); 10] = [
            ("train", fields(TrainConfig::default()), &[]),
            ("eval", fields(EvalConfig::default()), &[("thresholds", "")]),
            ("synth", fields(SynthConfig::default()), &[]),
            ("template", fields(TemplateConfig::default()), &[]),
            ("merge", fields(MergeConfig::default()), &[]),
            ("quantize", fields(QuantizeConfig::default()), &[]),
            ("generate", fields(GenerateConfig::default()), &[]),
            ("serve", fields(ServeConfig::default()), &[("limits", ""), ("zalo", "zalo_")]),
            ("embed-catalog", fields(CatalogConfig::default()), &[("chunk", "chunk_"), ("columns", "column_")]),
            ("pipeline", fields(PipelineConfig::default()), &[]),
        ];
        let cli = Cli::command();
        for (sub, config, sections) in configs {
            let command = cli.find_subcommand(sub).unwrap_or_else(|| panic!("no subcommand {sub}"));
            let longs: Vec<&str> = command.get_arguments().filter_map(|a| a.get_long()).collect();
            for (key, value) in config {
                let names: Vec<String> = match sections.iter().find(|(section, _)| *section == key) {
                    Some((_, prefix)) => fields(value).keys().map(|k| format!("{prefix}{k}")).collect(),
                    None => vec![key],
                };
                for name in names {
                    let flag = name.replace('_', "-");
                    assert!(
                        longs.contains(&flag.as_str()),
                        "stylevn {sub} has no --{flag} for its config field {name}"
                    );
                }
            }
        }
    }
}
