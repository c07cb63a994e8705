//! Where a model's files are: an HF directory on disk, or an HF repo id resolved
//! through hf-hub (honouring the HF cache, `HF_HOME` and `HF_HUB_OFFLINE`).
//!
//! An HF model directory holds `config.json`, the weights (`model.safetensors`, or
//! shards listed in `model.safetensors.index.json`), `tokenizer.json`,
//! `tokenizer_config.json` (which may carry `chat_template`), optionally
//! `chat_template.jinja` and `generation_config.json`.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The files of one model, all local paths.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// What the user named (a directory or a repo id), for messages.
    pub spec: String,
    /// `config.json`.
    pub config: PathBuf,
    /// The safetensors weight files (one, or every shard of the index).
    pub weights: Vec<PathBuf>,
    /// `tokenizer.json`, when present.
    pub tokenizer: Option<PathBuf>,
    /// `tokenizer_config.json`, when present.
    pub tokenizer_config: Option<PathBuf>,
    /// `chat_template.jinja`, when present (it wins over `tokenizer_config.json`).
    pub chat_template: Option<PathBuf>,
    /// `generation_config.json`, when present.
    pub generation_config: Option<PathBuf>,
}

const INDEX_FILE: &str = "model.safetensors.index.json";
const SINGLE_FILE: &str = "model.safetensors";

impl ModelFiles {
    /// Resolves `spec`: an existing directory is read as an HF model directory;
    /// anything else of the form `owner/name` is fetched through hf-hub.
    pub fn resolve(spec: &str) -> Result<Self> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Self::from_dir(path);
        }
        if path.extension().is_some_and(|e| e == "gguf") {
            return Err(Error::msg(format!(
                "{spec}: a GGUF file is not an HF model directory; convert it first with \
                 `stylevn import-gguf {spec} --out DIR` and pass DIR"
            )));
        }
        if spec.matches('/').count() == 1 && !spec.starts_with('.') && !path.exists() {
            return Self::from_hub(spec);
        }
        Err(Error::msg(format!(
            "{spec}: no such model directory (expected a directory with config.json, or an HF repo id like Qwen/Qwen2.5-0.5B-Instruct)"
        )))
    }

    /// Reads an HF model directory.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let config = dir.join("config.json");
        if !config.is_file() {
            return Err(Error::msg(format!("{}: no config.json in this model directory", dir.display())));
        }
        let weights = if dir.join(INDEX_FILE).is_file() {
            shard_names(&dir.join(INDEX_FILE))?.into_iter().map(|n| dir.join(n)).collect()
        } else if dir.join(SINGLE_FILE).is_file() {
            vec![dir.join(SINGLE_FILE)]
        } else {
            Vec::new()
        };
        let opt = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
        Ok(ModelFiles {
            spec: dir.display().to_string(),
            config,
            weights,
            tokenizer: opt("tokenizer.json"),
            tokenizer_config: opt("tokenizer_config.json"),
            chat_template: opt("chat_template.jinja"),
            generation_config: opt("generation_config.json"),
        })
    }

    /// Fetches (or finds in the HF cache) the files of repo `repo_id`.
    /// With `HF_HUB_OFFLINE=1` only the cache is read.
    pub fn from_hub(repo_id: &str) -> Result<Self> {
        let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        let fetch = |name: &str| -> Result<Option<PathBuf>> {
            if offline {
                Ok(hf_hub::Cache::from_env().model(repo_id.to_string()).get(name))
            } else {
                let api = hf_hub::api::sync::ApiBuilder::from_env()
                    .with_progress(false)
                    .build()
                    .map_err(|e| Error::msg(format!("{repo_id}: cannot reach the HF hub: {e}")))?;
                match api.model(repo_id.to_string()).get(name) {
                    Ok(p) => Ok(Some(p)),
                    Err(hf_hub::api::sync::ApiError::RequestError(e)) if e.to_string().contains("404") => Ok(None),
                    Err(e) => Err(Error::msg(format!("{repo_id}/{name}: {e}"))),
                }
            }
        };
        let config = fetch("config.json")?.ok_or_else(|| {
            Error::msg(format!(
                "{repo_id}: config.json not found{}",
                if offline { " in the HF cache (HF_HUB_OFFLINE is set)" } else { "" }
            ))
        })?;
        let weights = if let Some(index) = fetch(INDEX_FILE)? {
            let mut files = Vec::new();
            for shard in shard_names(&index)? {
                files.push(fetch(&shard)?.ok_or_else(|| Error::msg(format!("{repo_id}: shard {shard} missing")))?);
            }
            files
        } else {
            fetch(SINGLE_FILE)?.into_iter().collect()
        };
        Ok(ModelFiles {
            spec: repo_id.to_string(),
            config,
            weights,
            tokenizer: fetch("tokenizer.json")?,
            tokenizer_config: fetch("tokenizer_config.json")?,
            chat_template: fetch("chat_template.jinja")?,
            generation_config: fetch("generation_config.json")?,
        })
    }

    /// The directory holding `config.json`.
    pub fn dir(&self) -> &Path {
        self.config.parent().unwrap_or(Path::new("."))
    }

    /// Loads `tokenizer.json`, or says that the model has none.
    pub fn load_tokenizer(&self) -> Result<tokenizers::Tokenizer> {
        let path = self
            .tokenizer
            .as_ref()
            .ok_or_else(|| Error::msg(format!("{}: the model has no tokenizer.json", self.spec)))?;
        tokenizers::Tokenizer::from_file(path).map_err(|e| Error::msg(format!("{}: {e}", path.display())))
    }
}

/// The distinct shard file names listed in a `model.safetensors.index.json`, in order.
fn shard_names(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::bad_input(index, Some(e.line()), e.to_string()))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::bad_input(index, None, "missing object field `weight_map`"))?;
    let mut names: Vec<String> = Vec::new();
    for v in map.values() {
        let name = v.as_str().ok_or_else(|| Error::bad_input(index, None, "`weight_map` values must be file names"))?;
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    Ok(names)
}
