//! `stylevn synth --import logs.jsonl --anonymize`: real chat logs with phone
//! numbers, emails and addresses come out masked, checked and deduplicated.

use std::process::Command;

use serde_json::{json, Value};

#[test]
fn import_masks_pii_drops_bad_rows_and_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs.jsonl");
    let db = tmp.path().join("stylevn.db");
    stylevn::data::db::init_db(&super::common::root().join("data"), &db).unwrap();
    let chat = |user: &str, answer: &str| {
        json!({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}).to_string()
    };
    let rows = [
        chat(
            "Mình tên Lan, sđt 0912 345 678, mail lan.nguyen@gmail.com, giao về số 12 ngõ 34 Láng Hạ, phường Láng Thượng giúp mình",
            "Dạ em đã ghi nhận số 0912345678 và địa chỉ của chị ạ.",
        ),
        chat("Đơn DH250011 của mình sao rồi, số +84987654321", "Dạ chị đợi em kiểm tra đơn DH250011 nhé."),
        chat("Đơn DH250011 của mình sao rồi, số +84987654321", "Dạ chị đợi em kiểm tra đơn DH250011 nhé."),
        "{not json".to_string(),
        json!({"messages": [{"role": "user", "content": "chỉ có khách"}]}).to_string(),
    ];
    std::fs::write(&logs, rows.join("\n") + "\n").unwrap();
    let out = tmp.path().join("imported.jsonl");
    let run = Command::new(env!("CARGO_BIN_EXE_stylevn"))
        .args(["synth", "--import", logs.to_str().unwrap(), "--anonymize", "--out", out.to_str().unwrap(), "--json"])
        .args(["--db", db.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let summary: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(summary["written"], 2, "{summary}");
    assert_eq!(summary["exact_duplicates"], 1, "{summary}");
    assert_eq!(summary["rejected"]["bad_json"], 1, "{summary}");
    assert_eq!(summary["rejected"]["no_assistant"], 1, "{summary}");
    let text = std::fs::read_to_string(&out).unwrap();
    for secret in ["0912", "345 678", "0912345678", "987654321", "lan.nguyen", "Láng Hạ"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(
        text.contains("[SĐT]") && text.contains("[EMAIL]") && text.contains("[ĐỊA CHỈ]") && text.contains("DH250011")
    );
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let tools = stylevn::data::tools::ToolBox::at_store_date(rusqlite::Connection::open(&db).unwrap()).unwrap();
    assert_eq!(first["tools"], json!(tools.schemas()), "rows get the store's tools");
}
