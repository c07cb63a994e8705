//! The Zalo OA channel against a local mock of the OA message and OAuth APIs:
//! duplicates answered once, bad signatures rejected, the webhook acknowledges
//! while the model is busy, and an expired token is refreshed with the rotated
//! refresh token persisted across a restart; and the `stylevn serve` binary with its
//! `--zalo-*` flags answering one signed event through the mock.

use crate::common;
use crate::doubles::served;
use crate::mock_openai;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use futures::future::BoxFuture;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use stylevn::serve::api_error::ApiError;
use stylevn::serve::assistant::{routes, Assistant, AssistantConfig, AssistantMessage, AssistantParts, AssistantState};
use stylevn::serve::chat::{ChatRequest as ServiceRequest, ChatService, ChatStream};
use stylevn::serve::tools::SqliteTools;
use stylevn::serve::zalo::{Tokens, Zalo, ZaloConfig};

const APP_ID: &str = "4321";
const OA_SECRET: &str = "oa-secret-key";
const APP_SECRET: &str = "app-secret";

/// The mock OA: which access and refresh tokens are valid now, and what was sent.
#[derive(Default)]
struct MockOa {
    access: Mutex<String>,
    refresh: Mutex<String>,
    refreshes: AtomicUsize,
    sent: Mutex<Vec<(String, String)>>,
}

async fn mock_send(State(oa): State<Arc<MockOa>>, headers: HeaderMap, Json(body): Json<Value>) -> Json<Value> {
    let token = headers.get("access_token").and_then(|v| v.to_str().ok()).unwrap_or("");
    if token != *oa.access.lock().unwrap() {
        return Json(json!({"error": -216, "message": "Access token is invalid"}));
    }
    let user = body["recipient"]["user_id"].as_str().unwrap().to_string();
    oa.sent.lock().unwrap().push((user, body["message"]["text"].as_str().unwrap().to_string()));
    Json(json!({"error": 0, "message": "Success", "data": {"message_id": "m1"}}))
}

async fn mock_refresh(State(oa): State<Arc<MockOa>>, headers: HeaderMap, form: String) -> Json<Value> {
    let field = |k: &str| form.split('&').find_map(|kv| kv.strip_prefix(&format!("{k}="))).unwrap_or("").to_string();
    let secret_ok = headers.get("secret_key").is_some_and(|v| v == APP_SECRET);
    let mut refresh = oa.refresh.lock().unwrap();
    if !secret_ok
        || field("app_id") != APP_ID
        || field("grant_type") != "refresh_token"
        || field("refresh_token") != *refresh
    {
        return Json(json!({"error": -14014, "error_name": "Invalid refresh token"}));
    }
    let n = oa.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
    // Single use: the old refresh token is spent now.
    *refresh = format!("refresh-{n}");
    *oa.access.lock().unwrap() = format!("access-{n}");
    Json(json!({"access_token": format!("access-{n}"), "refresh_token": format!("refresh-{n}"), "expires_in": "90000"}))
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

async fn mock_oa(oa: Arc<MockOa>) -> String {
    let router = Router::new()
        .route("/v3.0/oa/message/cs", post(mock_send))
        .route("/v4/oa/access_token", post(mock_refresh))
        .with_state(oa);
    serve(router).await
}

/// A model that answers only when the test opens its gate, counting calls.
struct GatedModel {
    gate: Arc<tokio::sync::Semaphore>,
    calls: Arc<AtomicUsize>,
}

impl ChatService for GatedModel {
    fn chat(&self, _: ServiceRequest) -> BoxFuture<'static, Result<ChatStream, ApiError>> {
        let (gate, calls) = (self.gate.clone(), self.calls.clone());
        Box::pin(async move {
            calls.fetch_add(1, Ordering::SeqCst);
            gate.acquire().await.unwrap().forget();
            Ok(AssistantMessage::text("Dạ, em chào anh/chị ạ. Em có thể giúp gì cho anh/chị ạ?").into_stream())
        })
    }
}

struct Setup {
    base: String,
    model: Arc<GatedModel>,
    zalo: Arc<Zalo>,
}

