//! `stylevn synth --offline`: 2,000 distinct conversations in under a minute,
//! every intent covered, and every order status, price, stock figure and promotion
//! an assistant states checked against the database with SQL of its own.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use regex::Regex;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use stylevn::conversation::facts::{extract_facts, FactKey, FactKind};
use stylevn::conversation::grounding::letter_codes;
use stylevn::conversation::{check, Evidence, EvidencePolicy, Source};
use stylevn::data::db::{init_db, load_store};
use stylevn::data::grounding::ungrounded;
use stylevn::data::passages::split_context;
use stylevn::data::synth::{generate_offline, OfflineOptions, INTENT_WEIGHTS};
use stylevn::data::tools::ToolBox;

fn build_db(dir: &Path) -> PathBuf {
    let db = dir.join("stylevn.db");
    init_db(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data"), &db).unwrap();
    db
}

fn stylevn(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stylevn")).args(args).output().expect("run stylevn")
}

fn read_rows(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn content(m: &Value) -> &str {
    m["content"].as_str().unwrap_or("")
}

/// The amounts of money (VND) `text` states.
fn money(text: &str) -> Vec<i64> {
    extract_facts(text)
        .into_iter()
        .filter_map(|f| match (f.kind, f.key) {
            (FactKind::Money, FactKey::Number(v)) => Some(v / 1000),
            _ => None,
        })
        .collect()
}

/// A date fact as ISO `YYYY-MM-DD`, or `MM-DD` when written without a year.
fn iso_date(d: u32, m: u32, y: Option<u32>) -> String {
    y.map_or(format!("{m:02}-{d:02}"), |y| format!("{y:04}-{m:02}-{d:02}"))
}

fn vn_date(iso: &str) -> String {
    let p: Vec<&str> = iso.split('-').collect();
    format!("{}/{}/{}", p[2], p[1], p[0])
}

/// Checks one tool call's answer against the database; returns what was checked.
fn check_answer(db: &Connection, name: &str, args: &Value, answer: &str) -> &'static str {
    let s = |k: &str| args[k].as_str().unwrap_or("").to_string();
    let lower = answer.to_lowercase();
    match name {
        "get_order_status" => {
            let row: Option<(String, String, String, String, i64)> = db
                .query_row(
                    "SELECT customer_phone, status, eta, tracking_code, total_vnd FROM orders WHERE order_id = ?1",
                    params![s("order_id")],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()
                .unwrap();
            match row {
                Some((owner, status, eta, tracking, total)) => {
                    // The details (items, total, tracking) only with the phone's last 4
                    // digits or the whole number.
                    let phone = s("phone");
                    let owns = phone == owner || (phone.len() == 4 && owner.ends_with(&phone));
                    if !owns {
                        assert!(
                            money(answer).is_empty() && (tracking.is_empty() || !answer.contains(&tracking)),
                            "details without the phone: {answer}"
                        );
                    }
                    assert!(lower.contains(&status.to_lowercase()), "status {status} not in {answer}");
                    for other in ["Đang chuẩn bị", "Đang giao", "Đã giao", "Đã hủy", "Đang hoàn trả"] {
                        if other != status {
                            assert!(!answer.contains(&format!("\"{other}\"")), "{answer}");
                        }
                    }
                    for f in extract_facts(answer) {
                        match (f.kind, f.key) {
                            (_, FactKey::Date(d, m, y)) => {
                                let date = iso_date(d, m, y);
                                assert!(eta.ends_with(&date), "{date} is not the eta {eta}: {answer}")
                            }
                            (FactKind::Money, FactKey::Number(v)) => {
                                let m = v / 1000;
                                let ok: bool = m == total
                                    || db
                                        .query_row(
                                            "SELECT COUNT(*) FROM order_items WHERE order_id = ?1 AND price_vnd = ?2",
                                            params![s("order_id"), m],
                                            |r| r.get::<_, i64>(0),
                                        )
                                        .unwrap()
                                        > 0;
                                assert!(ok, "{m} is neither the total nor an item price: {answer}");
                            }
                            (_, FactKey::Code(c)) => {
                                let ok = c == s("order_id").to_lowercase() || c == tracking.to_lowercase();
                                assert!(ok, "{c}: {answer}")
                            }
                            _ => {}
                        }
                    }
                    for c in letter_codes(answer) {
                        assert!(c == s("order_id") || c == tracking, "{c}: {answer}");
                    }
                    if !eta.is_empty() && status != "Đã hủy" && (status != "Đang hoàn trả" || answer.contains('/'))
                    {
                        assert!(answer.contains(&vn_date(&eta)) || status == "Đang hoàn trả", "eta {eta}: {answer}");
                    }
                    "order"
                }
                None => {
                    assert!(
                        lower.contains("chưa") || lower.contains("không có đơn"),
                        "a failed lookup says so: {answer}"
                    );
                    assert!(extract_facts(answer).iter().all(|f| f.kind == FactKind::Code), "{answer}");
                    "order_not_found"
                }
            }
        }
        "get_stock" => {
            let price: i64 =
                db.query_row("SELECT price_vnd FROM products WHERE sku = ?1", params![s("sku")], |r| r.get(0)).unwrap();
            for m in money(answer) {
                assert_eq!(m, price, "{answer}");
            }
            if args.get("color").is_some() {
                let qty: i64 = db
                    .query_row(
                        "SELECT qty FROM stock WHERE sku = ?1 AND size = ?2 AND color = ?3",
                        params![s("sku"), s("size"), s("color")],
                        |r| r.get(0),
                    )
                    .unwrap();
                if qty == 0 {
                    assert!(lower.contains("hết hàng"), "{answer}");
                } else {
                    assert!(
                        answer.contains(&format!("{qty} sản phẩm")) || answer.contains(&format!("{qty} chiếc")),
                        "qty {qty}: {answer}"
                    );
                }
                "stock"
            } else if args.get("size").is_some() {
                let re = Regex::new(r"([\p{L} ]+?) \(còn (\d+)\)").unwrap();
                for c in re.captures_iter(answer) {
                    let color = c[1].trim().trim_start_matches(", ").trim_start_matches("màu: ").trim();
                    let color = color.rsplit(": ").next().unwrap();
                    let qty: i64 = db
                        .query_row(
                            "SELECT qty FROM stock WHERE sku = ?1 AND size = ?2 AND color = ?3",
                            params![s("sku"), s("size"), color],
                            |r| r.get(0),
                        )
                        .unwrap_or_else(|e| panic!("{color:?}: {e}: {answer}"));
                    assert_eq!(qty, c[2].parse::<i64>().unwrap(), "{answer}");
                }
                "stock_alternatives"
            } else {
                assert!(money(answer).contains(&price), "price {price}: {answer}");
                "price"
            }
        }
        "search_products" => {
            let re = Regex::new(r"\(mã (\w+)\): ([\d.]+)đ").unwrap();
            for c in re.captures_iter(answer) {
                let price: i64 = db
                    .query_row("SELECT price_vnd FROM products WHERE sku = ?1", params![&c[1]], |r| r.get(0))
                    .unwrap();
                assert_eq!(price, c[2].replace('.', "").parse::<i64>().unwrap(), "{answer}");
            }
            "search"
        }
        "get_promotions" => {
            let re =
                Regex::new(r"- (\w+): giảm (\d+)%(?: cho đơn từ ([\d.]+)đ|, không cần đơn tối thiểu) \(đến ([\d/]+)\)")
                    .unwrap();
            for c in re.captures_iter(answer) {
                let (pct, min, to): (i64, i64, String) = db
                    .query_row(
                        "SELECT discount_pct, min_order_vnd, valid_to FROM promotions WHERE code = ?1",
                        params![&c[1]],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .unwrap();
                assert_eq!(pct, c[2].parse::<i64>().unwrap(), "{answer}");
                assert_eq!(min, c.get(3).map_or(0, |m| m.as_str().replace('.', "").parse().unwrap()), "{answer}");
                assert_eq!(vn_date(&to), &c[4], "{answer}");
            }
            let today: String =
                db.query_row("SELECT value FROM meta WHERE key = 'store_today'", [], |r| r.get(0)).unwrap();
            if let Some(code) = args["code"].as_str() {
                let (from, to): (String, String) = db
                    .query_row("SELECT valid_from, valid_to FROM promotions WHERE code = ?1", params![code], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .unwrap();
                let state = if today < from {
                    "chưa bắt đầu"
                } else if today > to {
                    "đã hết hạn"
                } else {
                    "đang áp dụng"
                };
                assert!(answer.contains(state), "{code} is {state}: {answer}");
            }
            "promotions"
        }
        "get_size_chart" => {
            let re = Regex::new(r"size (\w+) bên em dành cho người cao ([\d-]+)cm, nặng ([\d-]+)kg").unwrap();
            if let Some(c) = re.captures(answer) {
                let (h, w): (String, String) = db
                    .query_row(
                        "SELECT height_cm, weight_kg FROM size_charts WHERE category = ?1 AND size = ?2",
                        params![s("category"), &c[1]],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .unwrap();
                assert_eq!((&c[2], &c[3]), (h.as_str(), w.as_str()), "{answer}");
            }
            "size"
        }
        "get_policy" => {
            let text: String =
                db.query_row("SELECT text FROM policies WHERE topic = ?1", params![s("topic")], |r| r.get(0)).unwrap();
            let allowed = [Evidence::new(Source::ToolResult, text)];
            let missing = check(answer, &allowed, &EvidencePolicy::SYNTH_FILTER).ungrounded;
            assert!(missing.is_empty(), "{missing:?} are not in policy {}: {answer}", s("topic"));
            "policy"
        }
        other => panic!("unknown tool {other}"),
    }
}

/// Checks every conversation; returns how many answers of each kind were checked.
fn check_against_db(db: &Connection, rows: &[Value]) -> BTreeMap<&'static str, usize> {
    let mut checked = BTreeMap::new();
    for row in rows {
        let messages = row["messages"].as_array().unwrap();
        let bad = ungrounded(messages);
        assert!(bad.is_empty(), "ungrounded {bad:?} in {row}");
        for (i, m) in messages.iter().enumerate() {
            let Some(call) = m["tool_calls"].as_array().and_then(|c| c.first()) else { continue };
            let name = call["function"]["name"].as_str().unwrap();
            let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
            let answer = messages[i + 1..]
                .iter()
                .find(|m| m["role"] == "assistant" && !content(m).is_empty())
                .map(content)
                .unwrap_or_else(|| panic!("no answer after {name}: {row}"));
            *checked.entry(check_answer(db, name, &args, answer)).or_insert(0) += 1;
        }
        let intent = row["intent"].as_str().unwrap();
        if intent.starts_with("refuse_") || intent == "no_info" {
            assert!(messages.iter().all(|m| m.get("tool_calls").is_none()), "{row}");
            for m in messages.iter().filter(|m| m["role"] == "assistant") {
                assert!(!content(m).chars().any(|c| c.is_ascii_digit()), "a refusal states no figure: {row}");
            }
        }
        if let Some(kind) = ["product_context", "policy_context"].into_iter().find(|k| *k == intent) {
            // Answered from the passages retrieval put before one question: no tool, the
            // system prompt as always, and the answer's figures among the passages
            // (`ungrounded` above reads them there).
            assert!(messages.iter().all(|m| m.get("tool_calls").is_none()), "{row}");
            assert_eq!(content(&messages[0]), stylevn::data::SYSTEM_PROMPT, "{row}");
            let asked: Vec<Vec<&str>> = messages
                .iter()
                .filter(|m| m["role"] == "user")
                .map(|m| split_context(content(m)).0)
                .filter(|p| !p.is_empty())
                .collect();
            assert_eq!(asked.len(), 1, "passages before exactly one question: {row}");
            let passages = &asked[0];
            let answers: Vec<&str> = messages.iter().filter(|m| m["role"] == "assistant").map(content).collect();
            let answer = answers.join("\n");
            if kind == "product_context" {
                assert_eq!(passages.len(), 2, "the product beside another: {row}");
                let named = passages.iter().filter(|p| answer.contains(p.split(". ").next().unwrap())).count();
                assert!(named >= 1, "the answer names a product of the passages: {row}");
            } else {
                assert!(!passages.is_empty(), "{row}");
            }
            *checked.entry(kind).or_insert(0) += 1;
        }
        if intent == "no_info" {
            assert!(content(messages.last().unwrap()).contains("em chưa có thông tin"), "{row}");
        }
    }
    checked
}

#[test]
fn offline_synth_writes_2000_grounded_conversations_in_under_a_minute() {
    let tmp = tempfile::tempdir().unwrap();
    let db = build_db(tmp.path());
    let out = tmp.path().join("synth.jsonl");
    let started = Instant::now();
    let run = stylevn(&[
        "synth",
        "--offline",
        "--db",
        db.to_str().unwrap(),
        "--n",
        "2000",
        "--seed",
        "7",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    let elapsed = started.elapsed();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    let summary: Value = serde_json::from_slice(&run.stdout).unwrap();
    let rows = read_rows(&out);
    assert_eq!(rows.len(), 2000);
    assert_eq!(summary["written"], 2000);

    let dialogues: HashSet<String> = rows
        .iter()
        .map(|r| r["messages"].as_array().unwrap().iter().skip(1).map(|m| m.to_string()).collect())
        .collect();
    assert_eq!(dialogues.len(), 2000, "conversations are distinct");
    let with_tools =
        rows.iter().filter(|r| r["messages"].as_array().unwrap().iter().any(|m| m.get("tool_calls").is_some())).count();
    let refusals = rows.iter().filter(|r| r["intent"].as_str().unwrap().starts_with("refuse_")).count();
    assert!(with_tools >= 200, "{with_tools} tool-call conversations");
    assert!(refusals >= 100, "{refusals} refusals");
    assert_eq!(summary["with_tool_calls"], with_tools);
    assert_eq!(summary["refusals"], refusals);
    for (intent, _) in INTENT_WEIGHTS {
        let n = rows.iter().filter(|r| r["intent"] == intent.name()).count();
        assert!(n >= 20, "intent {} has {n} conversations", intent.name());
    }
    // Varied phrasing: customer turns without diacritics, and many distinct first turns per intent.
    let users: Vec<&str> = rows
        .iter()
        .flat_map(|r| r["messages"].as_array().unwrap())
        .filter(|m| m["role"] == "user")
        .map(content)
        .collect();
    let plain = users.iter().filter(|u| u.is_ascii()).count();
    assert!(plain >= 100, "{plain} customer turns without diacritics");
    let tools = rows[0]["tools"].as_array().unwrap();
    let conn = Connection::open(&db).unwrap();
    let store_tools = ToolBox::at_store_date(Connection::open(&db).unwrap()).unwrap();
    assert_eq!(tools, &store_tools.schemas(), "the store's shared schemas");
    let checked = check_against_db(&conn, &rows);
    let kinds = ["order", "order_not_found", "stock", "price", "search", "promotions", "size", "policy"];
    for kind in kinds.into_iter().chain(["product_context", "policy_context"]) {
        assert!(checked.get(kind).copied().unwrap_or(0) >= 20, "only {checked:?} answers checked");
    }
}

#[test]
fn the_db_check_catches_a_wrong_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let conn = Connection::open(build_db(tmp.path())).unwrap();
    let store = load_store(&conn).unwrap();
    let tools = ToolBox::at_store_date(Connection::open(tmp.path().join("stylevn.db")).unwrap()).unwrap();
    let opts = OfflineOptions { n: 300, seed: 3, near_dup_threshold: 0.85 };
    let (examples, _) = generate_offline(&tools, &store, opts, |_| {}).unwrap();
    let rows: Vec<Value> = examples.iter().map(|e| e.to_json(&tools.schemas())).collect();
    check_against_db(&conn, &rows);
    // Change the stock figure of one answer: both the grounding and the SQL check must object.
    let mut row = rows
        .iter()
        .find(|r| {
            r["intent"] == "stock" && content(r["messages"].as_array().unwrap().last().unwrap()).contains(" sản phẩm")
        })
        .unwrap()
        .clone();
    let last = row["messages"].as_array().unwrap().len() - 1;
    let answer = content(&row["messages"][last]).to_string();
    let re = Regex::new(r"còn (\d+) sản phẩm").unwrap();
    let n: i64 = re.captures(&answer).unwrap()[1].parse().unwrap();
    let wrong = re.replace(&answer, format!("còn {} sản phẩm", n + 1).as_str()).into_owned();
    row["messages"][last]["content"] = Value::String(wrong);
    assert!(!ungrounded(row["messages"].as_array().unwrap()).is_empty());
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_against_db(&conn, std::slice::from_ref(&row))));
    assert!(result.is_err(), "the SQL check accepted a wrong stock figure");
}

#[test]
fn offline_synth_is_deterministic_per_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let db = build_db(tmp.path());
    let run = |seed: &str, name: &str| {
        let out = tmp.path().join(name);
        let r = stylevn(&[
            "synth",
            "--offline",
            "--db",
            db.to_str().unwrap(),
            "--n",
            "200",
            "--seed",
            seed,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        assert!(String::from_utf8_lossy(&r.stdout).contains("200 conversations"), "summary line");
        std::fs::read(out).unwrap()
    };
    assert_eq!(run("11", "a.jsonl"), run("11", "b.jsonl"));
    assert_ne!(run("11", "a.jsonl"), run("12", "c.jsonl"));
    // A missing database is a clear error.
    let r = stylevn(&[
        "synth",
        "--offline",
        "--db",
        "/nonexistent/x.db",
        "--n",
        "5",
        "--out",
        tmp.path().join("x").to_str().unwrap(),
    ]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("stylevn db init"));
}

#[test]
fn template_consumes_the_synth_output() {
    let tokenizer = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/qwen-tokenizer/tokenizer.json");
    assert!(tokenizer.exists(), "{} is missing: run scripts/fetch-models.sh first", tokenizer.display());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("qwen");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("config.json"), "{}").unwrap();
    std::fs::copy(&tokenizer, model.join("tokenizer.json")).unwrap();
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("tests/golden/chat_templates.json")).unwrap()).unwrap();
    let mut config = golden["special_tokens"].clone();
    config["chat_template"] =
        Value::String(std::fs::read_to_string(root.join("tests/fixtures/qwen2.5_chat_template.jinja")).unwrap());
    std::fs::write(model.join("tokenizer_config.json"), config.to_string()).unwrap();

    let db = build_db(tmp.path());
    let synth = tmp.path().join("synth.jsonl");
    let r = stylevn(&[
        "synth",
        "--offline",
        "--db",
        db.to_str().unwrap(),
        "--n",
        "300",
        "--seed",
        "5",
        "--out",
        synth.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let train = tmp.path().join("train.jsonl");
    let r = stylevn(&[
        "template",
        "--model",
        model.to_str().unwrap(),
        "--in",
        synth.to_str().unwrap(),
        "--out",
        train.to_str().unwrap(),
        "--strict",
        "--max-len",
        "4096",
        "--json",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let summary: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(summary["bad"], 0, "{summary}");
    assert_eq!(summary["kept"], 300, "{summary}");
}

/// `synth` from another shop's store (`tests/fixtures/store-b`: order ids `#100234`
/// and `SO-2026-0042`, SKUs like `QJ-01-BLK`, sandals sized by foot): every id a
/// conversation uses is that store's, the unknown order ids are shaped like its own,
/// and the order, stock, promotion and size answers check against its database.
/// (Policy answers are hand-written for the demo store's policies, so they are not
/// checked here.)
#[test]
fn offline_synth_works_from_another_store() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("store-b.db");
    init_db(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-b"), &db).unwrap();
    let conn = Connection::open(&db).unwrap();
    let store = load_store(&conn).unwrap();
    let tools = ToolBox::at_store_date(Connection::open(&db).unwrap()).unwrap();
    let opts = OfflineOptions { n: 200, seed: 5, near_dup_threshold: 0.85 };
    let (examples, _) = generate_offline(&tools, &store, opts, |_| {}).unwrap();
    let shape = |id: &str| id.chars().map(|c| if c.is_ascii_digit() { '9' } else { c }).collect::<String>();
    let shapes: HashSet<String> = store.orders.iter().map(|o| shape(&o.order_id)).collect();
    let mut not_found = 0;
    let mut checked = BTreeMap::new();
    for row in examples.iter().map(|e| e.to_json(&tools.schemas())) {
        let intent = row["intent"].as_str().unwrap();
        let messages = row["messages"].as_array().unwrap();
        if ["order_status", "order_id_only", "order_not_found", "stock", "price", "promotions", "size_advice"]
            .contains(&intent)
        {
            assert!(ungrounded(messages).is_empty(), "ungrounded {:?} in {row}", ungrounded(messages));
        }
        for (i, m) in messages.iter().enumerate() {
            let Some(call) = m["tool_calls"].as_array().and_then(|c| c.first()) else { continue };
            let name = call["function"]["name"].as_str().unwrap();
            let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
            let answer = messages[i + 1..].iter().find(|m| m["role"] == "assistant" && !content(m).is_empty());
            let answer = answer.map(content).unwrap_or_else(|| panic!("no answer after {name}: {row}"));
            match name {
                "get_order_status" if store.order(args["order_id"].as_str().unwrap()).is_none() => {
                    let id = args["order_id"].as_str().unwrap();
                    assert_eq!(intent, "order_not_found", "{row}");
                    assert!(shapes.contains(&shape(id)), "{id} is not shaped like this store's ids");
                    assert!(answer.contains(id) && !answer.contains("DH"), "{answer}");
                    not_found += 1;
                }
                "get_stock" => {
                    assert!(store.product(args["sku"].as_str().unwrap()).is_some(), "{args}");
                    *checked.entry(check_answer(&conn, name, &args, answer)).or_insert(0) += 1;
                }
                "get_size_chart" => {
                    let category = args["category"].as_str().unwrap();
                    assert!(store.size_charts.iter().any(|r| r.category == category), "{category}");
                    *checked.entry(check_answer(&conn, name, &args, answer)).or_insert(0) += 1;
                }
                "get_order_status" | "get_promotions" => {
                    *checked.entry(check_answer(&conn, name, &args, answer)).or_insert(0) += 1;
                }
                _ => {}
            }
        }
    }
    assert!(not_found >= 3, "only {not_found} unknown order ids");
    for kind in ["order", "stock", "price", "promotions", "size"] {
        assert!(checked.get(kind).copied().unwrap_or(0) >= 3, "only {checked:?} answers checked");
    }
}
