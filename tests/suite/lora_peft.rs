//! Adapters written by stylevn load in PEFT and give the same logits there as in
//! stylevn (golden from scripts/reference/peft_reference.py, which loads the
//! committed tests/golden/tiny-qwen2-lora and tiny-qwen2-lora-rows with
//! `PeftModel.from_pretrained`).

use crate::common;

use candle_core::{DType, Device, Tensor};
use common::{floats, golden, ids, max_abs_diff, root};
use stylevn::lora::{attach, attach_peft, LoraAdapter, LoraConfig};
use stylevn::model::tiny::{uniform, TINY_MODELS};
use stylevn::model::{load_transformer, DenseLoader, LogitsAt, Mode, ModelFiles, Transformer};

fn tiny() -> (tempfile::TempDir, Transformer) {
    let dir = tempfile::tempdir().unwrap();
    TINY_MODELS[0].write_dir(dir.path()).unwrap();
    let model = load_transformer(&ModelFiles::from_dir(dir.path()).unwrap(), DType::F32, &Device::Cpu, &DenseLoader);
    (dir, model.unwrap())
}

/// An adapter with non-zero B (a trained-looking update) on every linear layer.
fn trained_adapter(model: &mut Transformer) -> LoraAdapter {
    let config = LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.05,
        target_modules: vec!["all-linear".into()],
        use_rslora: false,
        layers_to_transform: vec![],
        trainable_token_indices: vec![],
    };
    let adapter = attach(model, &config, 1234).unwrap();
    for (key, var) in adapter.vars() {
        if key.ends_with("lora_B.weight") {
            let v: Vec<f32> = uniform(&key, var.elem_count()).into_iter().map(|u| u * 0.2).collect();
            var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap()).unwrap();
        }
    }
    adapter
}

fn golden_dir() -> std::path::PathBuf {
    root().join("tests/golden/tiny-qwen2-lora")
}

/// LoRA on layer 1's q_proj and down_proj and trained LM-head rows for tokens 5 and
/// 99 (PEFT's `trainable_token_indices` on `lm_head`).
fn rows_config() -> LoraConfig {
    LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: vec!["q_proj".into(), "down_proj".into()],
        use_rslora: false,
        layers_to_transform: vec![1],
        trainable_token_indices: vec![5, 99],
    }
}

/// [`rows_config`] with every variable set to non-base values.
fn adapter_with_rows(model: &mut Transformer) -> LoraAdapter {
    let adapter = attach(model, &rows_config(), 77).unwrap();
    for (key, var) in adapter.vars() {
        if !key.ends_with("lora_A.weight") {
            let v: Vec<f32> = uniform(&key, var.elem_count()).into_iter().map(|u| u * 0.2).collect();
            var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap()).unwrap();
        }
    }
    adapter
}

fn rows_golden_dir() -> std::path::PathBuf {
    root().join("tests/golden/tiny-qwen2-lora-rows")
}

