//! `stylevn pipeline` as a build system: stages run once, are skipped while their
//! inputs, command line and `stylevn` build are unchanged, re-run (with their
//! dependants) when an input changes, and an interrupted stage restarts from a clean
//! output directory.

use std::path::Path;
use std::process::Command;

fn pipeline(dir: &Path, config: &Path, extra: &[&str]) -> serde_json::Value {
    pipeline_with(Path::new(env!("CARGO_BIN_EXE_stylevn")), dir, config, extra)
}

fn pipeline_with(exe: &Path, dir: &Path, config: &Path, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(exe)
        .current_dir(dir)
        .args(["pipeline", "--config", config.to_str().unwrap(), "--only", "db,synth", "--no-serve", "--json"])
        .args(extra)
        .output()
        .expect("run stylevn pipeline");
    assert!(out.status.success(), "pipeline failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn statuses(v: &serde_json::Value) -> Vec<(String, String)> {
    v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["status"].as_str().unwrap().to_string()))
        .collect()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[test]
fn stages_skip_when_up_to_date_and_rerun_when_inputs_change() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("policies")).unwrap();
    for entry in std::fs::read_dir(repo.join("data")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "csv") {
            std::fs::copy(&p, data.join(p.file_name().unwrap())).unwrap();
        }
    }
    for entry in std::fs::read_dir(repo.join("data/policies")).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, data.join("policies").join(p.file_name().unwrap())).unwrap();
    }
    let config = dir.path().join("pipeline.toml");
    std::fs::write(&config, "name = \"t\"\ndata_dir = \"data\"\ndb = \"data/store.db\"\nsynth_n = 50\n").unwrap();

    let first = pipeline(dir.path(), &config, &[]);
    assert_eq!(statuses(&first), vec![pair("db", "ran"), pair("synth", "ran")]);
    let chats = dir.path().join("runs/t/chats.jsonl");
    assert_eq!(std::fs::read_to_string(&chats).unwrap().lines().count(), 50);
    assert!(dir.path().join("runs/t/summary.md").is_file());

    let second = pipeline(dir.path(), &config, &[]);
    assert_eq!(statuses(&second), vec![pair("db", "up to date"), pair("synth", "up to date")]);

    // A changed policy changes the database, so both stages run again.
    let policy = data.join("policies/doi-tra.md");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, format!("{text}\n\nĐổi trả trong 30 ngày.\n")).unwrap();
    let third = pipeline(dir.path(), &config, &[]);
    assert_eq!(statuses(&third), vec![pair("db", "ran"), pair("synth", "ran")]);

    // A changed setting re-runs only the stage it feeds.
    std::fs::write(&config, "name = \"t\"\ndata_dir = \"data\"\ndb = \"data/store.db\"\nsynth_n = 40\n").unwrap();
    let fourth = pipeline(dir.path(), &config, &[]);
    assert_eq!(statuses(&fourth), vec![pair("db", "up to date"), pair("synth", "ran")]);
    assert_eq!(std::fs::read_to_string(&chats).unwrap().lines().count(), 40);

    // A deleted output is rebuilt; --force re-runs everything.
    std::fs::remove_file(&chats).unwrap();
    assert_eq!(statuses(&pipeline(dir.path(), &config, &[]))[1], pair("synth", "ran"));
    let forced = pipeline(dir.path(), &config, &["--force"]);
    assert_eq!(statuses(&forced), vec![pair("db", "ran"), pair("synth", "ran")]);

    // Another stylevn build (here the same program with one byte more, which the
    // loader ignores) may write other outputs from the same inputs: everything runs.
    let other = dir.path().join("stylevn-other");
    let mut bytes = std::fs::read(env!("CARGO_BIN_EXE_stylevn")).unwrap();
    bytes.push(0);
    std::fs::write(&other, bytes).unwrap();
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let rebuilt = pipeline_with(&other, dir.path(), &config, &[]);
    assert_eq!(statuses(&rebuilt), vec![pair("db", "ran"), pair("synth", "ran")]);
    assert_eq!(statuses(&pipeline_with(&other, dir.path(), &config, &[]))[1], pair("synth", "up to date"));
}

#[test]
fn unknown_stage_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_stylevn"))
        .args(["pipeline", "--only", "db,bake", "--no-serve"])
        .output()
        .expect("run stylevn pipeline");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--only bake: no such stage"));
}
