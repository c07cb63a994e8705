//! `configs/template.toml`: the settings of `stylevn template`.

use serde::{Deserialize, Serialize};

use super::templated::TemplateOptions;

/// The settings of `stylevn template`; its flags of the same names override them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateConfig {
    /// Rows longer than this many tokens are rejected (not truncated).
    pub max_len: usize,
    /// Fraction of kept rows held out for validation (when a validation file is written).
    pub val_frac: f64,
    /// Seed of the train/val split.
    pub seed: u64,
    /// Fail (writing nothing) on any bad row instead of skipping it.
    pub strict: bool,
}

impl Default for TemplateConfig {
    fn default() -> Self {
        let options = TemplateOptions::default();
        TemplateConfig { max_len: options.max_len, val_frac: 0.1, seed: options.seed, strict: false }
    }
}

impl TemplateConfig {
    /// The dataset options: `val_frac` held out when `with_val`, nothing otherwise.
    pub fn options(&self, with_val: bool) -> TemplateOptions {
        TemplateOptions { max_len: self.max_len, val_frac: if with_val { self.val_frac } else { 0.0 }, seed: self.seed }
    }
}
