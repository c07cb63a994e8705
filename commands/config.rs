//! Config files: each subcommand reads a TOML file (its `--config`, or the file in
//! `configs/` named after it when that exists) and flags override its fields.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::de::DeserializeOwned;

/// Loads the subcommand's config: `explicit` if given (it must exist), else
/// `configs/<default_name>` when present, else the type's defaults.
pub fn load<T: DeserializeOwned + Default>(explicit: Option<&Path>, default_name: &str) -> anyhow::Result<T> {
    let path: PathBuf = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let p = Path::new("configs").join(default_name);
            if !p.is_file() {
                return Ok(T::default());
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading config {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config {}", path.display()))
}
