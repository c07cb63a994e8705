//! The lifecycle as a list of stages: each is a `stylevn` subcommand line with the
//! files it reads (its up-to-date key) and the files it must leave behind.

use std::path::{Path, PathBuf};

use super::config::PipelineConfig;
use crate::data::passages::CONTEXT_HEADING;
use crate::data::SYSTEM_PROMPT;

/// How a stage runs.
#[derive(Debug, Clone, PartialEq)]
pub enum StageKind {
    /// One `stylevn` invocation with these arguments.
    Command(Vec<String>),
    /// `stylevn serve --model MODEL` on `port`, then `stylevn eval` (these
    /// arguments) against it, then the server is stopped.
    Eval {
        /// The model directory served.
        model: String,
        /// The id it is served under.
        served_name: String,
        /// The port the server listens on.
        port: u16,
        /// `stylevn eval` arguments.
        eval_args: Vec<String>,
    },
}

/// One stage of the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// Stage name (`synth`, `train`, `eval-tuned`, ...).
    pub name: &'static str,
    /// What it runs.
    pub kind: StageKind,
    /// Files and directories whose content decides whether the stage is up to date.
    pub inputs: Vec<PathBuf>,
    /// Files the stage must produce; the stage is re-run when one is missing.
    pub outputs: Vec<PathBuf>,
    /// The directory the stage writes: removed before a fresh (not resumed) run.
    pub out_dir: Option<PathBuf>,
    /// Arguments added when the stage continues an interrupted run of the same key
    /// (train's `--resume`), with the file whose presence means there is one to continue.
    pub resume: Option<(String, PathBuf)>,
}