#[test]
fn written_adapter_is_byte_stable_and_peft_shaped() {
    let (_d, mut model) = tiny();
    let adapter = trained_adapter(&mut model);
    let out = tempfile::tempdir().unwrap();
    adapter.save_peft(out.path(), "tiny-qwen2").unwrap();
    if std::env::var("STYLEVN_WRITE_GOLDEN").is_ok() {
        adapter.save_peft(&golden_dir(), "tiny-qwen2").unwrap();
    }
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        assert_eq!(std::fs::read(out.path().join(f)).unwrap(), std::fs::read(golden_dir().join(f)).unwrap(), "{f}");
    }
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["target_modules"].as_array().unwrap().len(), 7);
    let keys: Vec<String> = cfg.as_object().unwrap().keys().cloned().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "PEFT writes sorted keys");
    let st = candle_core::safetensors::load(out.path().join("adapter_model.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(st["base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight"].dims(), &[4, 64]);
    assert_eq!(st["base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight"].dims(), &[32, 4]);
    assert_eq!(st.len(), 2 * 7 * 2);
}

#[test]
fn logits_with_adapter_equal_peft() {
    let g = golden("lora_peft_logits.json");
    let tokens = ids(&g["ids"]);
    let want: Vec<Vec<f32>> = g["logits"].as_array().unwrap().iter().map(floats).collect();
    // Attached in memory, and loaded back from the committed files.
    let (_d, mut fresh) = tiny();
    trained_adapter(&mut fresh);
    let (_e, mut loaded) = tiny();
    attach_peft(&mut loaded, &golden_dir()).unwrap();
    for model in [&fresh, &loaded] {
        let got = model.forward(&tokens, &[tokens.len()], None, Mode::Train, LogitsAt::All).unwrap();
        let got = got.to_vec2::<f32>().unwrap();
        let worst = got.iter().zip(&want).map(|(a, b)| max_abs_diff(a, b)).fold(0.0, f32::max);
        assert!(worst < 1e-4, "max abs diff {worst}");
    }
    // The adapter changes the output (the comparison is not vacuous).
    let (_f, base) = tiny();
    let plain = base.forward(&tokens, &[tokens.len()], None, Mode::Infer, LogitsAt::All).unwrap().to_vec2::<f32>();
    assert!(max_abs_diff(&plain.unwrap()[3], &want[3]) > 1e-2);
}

#[test]
fn mismatched_adapters_are_refused_with_the_key() {
    let (_d, mut model) = tiny();
    let adapter = trained_adapter(&mut model);
    let out = tempfile::tempdir().unwrap();
    adapter.save_peft(out.path(), "tiny-qwen2").unwrap();
    // A model with other widths: shapes differ.
    let dir = tempfile::tempdir().unwrap();
    TINY_MODELS[3].write_dir(dir.path()).unwrap();
    let mut other =
        load_transformer(&ModelFiles::from_dir(dir.path()).unwrap(), DType::F32, &Device::Cpu, &DenseLoader).unwrap();
    let err = attach_peft(&mut other, out.path()).unwrap_err().to_string();
    assert!(err.contains("lora_") && err.contains("shape"), "{err}");
}

/// An adapter with trained LM-head rows is written byte-stably with PEFT's key and
/// config, and gives PEFT's logits, attached in memory and loaded back.
#[test]
fn adapter_with_lm_head_rows_equals_peft() {
    let (_d, mut fresh) = tiny();
    let adapter = adapter_with_rows(&mut fresh);
    let out = tempfile::tempdir().unwrap();
    adapter.save_peft(out.path(), "tiny-qwen2").unwrap();
    if std::env::var("STYLEVN_WRITE_GOLDEN").is_ok() {
        adapter.save_peft(&rows_golden_dir(), "tiny-qwen2").unwrap();
    }
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        let golden = std::fs::read(rows_golden_dir().join(f)).unwrap();
        assert_eq!(std::fs::read(out.path().join(f)).unwrap(), golden, "{f}");
    }
    let st = candle_core::safetensors::load(out.path().join("adapter_model.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(st["base_model.model.lm_head.token_adapter.trainable_tokens_delta"].dims(), &[2, 64]);
    assert_eq!(st.len(), 2 * 2 + 1);

    let g = golden("lora_rows_peft_logits.json");
    let tokens = ids(&g["ids"]);
    let want: Vec<Vec<f32>> = g["logits"].as_array().unwrap().iter().map(floats).collect();
    let (_e, mut loaded) = tiny();
    attach_peft(&mut loaded, &rows_golden_dir()).unwrap();
    for model in [&fresh, &loaded] {
        let got = model.forward(&tokens, &[tokens.len()], None, Mode::Infer, LogitsAt::All).unwrap();
        let got = got.to_vec2::<f32>().unwrap();
        let worst = got.iter().zip(&want).map(|(a, b)| max_abs_diff(a, b)).fold(0.0, f32::max);
        assert!(worst < 1e-4, "max abs diff {worst}");
    }
    // The rows matter: columns 5 and 99 move far more than LoRA on one layer moves the rest.
    let (_f, base) = tiny();
    let plain = base.forward(&tokens, &[tokens.len()], None, Mode::Infer, LogitsAt::All).unwrap();
    let plain = plain.to_vec2::<f32>().unwrap();
    assert!((plain[3][99] - want[3][99]).abs() > 0.1, "{} vs {}", plain[3][99], want[3][99]);
}

/// Trainable rows need an LM head of their own: a tied model is refused, naming why.
#[test]
fn lm_head_rows_on_a_tied_model_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    TINY_MODELS[1].write_dir(dir.path()).unwrap();
    let mut tied =
        load_transformer(&ModelFiles::from_dir(dir.path()).unwrap(), DType::F32, &Device::Cpu, &DenseLoader).unwrap();
    assert!(tied.config().tie_word_embeddings);
    let err = attach(&mut tied, &rows_config(), 1).unwrap_err().to_string();
    assert!(err.contains("trainable_token_indices") && err.contains("ties"), "{err}");
}
