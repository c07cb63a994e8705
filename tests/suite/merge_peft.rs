//! `stylevn merge` equals PEFT's `merge_and_unload()` (golden weights and logits from
//! scripts/reference/peft_merge.py, which merges the committed
//! tests/golden/tiny-qwen2-lora with PEFT), writes a complete sharded directory, and
//! refuses adapters that do not fit the base.

use crate::common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::{floats, golden, ids, max_abs_diff, root};
use stylevn::merge::{merge_adapter, MergeOptions};
use stylevn::model::tiny::TINY_MODELS;
use stylevn::model::{load_transformer, DenseLoader, LogitsAt, Mode, ModelFiles};

fn adapter() -> std::path::PathBuf {
    root().join("tests/golden/tiny-qwen2-lora")
}

fn merge(base: &Path, adapter: &Path, out: &Path, dtype: Option<DType>, shard: u64) -> stylevn::Result<()> {
    let files = ModelFiles::from_dir(base)?;
    merge_adapter(&files, adapter, out, &MergeOptions { dtype, max_shard_bytes: shard }, &mut |_, _| {}).map(|_| ())
}

fn all_tensors(dir: &Path) -> HashMap<String, Tensor> {
    let files = ModelFiles::from_dir(dir).unwrap();
    let mut out = HashMap::new();
    for f in &files.weights {
        out.extend(candle_core::safetensors::load(f, &Device::Cpu).unwrap());
    }
    out
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn merged_weights_equal_peft_merge_and_unload() {
    let base = tempfile::tempdir().unwrap();
    TINY_MODELS[0].write_dir(base.path()).unwrap();
    let out = tempfile::tempdir().unwrap();
    // 40 kB shards: the tiny model (~90k f32 values) spans several.
    merge(base.path(), &adapter(), out.path(), None, 40_000).unwrap();
    let merged = all_tensors(out.path());
    let want =
        candle_core::safetensors::load(root().join("tests/golden/merge_tiny_qwen2.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(want.len(), 14);
    for (name, w) in &want {
        let diff = max_abs_diff(&values(&merged[name]), &values(w));
        assert!(diff < 1e-5, "{name}: max |diff| {diff}");
    }
    // Everything else is the base, bit for bit.
    let base_tensors = TINY_MODELS[0].tensors().unwrap();
    assert_eq!(merged.len(), base_tensors.len());
    for (name, t) in &base_tensors {
        if !want.contains_key(name) {
            assert_eq!(values(&merged[name]), values(t), "{name}");
        }
    }
}

#[test]
fn merged_directory_is_sharded_complete_and_gives_transformers_logits() {
    let base = tempfile::tempdir().unwrap();
    TINY_MODELS[0].write_dir(base.path()).unwrap();
    std::fs::write(base.path().join("generation_config.json"), br#"{"eos_token_id": 2}"#).unwrap();
    let out = tempfile::tempdir().unwrap();
    merge(base.path(), &adapter(), out.path(), None, 40_000).unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("model.safetensors.index.json")).unwrap()).unwrap();
    let map = index["weight_map"].as_object().unwrap();
    assert_eq!(map.len(), TINY_MODELS[0].tensors().unwrap().len());
    let shards: std::collections::BTreeSet<&str> = map.values().map(|v| v.as_str().unwrap()).collect();
    assert!(shards.len() > 1 && shards.iter().all(|s| s.ends_with(&format!("-of-{:05}.safetensors", shards.len()))));
    for f in ["config.json", "generation_config.json", "stylevn_provenance.json"] {
        assert!(out.path().join(f).is_file(), "{f} missing");
    }
    let note: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("stylevn_provenance.json")).unwrap()).unwrap();
    assert_eq!(note["merged_modules"], 14);
    assert_eq!(note["scale"], 2.0);

    let g = golden("merge_tiny_qwen2_logits.json");
    let model =
        load_transformer(&ModelFiles::from_dir(out.path()).unwrap(), DType::F32, &Device::Cpu, &DenseLoader).unwrap();
    let tokens = ids(&g["ids"]);
    let logits = model.forward(&tokens, &[tokens.len()], None, Mode::Infer, LogitsAt::All).unwrap();
    let got: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
    let want: Vec<f32> = g["logits"].as_array().unwrap().iter().flat_map(floats).collect();
    let diff = max_abs_diff(&got, &want);
    assert!(diff < 1e-4, "logits differ from transformers' merged model by {diff}");
}