fn store_db(dir: &Path) -> PathBuf {
    let db = dir.join("stylevn.db");
    if !db.exists() {
        stylevn::data::db::init_db(&common::root().join("data"), &db).unwrap();
    }
    db
}

async fn start(dir: &Path, oa_base: &str, open: u32) -> Setup {
    let gate = Arc::new(tokio::sync::Semaphore::new(open as usize));
    let model = Arc::new(GatedModel { gate, calls: Arc::new(AtomicUsize::new(0)) });
    let parts = AssistantParts {
        backend: served(model.clone()),
        fallback: None,
        tools: Arc::new(SqliteTools::open(&store_db(dir)).unwrap()),
        retriever: None,
        cache: None,
        log: None,
        policies_dir: None,
    };
    let assistant = Arc::new(Assistant::new(AssistantConfig::default(), parts));
    let config = ZaloConfig {
        app_id: APP_ID.into(),
        oa_secret_key: OA_SECRET.into(),
        app_secret: APP_SECRET.into(),
        api_base: oa_base.into(),
        oauth_base: oa_base.into(),
        token_file: dir.join("zalo-tokens.json"),
        max_retries: 3,
        backoff: Duration::from_millis(10),
        refresh_margin: Duration::from_secs(300),
        seen_db: Some(dir.join("zalo-seen.db")),
    };
    let zalo = Arc::new(Zalo::new(config, assistant.clone()).unwrap());
    let base = serve(routes(Arc::new(AssistantState { assistant, zalo: Some(zalo.clone()), api_key: None }))).await;
    Setup { base, model, zalo }
}

fn write_tokens(dir: &Path, t: &Tokens) {
    std::fs::write(dir.join("zalo-tokens.json"), serde_json::to_string(t).unwrap()).unwrap();
}

fn event(user: &str, msg_id: &str, text: &str) -> String {
    json!({"app_id": APP_ID, "event_name": "user_send_text", "timestamp": "1750400000000",
        "sender": {"id": user}, "recipient": {"id": "oa1"}, "message": {"text": text, "msg_id": msg_id}})
    .to_string()
}

/// `mac=` + hex SHA-256 of app id, body, timestamp and OA secret (REFERENCE.md).
fn sign(body: &str) -> String {
    let ts = serde_json::from_str::<Value>(body).unwrap()["timestamp"].as_str().unwrap().to_string();
    format!("mac={}", hex::encode(Sha256::digest(format!("{APP_ID}{body}{ts}{OA_SECRET}"))))
}

async fn post_event(base: &str, body: &str, signature: &str) -> (u16, Duration) {
    let t = Instant::now();
    stylevn::tls::install_crypto_provider();
    let r = reqwest::Client::new()
        .post(format!("{base}/zalo/webhook"))
        .header("x-zevent-signature", signature)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), t.elapsed())
}

