//! The store assistant over a second shop (`tests/fixtures/store-b`, "Mộc Lâm"):
//! order ids `#100234` and `SO-2026-0042`, SKUs like `QJ-01-BLK`, hoodies, joggers
//! and sandals sized by foot length, its own promotions and policies. Asked over
//! HTTP on the assistant's route with a model that answers every question with the
//! same vague sentence, order, stock, size, promotion and policy questions are
//! answered with this store's facts (hand-read from the fixture's CSV and Markdown
//! files below), unknown ids are answered "not found", and no customer's phone or
//! name reaches an answer or the log.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::doubles::{served, ScriptedBackend};
use rusqlite::Connection;
use serde_json::{json, Value};
use stylevn::data::exchange_log::ExchangeLog;
use stylevn::serve::assistant::config::IdPattern;
use stylevn::serve::assistant::{routes, Assistant, AssistantConfig, AssistantMessage, AssistantParts, AssistantState};
use stylevn::serve::cache::AnswerCache;
use stylevn::serve::tools::SqliteTools;

/// The shop's order id shapes, as its `configs/assistant.toml` would list them.
const ORDER_ID_PATTERNS: [&str; 2] = [r"#\d{6}\b", r"\bSO[-\s]?\d{4}[-\s]?\d{4}\b"];

/// Customers of the fixture's orders.csv: what no answer may contain.
const CUSTOMER_PHONES: [&str; 4] = ["0978123456", "0389456123", "0912777333", "0868002211"];
const CUSTOMER_NAMES: [&str; 4] = ["Phan Minh Khoa", "Đỗ Thu Hà", "Trần Bảo Ngọc", "Lê Hoàng Nam"];

/// What the vague model says to everything.
const VAGUE: &str = "Dạ, em có thể giúp gì thêm cho anh/chị ạ?";

fn store_db(dir: &Path) -> PathBuf {
    let db = dir.join("store-b.db");
    stylevn::data::db::init_db(&common::root().join("tests/fixtures/store-b"), &db).unwrap();
    db
}

fn config() -> AssistantConfig {
    let mut c = AssistantConfig::default();
    c.ids.order_id_patterns = ORDER_ID_PATTERNS.iter().map(|p| IdPattern::new(p).unwrap()).collect();
    c.hotline = "1800 6868".into();
    c
}

fn assistant(db: &Path, log: &Path, config: AssistantConfig) -> Assistant {
    let parts = AssistantParts {
        backend: served(Arc::new(ScriptedBackend::new(|_| AssistantMessage::text(VAGUE)))),
        fallback: None,
        tools: Arc::new(SqliteTools::open(db).unwrap()),
        retriever: None,
        cache: Some(AnswerCache::open(None, config.cache.semantic_threshold).unwrap()),
        log: Some(Arc::new(ExchangeLog::open(Some(log), &config.log.user_salt).unwrap())),
        policies_dir: None,
    };
    Assistant::new(config, parts)
}

/// Serves the assistant's routes on a loopback port.
async fn serve(a: Assistant) -> String {
    let state = Arc::new(AssistantState { assistant: Arc::new(a), zalo: None, api_key: None });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = routes(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
    format!("http://{addr}")
}

/// Asks `question` on `POST /assistant/v1/chat/completions`: the answer and the tools it ran.
async fn ask(base: &str, question: &str) -> (String, Value) {
    stylevn::tls::install_crypto_provider();
    let body = json!({"model": "stylevn-assistant", "messages": [{"role": "user", "content": question}]});
    let r = reqwest::Client::new()
        .post(format!("{base}/assistant/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{question}");
    let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    (v["choices"][0]["message"]["content"].as_str().unwrap().to_string(), v["stylevn"]["tools"].clone())
}

fn assert_no_customer_data(question: &str, answer: &str) {
    for private in CUSTOMER_PHONES.iter().chain(&CUSTOMER_NAMES) {
        assert!(!answer.contains(private), "{question}: {private} leaked in {answer:?}");
    }
}

/// A question, the tools it must run, the facts its answer must state and what it must not.
struct Case {
    question: &'static str,
    tools: &'static [&'static str],
    include: &'static [&'static str],
    exclude: &'static [&'static str],
}

