//! Helpers shared by the integration tests: where fetched models and goldens live.

#![allow(dead_code)]

use std::path::PathBuf;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fetched model file or directory under `models/`; panics with the fix when it is missing.
pub fn fetched(name: &str) -> PathBuf {
    let path = root().join("models").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-models.sh first (the README's test command does)",
        path.display()
    );
    path
}

/// A golden file under `tests/golden/`, parsed as JSON.
pub fn golden(name: &str) -> serde_json::Value {
    let path = root().join("tests").join("golden").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads a JSON array of numbers as f32.
pub fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number") as f32).collect()
}

/// Reads a JSON array of numbers as u32 token ids.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().expect("array").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

/// Largest absolute difference between two equal-length slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