async fn wait_for_sent(oa: &MockOa, n: usize) {
    for _ in 0..500 {
        if oa.sent.lock().unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("expected {n} replies, got {:?}", oa.sent.lock().unwrap());
}

fn valid_tokens(oa: &MockOa) -> Tokens {
    *oa.access.lock().unwrap() = "access-0".into();
    *oa.refresh.lock().unwrap() = "refresh-0".into();
    Tokens { access_token: "access-0".into(), refresh_token: "refresh-0".into(), expires_at: u64::MAX / 2 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_delivered_three_times_is_answered_once() {
    let tmp = tempfile::tempdir().unwrap();
    let oa = Arc::new(MockOa::default());
    write_tokens(tmp.path(), &valid_tokens(&oa));
    let s = start(tmp.path(), &mock_oa(oa.clone()).await, 100).await;
    let body = event("user-1", "msg-1", "Shop ơi cho em hỏi chút");
    for _ in 0..3 {
        assert_eq!(post_event(&s.base, &body, &sign(&body)).await.0, 200);
    }
    wait_for_sent(&oa, 1).await;
    // A later, different message is answered too: only the retries were dropped.
    let other = event("user-1", "msg-2", "Cảm ơn shop");
    assert_eq!(post_event(&s.base, &other, &sign(&other)).await.0, 200);
    wait_for_sent(&oa, 2).await;
    assert_eq!(s.model.calls.load(Ordering::SeqCst), 2);
    assert_eq!(oa.sent.lock().unwrap().len(), 2);
    assert_eq!(oa.sent.lock().unwrap()[0].0, "user-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_signature_is_rejected_and_not_processed() {
    let tmp = tempfile::tempdir().unwrap();
    let oa = Arc::new(MockOa::default());
    write_tokens(tmp.path(), &valid_tokens(&oa));
    let s = start(tmp.path(), &mock_oa(oa.clone()).await, 100).await;
    let body = event("user-1", "msg-1", "xin chào");
    let forged = sign(&body.replace("xin chào", "xin chao"));
    assert_eq!(post_event(&s.base, &body, &forged).await.0, 401);
    assert_eq!(post_event(&s.base, &body, "").await.0, 401);
    let with_other_secret =
        format!("mac={}", hex::encode(Sha256::digest(format!("{APP_ID}{body}1750400000000wrong-secret"))));
    assert_eq!(post_event(&s.base, &body, &with_other_secret).await.0, 401);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.model.calls.load(Ordering::SeqCst), 0);
    assert!(oa.sent.lock().unwrap().is_empty());
    // The genuine event is still accepted afterwards (a rejected one is not remembered as seen).
    assert_eq!(post_event(&s.base, &body, &sign(&body)).await.0, 200);
    wait_for_sent(&oa, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_acknowledges_while_the_model_is_busy() {
    let tmp = tempfile::tempdir().unwrap();
    let oa = Arc::new(MockOa::default());
    write_tokens(tmp.path(), &valid_tokens(&oa));
    let s = start(tmp.path(), &mock_oa(oa.clone()).await, 0).await;
    let body = event("user-2", "msg-9", "đơn hàng của em tới đâu rồi");
    let (status, took) = post_event(&s.base, &body, &sign(&body)).await;
    assert_eq!(status, 200);
    // Acknowledged with the model still blocked on its gate: nothing can have been answered yet.
    for _ in 0..100 {
        if s.model.calls.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(s.model.calls.load(Ordering::SeqCst), 1, "the model is working on it");
    assert!(oa.sent.lock().unwrap().is_empty());
    println!("webhook acknowledged in {took:?} while the model was busy");
    s.model.gate.add_permits(1);
    wait_for_sent(&oa, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_and_the_new_refresh_token_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let oa = Arc::new(MockOa::default());
    *oa.refresh.lock().unwrap() = "refresh-0".into();
    *oa.access.lock().unwrap() = "not-issued-yet".into();
    write_tokens(
        tmp.path(),
        &Tokens { access_token: "access-0".into(), refresh_token: "refresh-0".into(), expires_at: 0 },
    );
    let oa_base = mock_oa(oa.clone()).await;
    let s = start(tmp.path(), &oa_base, 100).await;
    let body = event("user-3", "msg-1", "chào shop");
    assert_eq!(post_event(&s.base, &body, &sign(&body)).await.0, 200);
    wait_for_sent(&oa, 1).await;
    assert_eq!(oa.refreshes.load(Ordering::SeqCst), 1);
    let on_disk: Tokens =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("zalo-tokens.json")).unwrap()).unwrap();
    assert_eq!((on_disk.access_token.as_str(), on_disk.refresh_token.as_str()), ("access-1", "refresh-1"));
    assert!(on_disk.expires_at > 0);
    drop(s);

    // Restart: a new process reads the file. The access token is revoked, so it must
    // refresh, which only works with the rotated refresh token it persisted.
    *oa.access.lock().unwrap() = "revoked".into();
    let s2 = start(tmp.path(), &oa_base, 100).await;
    assert_eq!(s2.zalo.api().tokens().await.refresh_token, "refresh-1");
    // Zalo retrying the first message after the restart is still recognised as handled.
    let retry = event("user-3", "msg-1", "chào shop");
    assert_eq!(post_event(&s2.base, &retry, &sign(&retry)).await.0, 200);
    let body = event("user-3", "msg-2", "cảm ơn shop");
    assert_eq!(post_event(&s2.base, &body, &sign(&body)).await.0, 200);
    wait_for_sent(&oa, 2).await;
    assert_eq!(oa.refreshes.load(Ordering::SeqCst), 2);
    assert_eq!(s2.zalo.api().tokens().await.refresh_token, "refresh-2");
    assert_eq!(s2.model.calls.load(Ordering::SeqCst), 1, "the retried msg-1 was not answered again");
    assert_eq!(oa.sent.lock().unwrap().len(), 2);
}

/// A `stylevn serve` child process, stopped when dropped (a failed test leaves none behind).
struct ServeProcess(Child);

impl Drop for ServeProcess {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_zalo_flags_answers_a_signed_event_once() {
    let tmp = tempfile::tempdir().unwrap();
    let oa = Arc::new(MockOa::default());
    *oa.refresh.lock().unwrap() = "refresh-0".into();
    let oa_base = mock_oa(oa.clone()).await;
    let model = mock_openai::MockServer::start(|_| mock_openai::stream_text("Dạ, em chào anh/chị ạ."));
    let token_file = tmp.path().join("zalo-tokens.json");
    // No token file yet: serve starts it from $ZALO_REFRESH_TOKEN.
    let mut child = Command::new(env!("CARGO_BIN_EXE_stylevn"))
        .args(["serve", "--port", "0", "--upstream", &model.base_url, "--upstream-model", "mock"])
        .arg("--db")
        .arg(store_db(tmp.path()))
        .args(["--zalo-app-id", APP_ID, "--zalo-api-base", &oa_base, "--zalo-oauth-base", &oa_base])
        .arg("--zalo-token-file")
        .arg(&token_file)
        .arg("--zalo-seen-db")
        .arg(tmp.path().join("zalo-seen.db"))
        .env("ZALO_OA_SECRET_KEY", OA_SECRET)
        .env("ZALO_APP_SECRET", APP_SECRET)
        .env("ZALO_REFRESH_TOKEN", "refresh-0")
        .current_dir(common::root())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(tmp.path().join("serve.log")).unwrap())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let _server = ServeProcess(child);
    let serve_log = || std::fs::read_to_string(tmp.path().join("serve.log")).unwrap_or_default();
    let lines: Vec<String> = tokio::task::spawn_blocking(move || {
        stdout.lines().map_while(Result::ok).take_while(|l| !l.contains("/v1")).collect()
    })
    .await
    .unwrap();
    let webhook_line = lines
        .iter()
        .find(|l| l.contains("/zalo/webhook"))
        .unwrap_or_else(|| panic!("serve did not announce the webhook; it printed {lines:?}"));
    let base = webhook_line.split("http://").nth(1).and_then(|rest| rest.strip_suffix("/zalo/webhook")).unwrap();
    let base = format!("http://{base}");

    let body = event("user-7", "msg-1", "Shop ơi cho em hỏi chút");
    assert_eq!(post_event(&base, &body, &sign(&body)).await.0, 200);
    assert_eq!(post_event(&base, &body, &sign(&body)).await.0, 200, "a retry is acknowledged");
    assert_eq!(post_event(&base, &body, "mac=00").await.0, 401);
    wait_for_sent(&oa, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = oa.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "one event, one reply: {sent:?}");
    assert_eq!(sent[0].0, "user-7");
    assert!(!sent[0].1.is_empty());
    assert!(
        !model.requests.lock().unwrap().is_empty(),
        "the answer came from the served (upstream) model; sent {sent:?}; serve's log:\n{}",
        serve_log()
    );
    // The first send refreshed the seeded token; the rotated pair is on disk.
    let on_disk: Tokens = serde_json::from_str(&std::fs::read_to_string(&token_file).unwrap()).unwrap();
    assert_eq!((on_disk.access_token.as_str(), on_disk.refresh_token.as_str()), ("access-1", "refresh-1"));
}
