//! `configs/synth.toml`: the settings of `stylevn synth` in every mode.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::teacher::TeacherOptions;
use super::OfflineOptions;

/// The golden set offline conversations are kept apart from, when the config names none.
pub const DEFAULT_HOLDOUT: &str = "evals/golden.jsonl";

/// The settings of `stylevn synth`; its flags of the same names override them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthConfig {
    /// The store database (`stylevn db init` builds it).
    pub db: PathBuf,
    /// Conversations to write.
    pub n: usize,
    /// Seed: the same seed and database give the same file.
    pub seed: u64,
    /// Estimated Jaccard similarity in (0, 1] at which two conversations are near duplicates.
    pub near_dup_threshold: f64,
    /// Golden set whose questions no offline conversation may contain; unset:
    /// [`DEFAULT_HOLDOUT`] when that file exists; empty: none.
    pub holdout: Option<PathBuf>,
    /// Teacher requests in flight.
    pub concurrency: usize,
    /// Teacher retries per request.
    pub max_retries: u32,
    /// First teacher retry delay in ms, doubled each retry.
    pub backoff_ms: u64,
    /// Teacher request timeout in seconds.
    pub timeout_s: u64,
    /// Teacher sampling temperature.
    pub temperature: f64,
    /// Environment variable holding the teacher's API key.
    pub api_key_env: String,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            db: PathBuf::from("data/stylevn.db"),
            n: 2000,
            seed: 7,
            near_dup_threshold: 0.85,
            holdout: None,
            concurrency: 4,
            max_retries: 5,
            backoff_ms: 500,
            timeout_s: 60,
            temperature: 0.8,
            api_key_env: "OPENAI_API_KEY".into(),
        }
    }
}

impl SynthConfig {
    /// The golden set to hold out, if any (see [`SynthConfig::holdout`]).
    pub fn holdout_path(&self) -> Option<PathBuf> {
        match &self.holdout {
            Some(p) if p.as_os_str().is_empty() => None,
            Some(p) => Some(p.clone()),
            None => Some(PathBuf::from(DEFAULT_HOLDOUT)).filter(|p| Path::is_file(p)),
        }
    }

    /// The options of offline generation.
    pub fn offline_options(&self) -> OfflineOptions {
        OfflineOptions { n: self.n, seed: self.seed, near_dup_threshold: self.near_dup_threshold }
    }

    /// The options of a teacher run against `url` serving `model`.
    pub fn teacher_options(&self, url: String, model: String, api_key: Option<String>) -> TeacherOptions {
        TeacherOptions {
            url,
            model,
            api_key,
            n: self.n,
            seed: self.seed,
            concurrency: self.concurrency.max(1),
            max_retries: self.max_retries,
            backoff: Duration::from_millis(self.backoff_ms),
            timeout: Duration::from_secs(self.timeout_s),
            temperature: self.temperature,
            near_dup_threshold: self.near_dup_threshold,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_holdout_disables_it_and_a_named_one_is_kept() {
        let with = |h: &str| SynthConfig { holdout: Some(PathBuf::from(h)), ..SynthConfig::default() };
        assert_eq!(with("").holdout_path(), None);
        assert_eq!(with("x/golden.jsonl").holdout_path(), Some(PathBuf::from("x/golden.jsonl")));
    }
}
