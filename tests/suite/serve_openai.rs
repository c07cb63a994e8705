//! The official `openai` Python client against `stylevn serve` on SmolLM2-135M-Instruct
//! (scripts/serve_openai_client.py: non-streaming, streaming that reassembles to the
//! same text, include_usage, tool calls, a tool-result round trip, error types), then
//! SIGTERM: the server drains and exits 0.
//!
//! Skips, saying why, when models/smollm2-135m-instruct is missing (scripts/test.sh
//! fetches it) or when python3 cannot import `openai` (`pip install openai`).

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn openai_python_client_round_trips() {
    let model = common::root().join("models/smollm2-135m-instruct");
    if !model.join("config.json").exists() {
        eprintln!("SKIPPED: {} is missing; run scripts/fetch-models.sh", model.display());
        return;
    }
    let has_openai = Command::new("python3").args(["-c", "import openai"]).status().is_ok_and(|s| s.success());
    if !has_openai {
        eprintln!("SKIPPED: python3 with the `openai` package is not available (pip install openai)");
        return;
    }
    let mut server = Command::new(env!("CARGO_BIN_EXE_stylevn"))
        .args(["serve", "--model", model.to_str().unwrap(), "--port", "0", "--max-num-seqs", "4"])
        .current_dir(common::root())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let banner = lines.next().expect("the server prints its address").unwrap();
    let base_url = banner.split(" on ").nth(1).expect("serving MODEL on URL").trim().to_string();
    assert!(banner.starts_with("serving smollm2-135m-instruct on http://127.0.0.1:"), "{banner}");

    let script = common::root().join("scripts/serve_openai_client.py");
    let out = Command::new("python3")
        .args([script.to_str().unwrap(), "--base-url", &base_url, "--model", "smollm2-135m-instruct"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let status = server.wait().unwrap();
    assert!(out.status.success(), "client script failed:\n{stdout}\n{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["tool_call"]["name"], "get_order_status");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(status.success(), "exit after SIGTERM: {status}");
    assert_eq!(rest, ["stopped: drained in-flight requests"]);
}