/// Facts of the fixture (tests/fixtures/store-b): orders.csv, order_items.csv,
/// stock.csv, size_charts.csv, promotions.csv (as of 2025-06-20) and policies/.
const CASES: &[Case] = &[
    // SO-2026-0042: Đang chuẩn bị, eta 2025-06-24, Ninja Van; no phone, no total.
    Case {
        question: "Shop ơi đơn so 2026 0042 của em tới đâu rồi ạ?",
        tools: &["get_order_status"],
        include: &["SO-2026-0042", "đang chuẩn bị", "24/06/2025", "Ninja Van"],
        exclude: &["1.230.000đ"],
    },
    // #100234 (phone 0978123456): Đang giao, eta 2025-06-22; 450.000 + 2 x 180.000 = 810.000đ.
    Case {
        question: "đơn #100234 của em, 4 số cuối sđt 3456",
        tools: &["get_order_status"],
        include: &["#100234", "đang giao", "22/06/2025", "810.000đ", "VTP-778120"],
        exclude: &[],
    },
    Case {
        question: "Đơn 100234 giao chưa shop",
        tools: &["get_order_status"],
        include: &["#100234", "đang giao"],
        exclude: &["810.000đ"],
    },
    // By its tracking code.
    Case {
        question: "vận đơn vtp-778120 đi tới đâu rồi shop",
        tools: &["get_order_status"],
        include: &["#100234", "đang giao"],
        exclude: &[],
    },
    // Shaped like this shop's ids, but no such order.
    Case {
        question: "đơn SO-2026-9999 của em sao rồi ạ",
        tools: &["get_order_status"],
        include: &["không tìm thấy"],
        exclude: &["#100234", "SO-2026-0042", "đang giao", "đang chuẩn bị", "đã giao", "đã hủy"],
    },
    Case {
        question: "Cho em hỏi đơn #999999 với",
        tools: &["get_order_status"],
        include: &["không tìm thấy"],
        exclude: &["#100234", "SO-2026-0042", "đang giao", "đang chuẩn bị", "đã giao", "đã hủy"],
    },
    // QJ-01-BLK 390.000đ; M Đen: 11.
    Case {
        question: "quần qj-01-blk size M màu đen còn không",
        tools: &["get_stock"],
        include: &["QJ-01-BLK", "390.000đ", "còn 11 sản phẩm"],
        exclude: &[],
    },
    // MU-03-DEN 180.000đ; Freesize Trắng: 0.
    Case {
        question: "mũ MU-03-DEN màu trắng còn hàng không ạ",
        tools: &["get_stock"],
        include: &["180.000đ", "hết hàng"],
        exclude: &[],
    },
    // áo hoodie M: 162-170 cm, 55-65 kg.
    Case {
        question: "Em cao 1m68 nặng 60kg mặc áo hoodie size gì ạ?",
        tools: &["get_size_chart"],
        include: &["size M"],
        exclude: &[],
    },
    // dép by foot length: 39 is 24.5 cm, 40 is 25.5 cm.
    Case {
        question: "chân em dài 25,5 cm đi dép size mấy shop",
        tools: &["get_size_chart"],
        include: &["size 40"],
        exclude: &[],
    },
    // Active on 2025-06-20: CHAOHE25 (to 2025-08-31) and KHACHMOI; BLACKFRIDAY starts 2025-11-28.
    Case {
        question: "Shop có mã giảm giá nào không ạ?",
        tools: &["get_promotions"],
        include: &["CHAOHE25", "KHACHMOI"],
        exclude: &["BLACKFRIDAY"],
    },
    Case {
        question: "mã chaohe25 còn dùng được không, đơn em 450k",
        tools: &["get_promotions"],
        include: &["CHAOHE25", "đang áp dụng", "dùng được"],
        exclude: &[],
    },
    // policies/doi-tra.md: 7 days; van-chuyen.md: free from 800.000đ; lien-he.md: 1800 6868.
    Case {
        question: "Chính sách đổi trả thế nào ạ?",
        tools: &["get_policy"],
        include: &["7 ngày"],
        exclude: &["14 ngày"],
    },
    Case {
        question: "phí ship bao nhiêu vậy shop",
        tools: &["get_policy"],
        include: &["800.000đ"],
        exclude: &["500.000đ"],
    },
    Case { question: "Cho em xin số hotline shop", tools: &["get_policy"], include: &["1800 6868"], exclude: &[] },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_question_is_answered_with_this_stores_facts_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, log) = (store_db(tmp.path()), tmp.path().join("exchanges.db"));
    let base = serve(assistant(&db, &log, config())).await;
    for case in CASES {
        let (answer, tools) = ask(&base, case.question).await;
        assert_eq!(tools, json!(case.tools), "{}: {answer}", case.question);
        let folded = stylevn::conversation::text::fold(&answer);
        for fact in case.include {
            assert!(
                folded.contains(&stylevn::conversation::text::fold(fact)),
                "{}: {fact:?} missing from {answer:?}",
                case.question
            );
        }
        for wrong in case.exclude {
            assert!(
                !folded.contains(&stylevn::conversation::text::fold(wrong)),
                "{}: {wrong:?} in {answer:?}",
                case.question
            );
        }
        assert_ne!(answer, VAGUE, "{}", case.question);
        assert_no_customer_data(case.question, &answer);
    }

    // The log keeps the store's ids and masks the phone a customer typed.
    let (_, _) = ask(&base, "đơn SO-2026-0042 của em, sđt 0912 777 333 ạ").await;
    let dump: String = Connection::open(&log)
        .unwrap()
        .query_row("SELECT group_concat(messages, '|') FROM exchanges", [], |r| r.get(0))
        .unwrap();
    assert!(dump.contains("SO-2026-0042") && dump.contains("#100234") && dump.contains("[SĐT]"), "{dump}");
    assert!(!dump.contains("0912 777 333") && !dump.contains("0912777333"), "{dump}");
}

/// The ids come from the store's database, not from the config: with the demo's
/// config (whose id shape is the demo's), this store's orders are still found.
#[tokio::test]
async fn the_store_ids_need_no_configured_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, log) = (store_db(tmp.path()), tmp.path().join("exchanges.db"));
    let a = assistant(&db, &log, AssistantConfig::default());
    let turn = |q: &str| stylevn::serve::assistant::Turn {
        messages: vec![stylevn::conversation::Message::user(q)],
        user: None,
        client: None,
        channel: "api".into(),
        sampling: None,
    };
    let r = a.respond(turn("đơn SO20260042 tới đâu rồi ạ")).await.unwrap();
    assert!(r.content.contains("SO-2026-0042") && r.content.contains("đang chuẩn bị"), "{}", r.content);
    let r = a.respond(turn("áo hoodie hd 01 gry size L màu xám còn không")).await.unwrap();
    assert!(r.content.contains("còn 12 sản phẩm"), "{}", r.content);
}