fn s(v: &str) -> String {
    v.to_string()
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// Where the run's files go: `runs/<name>/`.
pub fn run_dir(cfg: &PipelineConfig) -> PathBuf {
    Path::new("runs").join(&cfg.name)
}

/// The stages of `cfg`, in order.
pub fn plan(cfg: &PipelineConfig) -> Vec<Stage> {
    let run = run_dir(cfg);
    let data = Path::new(&cfg.data_dir);
    let db = PathBuf::from(&cfg.db);
    let chats = run.join("chats.jsonl");
    let adapter = run.join("adapter");
    let merged = run.join("merged");
    let quantized = run.join(cfg.quant_method.name());
    let index = run.join("index");
    let csvs = ["catalog.csv", "orders.csv", "order_items.csv", "stock.csv", "promotions.csv", "size_charts.csv"];
    let mut db_inputs: Vec<PathBuf> = csvs.iter().map(|c| data.join(c)).collect();
    db_inputs.push(data.join("policies"));
    let mut stages = vec![
        Stage {
            name: "db",
            kind: StageKind::Command(vec![s("db"), s("init"), s("--data"), p(data), s("--db"), p(&db)]),
            inputs: db_inputs,
            outputs: vec![db.clone()],
            out_dir: None,
            resume: None,
        },
        Stage {
            name: "synth",
            kind: StageKind::Command(vec![
                s("synth"),
                s("--offline"),
                s("--db"),
                p(&db),
                s("--n"),
                cfg.synth_n.to_string(),
                s("--out"),
                p(&chats),
            ]),
            inputs: vec![db.clone()],
            outputs: vec![chats.clone()],
            out_dir: None,
            resume: None,
        },
        Stage {
            name: "train",
            kind: StageKind::Command(vec![
                s("train"),
                s("--config"),
                s(&cfg.train_config),
                s("--base"),
                s(&cfg.base),
                s("--data"),
                p(&chats),
                s("--out"),
                p(&adapter),
            ]),
            inputs: vec![PathBuf::from(&cfg.train_config), PathBuf::from(&cfg.base), chats.clone()],
            outputs: vec![adapter.join("adapter_model.safetensors"), adapter.join("adapter_config.json")],
            out_dir: Some(adapter.clone()),
            resume: Some((s("--resume"), adapter.join("checkpoints").join("latest"))),
        },
        Stage {
            name: "merge",
            kind: StageKind::Command(vec![
                s("merge"),
                s("--base"),
                s(&cfg.base),
                s("--adapter"),
                p(&adapter),
                s("--out"),
                p(&merged),
            ]),
            inputs: vec![
                PathBuf::from(&cfg.base),
                adapter.join("adapter_model.safetensors"),
                adapter.join("adapter_config.json"),
            ],
            outputs: vec![merged.join("config.json")],
            out_dir: Some(merged.clone()),
            resume: None,
        },
        Stage {
            name: "quantize",
            kind: StageKind::Command(vec![
                s("quantize"),
                s("--method"),
                s(cfg.quant_method.name()),
                s("--model"),
                p(&merged),
                s("--out"),
                p(&quantized),
                s("--calib"),
                p(&chats),
            ]),
            inputs: vec![merged.clone(), chats.clone()],
            outputs: vec![quantized.join("config.json")],
            out_dir: Some(quantized.clone()),
            resume: None,
        },
        Stage {
            name: "embed",
            kind: StageKind::Command(vec![
                s("embed-catalog"),
                s("--config"),
                s(&cfg.catalog_config),
                s("--index"),
                p(&index),
                s("--quiet"),
            ]),
            inputs: vec![PathBuf::from(&cfg.catalog_config), data.join("catalog.csv"), data.join("policies")],
            outputs: vec![index.clone()],
            out_dir: None,
            resume: None,
        },
    ];
    let models = [("eval-base", cfg.base.clone(), "base"), ("eval-tuned", p(&merged), "tuned")];
    let quant = ("eval-quantized", p(&quantized), "quantized");
    for (i, (name, model, which)) in models.into_iter().chain([quant]).enumerate() {
        let report = run.join("eval").join(which);
        let served_name = format!("{}-{which}", cfg.name);
        let port = cfg.port + 1 + i as u16;
        let mut eval_args = vec![
            s("eval"),
            s("--config"),
            s(&cfg.eval_config),
            s("--endpoint"),
            format!("http://{}:{port}/v1", cfg.host),
            s("--model"),
            served_name.clone(),
            s("--out"),
            p(&report),
            s("--max-tokens"),
            cfg.eval_max_tokens.to_string(),
            s("--system-prompt"),
            s(SYSTEM_PROMPT),
            // The servers have no index: the golden contexts stand in for retrieval.
            s("--context-heading"),
            s(CONTEXT_HEADING),
        ];
        if cfg.eval_limit > 0 {
            eval_args.extend([s("--limit"), cfg.eval_limit.to_string()]);
        }
        let mut inputs = vec![PathBuf::from(&model), PathBuf::from(&cfg.eval_config), db.clone()];
        inputs.push(PathBuf::from("evals/golden.jsonl"));
        stages.push(Stage {
            name,
            kind: StageKind::Eval { model, served_name, port, eval_args },
            inputs,
            outputs: vec![report.join("report.json")],
            out_dir: Some(report),
            resume: None,
        });
    }
    // A subcommand run without `--config` reads `configs/<its file>` when there is one:
    // that file is part of the stage's key too (the eval stages' servers are `serve`).
    for stage in &mut stages {
        let sub = match &stage.kind {
            StageKind::Command(args) if !args.iter().any(|a| a == "--config") => args[0].as_str(),
            StageKind::Command(_) => continue,
            StageKind::Eval { .. } => "serve",
        };
        if let Some(file) = default_config(sub) {
            stage.inputs.push(Path::new("configs").join(file));
        }
    }
    stages
}

/// The `stylevn serve` command line of an eval stage's server: `model` served as
/// `served_name` on `cfg.host:port`.
pub fn eval_server_args(cfg: &PipelineConfig, model: &str, served_name: &str, port: u16) -> Vec<String> {
    vec![
        s("serve"),
        s("--model"),
        s(model),
        s("--served-model-name"),
        s(served_name),
        s("--host"),
        s(&cfg.host),
        s("--port"),
        port.to_string(),
    ]
}

/// The config file a subcommand reads from `configs/` when given no `--config`.
fn default_config(subcommand: &str) -> Option<&'static str> {
    Some(match subcommand {
        "synth" => "synth.toml",
        "train" => "train.toml",
        "merge" => "merge.toml",
        "quantize" => "quantize.toml",
        "embed-catalog" => "catalog.toml",
        "eval" => "eval.toml",
        "serve" => "serve.toml",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implicit_config_files_are_inputs() {
        let stages = plan(&PipelineConfig::default());
        let inputs = |name: &str| stages.iter().find(|s| s.name == name).unwrap().inputs.clone();
        let configs =
            |name: &str| -> Vec<PathBuf> { inputs(name).into_iter().filter(|p| p.starts_with("configs")).collect() };
        assert_eq!(configs("quantize"), [PathBuf::from("configs/quantize.toml")]);
        assert_eq!(configs("merge"), [PathBuf::from("configs/merge.toml")]);
        assert_eq!(configs("synth"), [PathBuf::from("configs/synth.toml")]);
        // Explicit --config: that file, not the default one.
        assert_eq!(configs("train"), [PathBuf::from("configs/train-smollm2.toml")]);
        assert_eq!(configs("embed"), [PathBuf::from("configs/catalog.toml")]);
        assert_eq!(configs("eval-tuned"), [PathBuf::from("configs/eval.toml"), PathBuf::from("configs/serve.toml")]);
        assert!(configs("db").is_empty());
    }
}
