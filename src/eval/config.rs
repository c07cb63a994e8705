//! `configs/eval.toml`: every setting of an evaluation run against an endpoint.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::checks::DEFAULT_REFUSAL_MARKERS;
use super::report::Thresholds;

/// An evaluation run's configuration; `stylevn eval` flags of the same names override it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Base URL of the OpenAI-compatible API, e.g. `http://127.0.0.1:8000/v1` (required).
    pub endpoint: String,
    /// Model id to request (required).
    pub model: String,
    /// The golden set.
    pub set: PathBuf,
    /// Output directory of `report.json`, `report.md` and the plots.
    pub out: PathBuf,
    /// Requests in flight; with `request_rate` > 0 the cap (0: none).
    pub concurrency: usize,
    /// Poisson arrivals at this many requests/s when > 0, else a fixed concurrency.
    pub request_rate: f64,
    /// `max_tokens` of each request.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f64,
    /// Request seed (and Poisson arrival seed).
    pub seed: u64,
    /// Per-request timeout in seconds.
    pub timeout_s: u64,
    /// Faithfulness judge endpoint (OpenAI-compatible); empty: no judge.
    pub judge_url: String,
    /// Judge model id.
    pub judge_model: String,
    /// Attempts per judge call (transport errors and unparseable output are retried).
    pub judge_max_attempts: usize,
    /// First judge retry delay in ms, doubled on each retry.
    pub judge_backoff_ms: u64,
    /// Environment variable holding the endpoint's API key (may be unset).
    pub api_key_env: String,
    /// Environment variable holding the judge's API key.
    pub judge_api_key_env: String,
    /// System prompt put first in cases that have none (empty: none).
    pub system_prompt: String,
    /// JSON file with the OpenAI `tools` array offered on every request (empty: none).
    pub tools: String,
    /// Heading under which each case's contexts are sent before its last question, as
    /// `stylevn serve` adds what its retrieval finds (empty: contexts not sent).
    pub context_heading: String,
    /// Phrases that mark a polite refusal.
    pub refusal_markers: Vec<String>,
    /// The CI gate.
    pub thresholds: Thresholds,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            endpoint: String::new(),
            model: String::new(),
            set: "evals/golden.jsonl".into(),
            out: "report".into(),
            concurrency: 4,
            request_rate: 0.0,
            max_tokens: 256,
            temperature: 0.0,
            seed: 0,
            timeout_s: 300,
            judge_url: String::new(),
            judge_model: String::new(),
            judge_max_attempts: 3,
            judge_backoff_ms: 500,
            api_key_env: "OPENAI_API_KEY".into(),
            judge_api_key_env: "OPENAI_API_KEY".into(),
            system_prompt: String::new(),
            tools: String::new(),
            context_heading: String::new(),
            refusal_markers: DEFAULT_REFUSAL_MARKERS.iter().map(|s| s.to_string()).collect(),
            thresholds: Thresholds::default(),
        }
    }
}
