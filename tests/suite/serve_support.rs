//! Shared by the serve tests: a tiny self-contained chat model (random weights, a
//! byte-level tokenizer with ChatML special tokens, SmolLM2's chat template) and an
//! in-process server on a free loopback port.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use candle_core::DType;
use serde_json::{json, Value};
use stylevn::model::tiny::TinySpec;
use stylevn::serve::api::HttpLimits;
use stylevn::serve::engine::EngineConfig;
use stylevn::serve::local::GenerationDefaults;
use stylevn::serve::request::RequestLimits;
use stylevn::serve::server::{Backend, ServeOptions, Server};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::Tokenizer;

/// SmolLM2-135M-Instruct's chat template (ChatML, no tool support).
pub const SMOL_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Writes the tiny chat model into `dir`: 256 byte tokens, then `<|im_start|>` (256)
/// and `<|im_end|>` (257, the EOS).
pub fn write_tiny_chat_model(dir: &Path) {
    let spec = TinySpec {
        name: "tiny-serve",
        model_type: "llama",
        tied: true,
        vocab: 258,
        hidden: 64,
        intermediate: 128,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        rope_theta: 10_000.0,
        eps: 1e-5,
    };
    spec.write_dir(dir).unwrap();
    let mut config = spec.config_json();
    config["max_position_embeddings"] = json!(8192);
    config["eos_token_id"] = json!(257);
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config).unwrap()).unwrap();

    let vocab: serde_json::Map<String, Value> =
        ByteLevel::alphabet().into_iter().enumerate().map(|(i, c)| (c.to_string(), i.into())).collect();
    assert_eq!(vocab.len(), 256);
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false});
    let special = |id: usize, content: &str| json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true});
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(256, "<|im_start|>"), special(257, "<|im_end|>")],
        "normalizer": null, "pre_tokenizer": byte_level, "post_processor": null, "decoder": byte_level,
        "model": {"type": "BPE", "vocab": vocab, "merges": []},
    });
    Tokenizer::from_str(&tokenizer.to_string()).expect("valid tokenizer");
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let tokenizer_config = json!({"chat_template": SMOL_TEMPLATE, "eos_token": "<|im_end|>", "bos_token": null});
    std::fs::write(dir.join("tokenizer_config.json"), tokenizer_config.to_string()).unwrap();
}

/// An HTTP client (installing the TLS crypto provider reqwest is built to expect).
pub fn http() -> reqwest::Client {
    stylevn::tls::install_crypto_provider();
    reqwest::Client::new()
}

/// Options for a test server on a free loopback port, greedy by default.
pub fn options(model: &Path, engine: EngineConfig) -> ServeOptions {
    ServeOptions {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        backend: Backend::Local {
            model: model.display().to_string(),
            dtype: DType::F32,
            lm_head: stylevn::quant::LmHead::default(),
            engine,
        },
        served_model_name: "tiny".into(),
        api_key: None,
        defaults: GenerationDefaults {
            temperature: 0.0,
            top_p: 1.0,
            max_tokens: 16,
            request_timeout: Duration::from_secs(120),
        },
        http: HttpLimits {
            max_body_bytes: 2 * 1024 * 1024,
            request: RequestLimits { max_messages: 512, max_tokens: 4096 },
        },
    }
}

/// A running server.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<stylevn::Result<()>>,
}

impl TestServer {
    /// Binds, starts serving and waits until `/health` says ready.
    pub async fn start(options: ServeOptions) -> TestServer {
        let server = Server::bind(options).await.unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(axum::Router::new(), async move {
            let _ = rx.await;
        }));
        let client = http();
        for _ in 0..600 {
            if let Ok(r) = client.get(format!("{base}/health")).send().await {
                if r.status() == 200 {
                    return TestServer { base, stop: Some(tx), task };
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not become ready");
    }

    /// Signals shutdown and waits for the drain.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }

    /// `POST /v1/chat/completions` with a raw body: (status, body text).
    pub async fn post_raw(&self, client: &reqwest::Client, body: impl Into<reqwest::Body>) -> (u16, String) {
        let r = client
            .post(format!("{}/v1/chat/completions", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// `POST /v1/chat/completions` with a JSON body: (status, parsed body or SSE text).
    pub async fn chat(&self, client: &reqwest::Client, body: &Value) -> (u16, String) {
        self.post_raw(client, body.to_string()).await
    }

    /// `/metrics` parsed by a Prometheus text-format parser: sample name and labels to value.
    pub async fn metrics(&self) -> HashMap<String, f64> {
        let text = http().get(format!("{}/metrics", self.base)).send().await.unwrap().text().await.unwrap();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
        let mut out = HashMap::new();
        for s in scrape.samples {
            let mut labels: Vec<(String, String)> = s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            labels.sort();
            let key = if labels.is_empty() {
                s.metric.clone()
            } else {
                let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{}{{{}}}", s.metric, l.join(","))
            };
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
                prometheus_parse::Value::Summary(_) => f64::NAN,
            };
            out.insert(key, value);
        }
        out
    }
}

/// Joins the `content` deltas of an SSE body and returns (content, finish_reason, usage chunk).
pub fn read_sse(body: &str) -> (String, Option<String>, Option<Value>) {
    let mut content = String::new();
    let mut finish = None;
    let mut usage = None;
    let mut done = false;
    for event in body.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let data = event.strip_prefix("data: ").unwrap_or_else(|| panic!("not an SSE data line: {event:?}"));
        assert!(!done, "data after [DONE]");
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        assert!(chunk.get("error").is_none(), "stream error: {chunk}");
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            usage = Some(u.clone());
        }
        if let Some(choice) = chunk["choices"].get(0) {
            if let Some(t) = choice["delta"]["content"].as_str() {
                content.push_str(t);
            }
            if let Some(r) = choice["finish_reason"].as_str() {
                finish = Some(r.to_string());
            }
        }
    }
    assert!(done, "the stream did not end with [DONE]");
    (content, finish, usage)
}
