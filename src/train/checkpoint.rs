//! Checkpoints: adapter weights, optimizer moments and the trainer's counters in
//! `OUT/checkpoints/step-NNNNNN/`, published by renaming a finished staging
//! directory, then pointed to by `OUT/checkpoints/latest` (written atomically). A
//! kill at any instant leaves the previous checkpoint whole and `latest` valid.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::atomic::{set_mode, write_atomic};
use crate::{Error, Result};

/// The trainer's counters at a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps done.
    pub step: u64,
    /// Best eval loss so far.
    pub best_eval_loss: Option<f64>,
    /// Evaluations since the best one.
    pub evals_since_best: u32,
}

/// What a checkpoint holds.
pub struct Checkpoint {
    /// Adapter weights by PEFT key.
    pub adapter: HashMap<String, Tensor>,
    /// AdamW first and second moments, in variable order.
    pub m: Vec<Tensor>,
    /// Second moments.
    pub v: Vec<Tensor>,
    /// Counters.
    pub state: TrainerState,
}

fn save_tensors(path: &Path, tensors: Vec<(String, Tensor)>) -> Result<()> {
    let bytes = safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), None)
        .map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
    write_atomic(path, &bytes)
}

/// Writes checkpoint `ck` under `root` (`OUT/checkpoints`) and moves `latest` to it.
pub fn save(root: &Path, ck: &Checkpoint) -> Result<PathBuf> {
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    let staging = tempfile::Builder::new().prefix(".staging-").tempdir_in(root).map_err(|e| Error::io(root, e))?;
    let mut adapter: Vec<(String, Tensor)> = ck.adapter.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    adapter.sort_by(|a, b| a.0.cmp(&b.0));
    save_tensors(&staging.path().join("adapter_model.safetensors"), adapter)?;
    let moments =
        ck.m.iter()
            .enumerate()
            .map(|(i, t)| (format!("m.{i}"), t.clone()))
            .chain(ck.v.iter().enumerate().map(|(i, t)| (format!("v.{i}"), t.clone())))
            .collect();
    save_tensors(&staging.path().join("optimizer.safetensors"), moments)?;
    let state = serde_json::to_vec_pretty(&ck.state).map_err(|e| Error::msg(e.to_string()))?;
    write_atomic(&staging.path().join("state.json"), &state)?;
    set_mode(staging.path(), 0o755)?;
    let name = format!("step-{:06}", ck.state.step);
    let dest = root.join(&name);
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(|e| Error::io(&dest, e))?;
    }
    std::fs::rename(staging.keep(), &dest).map_err(|e| Error::io(&dest, e))?;
    write_atomic(&root.join("latest"), name.as_bytes())?;
    Ok(dest)
}

/// Loads the checkpoint `latest` points to under `root`, if any.
pub fn load_latest(root: &Path) -> Result<Option<Checkpoint>> {
    let pointer = root.join("latest");
    if !pointer.is_file() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&pointer).map_err(|e| Error::io(&pointer, e))?;
    let dir = root.join(name.trim());
    let load = |f: &str| {
        let p = dir.join(f);
        candle_core::safetensors::load(&p, &Device::Cpu).map_err(|e| Error::bad_input(&p, None, e.to_string()))
    };
    let adapter = load("adapter_model.safetensors")?;
    let mut moments = load("optimizer.safetensors")?;
    let n = moments.len() / 2;
    let take = |prefix: &str, moments: &mut HashMap<String, Tensor>| -> Result<Vec<Tensor>> {
        (0..n)
            .map(|i| {
                moments.remove(&format!("{prefix}.{i}")).ok_or_else(|| {
                    Error::bad_input(dir.join("optimizer.safetensors"), None, format!("missing {prefix}.{i}"))
                })
            })
            .collect()
    };
    let m = take("m", &mut moments)?;
    let v = take("v", &mut moments)?;
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
    let state =
        serde_json::from_str(&text).map_err(|e| Error::bad_input(&state_path, Some(e.line()), e.to_string()))?;
    Ok(Some(Checkpoint { adapter, m, v, state }))
}
