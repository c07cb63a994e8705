//! The store assistant end to end with a real model: `stylevn serve` on
//! SmolLM2-135M-Instruct (fetched by scripts/fetch-models.sh) over a database built
//! from the shipped `data/`, asked over HTTP as `stylevn-assistant`. For order,
//! stock, size, promotion and policy questions the delivered answer carries the
//! database's facts, whether the model stated them or the assistant wrote them from
//! the routed tool results after the model left them out; no answer carries a
//! status or price the database does not have; and the answers' `usage` adds up to
//! the tokens the engine counted.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use rusqlite::Connection;
use serde_json::{json, Value};
use stylevn::data::text::{date_vn, vnd};

struct ServeProcess(Child);

impl Drop for ServeProcess {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn query_one<T: rusqlite::types::FromSql>(db: &Path, sql: &str) -> T {
    Connection::open(db).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Starts `stylevn serve` on SmolLM2 and the store database; returns its base URL.
fn serve(db: &Path, log: &Path) -> (ServeProcess, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stylevn"))
        .arg("serve")
        .arg("--model")
        .arg(common::fetched("smollm2-135m-instruct"))
        .arg("--db")
        .arg(db)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .current_dir(common::root())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let server = ServeProcess(child);
    let lines: Vec<String> = stdout.lines().map_while(Result::ok).take_while(|l| !l.contains("/v1")).collect();
    let line = lines.iter().find(|l| l.contains("chat page: http://")).unwrap_or_else(|| {
        panic!("serve did not announce the assistant: {lines:?}\n{}", std::fs::read_to_string(log).unwrap())
    });
    let base = line.split("chat page: ").nth(1).unwrap().trim_end_matches(')').trim_end_matches('/');
    (server, base.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smollm2_answers_carry_the_database_facts() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("stylevn.db");
    stylevn::data::db::init_db(&common::root().join("data"), &db).unwrap();
    let log = tmp.path().join("serve.log");
    let (_server, base) = tokio::task::block_in_place(|| serve(&db, &log));

    let status: String = query_one(&db, "SELECT status FROM orders WHERE order_id = 'DH250004'");
    let eta: String = query_one(&db, "SELECT eta FROM orders WHERE order_id = 'DH250004'");
    let total: i64 = query_one(&db, "SELECT total_vnd FROM orders WHERE order_id = 'DH250004'");
    let price: i64 = query_one(&db, "SELECT price_vnd FROM products WHERE sku = 'QJ002'");
    let qty: i64 = query_one(&db, "SELECT qty FROM stock WHERE sku = 'QJ002' AND size = '30' AND color = 'Xanh đậm'");
    let codes: Vec<String> = {
        let conn = Connection::open(&db).unwrap();
        let mut st = conn
            .prepare("SELECT code FROM promotions WHERE valid_from <= '2025-06-20' AND valid_to >= '2025-06-20'")
            .unwrap();
        st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let left = if qty == 0 { "hết hàng".to_string() } else { format!("còn {qty}") };
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "Shop ơi đơn DH250004 của em tới đâu rồi ạ? 4 số cuối sđt là 2481",
            vec![status.to_lowercase(), date_vn(&eta), vnd(total)],
        ),
        ("quần jeans QJ002 size 30 màu xanh đậm còn không shop", vec![left, vnd(price)]),
        // áo thun: M is 158-165 cm and 50-58 kg (data/size_charts.csv).
        ("Em cao 1m60 nặng 55kg mặc áo thun size gì ạ?", vec!["size M".into()]),
        ("Shop có mã giảm giá nào không ạ?", codes),
        ("Chính sách đổi trả thế nào ạ?", vec!["14 ngày".into()]),
    ];
    stylevn::tls::install_crypto_provider();
    let client = reqwest::Client::new();
    // The address is announced before the model has loaded: wait for /health.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !client.get(format!("{base}/health")).send().await.is_ok_and(|r| r.status() == 200) {
        assert!(std::time::Instant::now() < deadline, "not ready: {}", std::fs::read_to_string(&log).unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let mut usage = [0u64; 3];
    for (question, facts) in &cases {
        let body = json!({"model": "stylevn-assistant", "temperature": 0, "max_tokens": 96,
            "messages": [{"role": "user", "content": question}]});
        let r = client.post(format!("{base}/v1/chat/completions")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{question}: {}", std::fs::read_to_string(&log).unwrap());
        let v: Value = r.json().await.unwrap();
        for (sum, field) in usage.iter_mut().zip(["prompt_tokens", "completion_tokens", "prompt_tokens_details"]) {
            let n =
                if field == "prompt_tokens_details" { &v["usage"][field]["cached_tokens"] } else { &v["usage"][field] };
            *sum += n.as_u64().unwrap_or_else(|| panic!("{question}: no usage.{field} in {v}"));
        }
        let content = v["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_string();
        for fact in facts {
            assert!(content.contains(fact.as_str()), "{question}: {fact:?} missing from {content:?}");
        }
    }
    // Every turn was routed and ended answered or composed: no safe reply, no fallback.
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    let counter = |name: &str| -> u64 {
        let line = metrics.lines().find(|l| l.starts_with(&format!("stylevn_assistant_{name} "))).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(counter("requests_total"), cases.len() as u64, "{metrics}");
    assert_eq!(counter("routed_calls_total"), cases.len() as u64, "{metrics}");
    assert_eq!(counter("safe_replies_total"), 0, "{metrics}");
    // Every model call of every turn, tool rounds included, is in the answers' usage.
    let engine = |name: &str| -> u64 {
        let line = metrics.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let counted = [
        engine("stylevn_prompt_tokens_total"),
        engine("stylevn_generation_tokens_total"),
        engine("stylevn_prefix_cache_hit_tokens_total"),
    ];
    assert_eq!(usage, counted, "usage (prompt, completion, cached) against the engine's counters");
    assert!(usage[1] > 0);
    eprintln!(
        "SmolLM2-135M-Instruct: {} of {} answers written from the routed tool results",
        counter("composed_answers_total"),
        cases.len()
    );
}
