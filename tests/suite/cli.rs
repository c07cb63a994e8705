//! The binary as a user runs it: help, the acceptance question, import of a GGUF,
//! and clear failures on bad input.

use crate::common;

use std::process::Command;

use common::fetched;

fn stylevn(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stylevn")).args(args).output().expect("run stylevn")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_lists_every_subcommand_and_each_has_help() {
    let out = stylevn(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for sub in ["template", "generate", "import-gguf"] {
        assert!(help.contains(sub), "--help lacks {sub}:\n{help}");
        let sub_help = stylevn(&[sub, "--help"]);
        assert!(sub_help.status.success(), "{sub} --help failed");
        assert!(text(&sub_help.stdout).contains("Usage:"), "{sub} --help");
    }
}

/// Every config file in `configs/` loads into its subcommand's config (same keys as
/// before the structs moved into the library).
#[test]
fn every_config_file_loads() {
    use stylevn::{data, eval, generate, merge, pipeline, quant, rag, serve, tokenize, train};
    fn load<T: serde::de::DeserializeOwned>(path: &std::path::Path) {
        let text = std::fs::read_to_string(path).unwrap();
        if let Err(e) = toml::from_str::<T>(&text) {
            panic!("{}: {e}", path.display());
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut loaded = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        match name.split('-').next().unwrap() {
            "train" => load::<train::TrainConfig>(&path),
            "eval" => load::<eval::EvalConfig>(&path),
            "synth" => load::<data::synth::SynthConfig>(&path),
            "template" => load::<tokenize::TemplateConfig>(&path),
            "merge" => load::<merge::MergeConfig>(&path),
            "quantize" => load::<quant::QuantizeConfig>(&path),
            "generate" => load::<generate::GenerateConfig>(&path),
            "serve" => load::<serve::config::ServeConfig>(&path),
            "catalog" => load::<rag::CatalogConfig>(&path),
            "pipeline" => load::<pipeline::PipelineConfig>(&path),
            // The assistant's own config, read by the serve library.
            "assistant" => continue,
            other => panic!("{}: no config type for `{other}`", path.display()),
        }
        loaded += 1;
    }
    assert!(loaded >= 15, "only {loaded} config files loaded");
}

#[test]
fn smollm2_knows_the_capital_of_france() {
    let dir = fetched("smollm2-135m-instruct");
    let out = stylevn(&[
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--prompt",
        "What is the capital of France?",
        "--temperature",
        "0",
        "--max-new-tokens",
        "16",
        "--stats",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Paris"), "answer: {}", text(&out.stdout));
    assert!(text(&out.stderr).contains("decode:"), "--stats prints timings");
}

#[test]
fn import_gguf_writes_a_loadable_directory() {
    let gguf = fetched("SmolLM2-135M-Instruct.Q4_1.gguf");
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("smol");
    let out = stylevn(&["import-gguf", gguf.to_str().unwrap(), "--out", out_dir.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(summary["tensors"], 272);
    assert_eq!(summary["vocab_size"], 49152);
    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        assert!(out_dir.join(f).is_file(), "{f} missing");
    }
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["num_key_value_heads"], 3);
    assert_eq!(config["tie_word_embeddings"], true);
    assert_eq!(config["rms_norm_eps"], 1e-5);
    // Same bytes as the fetch script's import: the conversion is deterministic.
    let a = std::fs::read(out_dir.join("model.safetensors")).unwrap();
    let b = std::fs::read(fetched("smollm2-135m-instruct").join("model.safetensors")).unwrap();
    assert!(a == b, "two imports of the same GGUF differ");
}

#[test]
fn bad_inputs_fail_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let not_gguf = tmp.path().join("x.gguf");
    std::fs::write(&not_gguf, b"definitely not a gguf file").unwrap();
    let out = stylevn(&["import-gguf", not_gguf.to_str().unwrap(), "--out", tmp.path().join("o").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("x.gguf") && text(&out.stderr).contains("not a GGUF"), "{}", text(&out.stderr));
    assert!(!tmp.path().join("o").exists(), "nothing is written on failure");

    let out = stylevn(&["generate", "--model", tmp.path().join("nope").to_str().unwrap(), "--prompt", "hi"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("nope"), "{}", text(&out.stderr));

    let out = stylevn(&["generate", "--model", not_gguf.to_str().unwrap(), "--prompt", "hi"]);
    assert!(text(&out.stderr).contains("import-gguf"), "points the user to import-gguf: {}", text(&out.stderr));
}

/// A repo id resolves through the HF cache (hf-hub's layout) with HF_HUB_OFFLINE=1.
#[test]
fn repo_id_resolves_from_the_hf_cache_offline() {
    let src = fetched("smollm2-135m-instruct");
    let home = tempfile::tempdir().unwrap();
    let repo = home.path().join("hub").join("models--HuggingFaceTB--SmolLM2-135M-Instruct");
    let snapshot = repo.join("snapshots").join("0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), "0123abcd").unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        std::os::unix::fs::symlink(src.join(f), snapshot.join(f)).unwrap();
    }
    let run = |id: &str| {
        Command::new(env!("CARGO_BIN_EXE_stylevn"))
            .args(["generate", "--model", id, "--prompt", "What is the capital of France?"])
            .args(["--temperature", "0", "--max-new-tokens", "12"])
            .env("HF_HOME", home.path())
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap()
    };
    let out = run("HuggingFaceTB/SmolLM2-135M-Instruct");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Paris"));
    let out = run("HuggingFaceTB/not-cached");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("HF_HUB_OFFLINE"), "{}", text(&out.stderr));
}
