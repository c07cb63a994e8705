//! `configs/pipeline.toml`: what the whole-lifecycle run uses at each stage.

use serde::{Deserialize, Serialize};

use crate::quant::QuantMethod;

/// The pipeline's configuration; every path is relative to the working directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Run name: everything the run writes goes under `runs/<name>/`.
    pub name: String,
    /// Base model (HF directory or repo id), the one `train` fine-tunes.
    pub base: String,
    /// The store's data directory (CSVs and `policies/`), input of `db init`.
    pub data_dir: String,
    /// The store database `db init` writes and `synth`, `eval` and `serve` read.
    pub db: String,
    /// Conversations `synth --offline` writes.
    pub synth_n: usize,
    /// The training config (`stylevn train --config`); the pipeline sets its data and output.
    pub train_config: String,
    /// `quantize --method`: awq or rtn.
    pub quant_method: QuantMethod,
    /// The catalog config (`stylevn embed-catalog --config`); the pipeline sets the index path.
    pub catalog_config: String,
    /// The eval config (`stylevn eval --config`); the pipeline sets endpoint, model and output.
    pub eval_config: String,
    /// Golden cases each model is evaluated on (0: all of them).
    pub eval_limit: usize,
    /// `max_tokens` of each eval request.
    pub eval_max_tokens: u32,
    /// Address the evaluation servers and the final server listen on.
    pub host: String,
    /// Port of the final server; evaluation servers use the ports after it.
    pub port: u16,
    /// Seconds to wait for a server's `/health` before failing the stage.
    pub server_start_timeout_s: u64,
    /// Leave the assistant serving on `host:port` when every stage is done.
    pub serve_at_end: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            name: "demo".into(),
            base: "models/smollm2-135m-instruct".into(),
            data_dir: "data".into(),
            db: "data/stylevn.db".into(),
            synth_n: 2000,
            train_config: "configs/train-smollm2.toml".into(),
            quant_method: QuantMethod::Awq,
            catalog_config: "configs/catalog.toml".into(),
            eval_config: "configs/eval.toml".into(),
            eval_limit: 40,
            eval_max_tokens: 96,
            host: "127.0.0.1".into(),
            port: 8000,
            server_start_timeout_s: 300,
            serve_at_end: true,
        }
    }
}