/// Trained LM-head rows (tests/golden/tiny-qwen2-lora-rows) replace the base's rows
/// as PEFT's merge does; every tensor PEFT's merge changes, and only those, change.
#[test]
fn merged_lm_head_rows_equal_peft() {
    let base = tempfile::tempdir().unwrap();
    TINY_MODELS[0].write_dir(base.path()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let adapter = root().join("tests/golden/tiny-qwen2-lora-rows");
    merge(base.path(), &adapter, out.path(), None, 1 << 30).unwrap();
    let merged = all_tensors(out.path());
    let want =
        candle_core::safetensors::load(root().join("tests/golden/merge_tiny_qwen2_rows.safetensors"), &Device::Cpu)
            .unwrap();
    let mut changed: Vec<&str> = want.keys().map(String::as_str).collect();
    changed.sort();
    assert_eq!(
        changed,
        ["lm_head.weight", "model.layers.1.mlp.down_proj.weight", "model.layers.1.self_attn.q_proj.weight"]
    );
    for (name, w) in &want {
        let diff = max_abs_diff(&values(&merged[name]), &values(w));
        assert!(diff < 1e-5, "{name}: max |diff| {diff}");
    }
    for (name, t) in &TINY_MODELS[0].tensors().unwrap() {
        if !want.contains_key(name) {
            assert_eq!(values(&merged[name]), values(t), "{name}");
        }
    }
}

#[test]
fn stores_the_requested_dtype() {
    let base = tempfile::tempdir().unwrap();
    TINY_MODELS[0].write_dir(base.path()).unwrap();
    let out = tempfile::tempdir().unwrap();
    merge(base.path(), &adapter(), out.path(), Some(DType::BF16), 5_000_000_000).unwrap();
    assert!(out.path().join("model.safetensors").is_file());
    assert!(!out.path().join("model.safetensors.index.json").exists());
    let merged = all_tensors(out.path());
    assert!(merged.values().all(|t| t.dtype() == DType::BF16));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["torch_dtype"], "bfloat16");
}

#[test]
fn refuses_adapters_that_do_not_fit_the_base() {
    let out = tempfile::tempdir().unwrap();
    // A Qwen2 adapter on the Llama fixture: shapes differ.
    let llama = tempfile::tempdir().unwrap();
    TINY_MODELS[2].write_dir(llama.path()).unwrap();
    let err = merge(llama.path(), &adapter(), out.path(), None, 1 << 30).unwrap_err().to_string();
    assert!(err.contains("wrong base model"), "{err}");

    // An unknown tensor in the adapter.
    let base = tempfile::tempdir().unwrap();
    TINY_MODELS[0].write_dir(base.path()).unwrap();
    let bad = tempfile::tempdir().unwrap();
    std::fs::copy(adapter().join("adapter_config.json"), bad.path().join("adapter_config.json")).unwrap();
    let mut tensors =
        candle_core::safetensors::load(adapter().join("adapter_model.safetensors"), &Device::Cpu).unwrap();
    tensors.insert(
        "base_model.model.lm_head.lora_A.weight".into(),
        Tensor::zeros((4, 64), DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&tensors, bad.path().join("adapter_model.safetensors")).unwrap();
    let err = merge(base.path(), bad.path(), out.path(), None, 1 << 30).unwrap_err().to_string();
    assert!(err.contains("lm_head.lora_A.weight") && err.contains("not a decoder-layer projection"), "{err}");

    // A lora_A without its lora_B.
    tensors.remove("base_model.model.lm_head.lora_A.weight");
    tensors.remove("base_model.model.model.layers.0.mlp.up_proj.lora_B.weight");
    candle_core::safetensors::save(&tensors, bad.path().join("adapter_model.safetensors")).unwrap();
    let err = merge(base.path(), bad.path(), out.path(), None, 1 << 30).unwrap_err().to_string();
    assert!(err.contains("lacks its lora_A or lora_B"), "{err}");

    // A quantized base.
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(base.path().join("config.json")).unwrap()).unwrap();
    config["quantization_config"] =
        serde_json::json!({"quant_method": "awq", "bits": 4, "group_size": 32, "zero_point": true, "version": "gemm"});
    std::fs::write(base.path().join("config.json"), serde_json::to_vec(&config).unwrap()).unwrap();
    let err = merge(base.path(), &adapter(), out.path(), None, 1 << 30).unwrap_err().to_string();
    assert!(err.contains("quantized"), "{err}");
}
