//! `stylevn serve` on a tiny self-contained model (random weights, byte-level
//! tokenizer): the engine against sequential generation, OpenAI response and stream
//! shapes, bad input, a fuzz run, queue overflow, client disconnects, auth, the
//! request timeout, graceful drain, and `/metrics` against the requests sent.

use crate::serve_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use serve_support::{http, options, read_sse, write_tiny_chat_model, TestServer};
use stylevn::generate::{generate, ChatModel, GenerateOptions, SamplingParams};
use stylevn::serve::engine::{EngineConfig, EngineHandle, GenEvent, GenRequest};
use stylevn::serve::metrics::Metrics;
use stylevn::serve::server::Backend;
use stylevn::serve::upstream::UpstreamConfig;

fn tiny_model() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_chat_model(dir.path());
    dir
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// Continuous batching (four prompts of different lengths decoded together, prompts
/// chunked) and prefix-cache hits give exactly the tokens of one-at-a-time generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_engine_matches_sequential_generation() {
    let dir = tiny_model();
    let model = Arc::new(
        ChatModel::load(&dir.path().display().to_string(), candle_core::DType::F32, stylevn::quant::LmHead::default())
            .unwrap(),
    );
    let config = EngineConfig { max_batch_tokens: 48, ..EngineConfig::default() };
    let engine = EngineHandle::start(model.clone(), config, Arc::new(Metrics::default())).unwrap();
    let system = "<|im_start|>system\nBạn là trợ lý của shop thời trang StyleVN, trả lời lịch sự.<|im_end|>\n";
    let prompts: Vec<Vec<u32>> = ["a", "Đơn DH250004 của em tới đâu rồi ạ?", "size M", "xin chào shop"]
        .iter()
        .map(|q| model.encode(&format!("{system}<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n")).unwrap())
        .collect();
    let expected: Vec<String> = prompts
        .iter()
        .map(|p| {
            let options = GenerateOptions {
                sampling: SamplingParams::default(),
                max_new_tokens: 24,
                eos_ids: model.eos_ids.clone(),
                stop: vec![],
            };
            generate(&model.transformer, &model.tokenizer, p, &options, &mut |_| {}).unwrap().text
        })
        .collect();
    for round in 0..2 {
        let streams: Vec<_> = prompts
            .iter()
            .map(|p| {
                engine
                    .submit(GenRequest {
                        prompt: p.clone(),
                        sampling: SamplingParams::default(),
                        max_new_tokens: 24,
                        stop: vec![],
                        eos_ids: model.eos_ids.clone(),
                        deadline: Instant::now() + Duration::from_secs(60),
                        shared_prefix: 0,
                        guard: None,
                    })
                    .unwrap()
            })
            .collect();
        for (i, mut stream) in streams.into_iter().enumerate() {
            let mut text = String::new();
            let mut cached = 0;
            while let Some(event) = stream.next().await {
                match event {
                    GenEvent::Started { cached_tokens, .. } => cached = cached_tokens,
                    GenEvent::Text(t) => text.push_str(&t),
                    GenEvent::Finished { .. } => break,
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(text, expected[i], "round {round}, prompt {i}");
            if round == 1 {
                assert_eq!(cached, prompts[i].len() - 1, "the whole prompt but its last token is cached");
            }
        }
    }
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_and_streams_have_openai_shapes() {
    let dir = tiny_model();
    let server = TestServer::start(options(dir.path(), EngineConfig::default())).await;
    let client = http();

    let models: Value = client.get(format!("{}/v1/models", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(models["data"][0]["id"], "tiny");
    assert_eq!(models["object"], "list");

    let body =
        json!({"model": "tiny", "messages": user("Áo thun còn size M không?"), "max_tokens": 12, "temperature": 0});
    let (status, text) = server.chat(&client, &body).await;
    assert_eq!(status, 200, "{text}");
    let full: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(full["object"], "chat.completion");
    assert!(full["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let message = &full["choices"][0]["message"];
    assert_eq!(message["role"], "assistant");
    let usage = &full["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    let mut stream_body = body.clone();
    stream_body["stream"] = json!(true);
    stream_body["stream_options"] = json!({"include_usage": true});
    let (status, sse) = server.chat(&client, &stream_body).await;
    assert_eq!(status, 200);
    let (content, finish, stream_usage) = read_sse(&sse);
    assert_eq!(content, message["content"].as_str().unwrap(), "the stream reassembles to the full answer");
    assert_eq!(finish.as_deref(), full["choices"][0]["finish_reason"].as_str());
    let stream_usage = stream_usage.expect("include_usage sends a usage chunk");
    assert_eq!(stream_usage["completion_tokens"], usage["completion_tokens"]);
    assert_eq!(stream_usage["prompt_tokens"], usage["prompt_tokens"]);
    // The second identical prompt reuses the first one's KV cache.
    assert!(stream_usage["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap() > 0);
    let first: Value = serde_json::from_str(sse.split("\n\n").next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(first["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));

    let r = client.get(format!("{}/health", server.base)).header("x-request-id", "abc-1").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-1");
    server.stop().await;
}

/// Each bad request gets the expected 4xx in OpenAI's error shape; `/metrics`
/// counts exactly what was sent; a good request still works afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_and_counted() {
    let dir = tiny_model();
    let server = TestServer::start(options(dir.path(), EngineConfig::default())).await;
    let client = http();
    let many: Vec<Value> = (0..10_000).map(|i| json!({"role": "user", "content": format!("m{i}")})).collect();
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"{\"model\": \"tiny\", \"messages\": [".to_vec(), 400),
        (b"\xff\xfe\xfd not utf-8".to_vec(), 400),
        (b"".to_vec(), 400),
        (json!({"model": 5, "messages": user("x")}).to_string().into_bytes(), 400),
        (json!({"model": "tiny", "messages": []}).to_string().into_bytes(), 400),
        (json!({"model": "tiny", "messages": [{"role": "pirate", "content": "x"}]}).to_string().into_bytes(), 400),
        (json!({"model": "tiny", "messages": user("x"), "max_tokens": -1}).to_string().into_bytes(), 400),
        (json!({"model": "tiny", "messages": user("x"), "max_tokens": 1u64 << 40}).to_string().into_bytes(), 400),
        (
            json!({"model": "tiny", "max_tokens": 4000, "messages": user(&"dài ".repeat(2000))})
                .to_string()
                .into_bytes(),
            400,
        ),
        (json!({"model": "tiny", "messages": many}).to_string().into_bytes(), 400),
        (json!({"model": "gpt-9", "messages": user("x")}).to_string().into_bytes(), 404),
        (vec![b' '; 10 * 1024 * 1024], 413),
    ];
    for (body, expected) in &cases {
        let (status, text) = server.post_raw(&client, body.clone()).await;
        assert_eq!(status, *expected, "{}", String::from_utf8_lossy(&body[..body.len().min(80)]));
        let error: Value = serde_json::from_str(&text).unwrap();
        assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{text}");
        assert!(error["error"]["type"].is_string());
    }
    let r = client.get(format!("{}/v1/chat/completions", server.base)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let r = client.get(format!("{}/v2/nothing", server.base)).send().await.unwrap();
    assert_eq!(r.status(), 404);

    let good = json!({"model": "tiny", "messages": user("xin chào"), "max_tokens": 4});
    assert_eq!(server.chat(&client, &good).await.0, 200);

    let m = server.metrics().await;
    let count = |endpoint: &str, status: u16| {
        m.get(&format!("stylevn_requests_total{{endpoint={endpoint},status={status}}}")).copied().unwrap_or(0.0)
    };
    let sent = |status: u16| cases.iter().filter(|(_, s)| *s == status).count() as f64;
    assert_eq!(count("/v1/chat/completions", 400), sent(400));
    assert_eq!(count("/v1/chat/completions", 404), sent(404));
    assert_eq!(count("/v1/chat/completions", 413), sent(413));
    assert_eq!(count("/v1/chat/completions", 405), 1.0);
    assert_eq!(count("other", 404), 1.0);
    assert_eq!(count("/v1/chat/completions", 200), 1.0);
    assert_eq!(m["stylevn_generation_tokens_total"], 4.0, "one good request of 4 tokens (no EOS this early)");
    assert_eq!(m["stylevn_num_requests_running"], 0.0);
    server.stop().await;
}

/// Random mutations of a good request: no 5xx, and the server still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_thousand_malformed_requests() {
    let dir = tiny_model();
    let server = TestServer::start(options(dir.path(), EngineConfig::default())).await;
    let client = http();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let good = json!({"model": "tiny", "messages": [{"role": "system", "content": "Bạn là trợ lý."},
        {"role": "user", "content": "Đơn DH250004?"}], "max_tokens": 3, "temperature": 0.5,
        "tools": [{"type": "function", "function": {"name": "get_order_status", "parameters": {}}}], "stream": false});
    let good_text = good.to_string();
    let odd_values =
        [json!(null), json!(-1), json!(1e308), json!("x"), json!([]), json!({}), json!(true), json!([[{}]])];
    let fields = [
        "model",
        "messages",
        "max_tokens",
        "temperature",
        "top_p",
        "stream",
        "tools",
        "tool_choice",
        "stop",
        "seed",
        "n",
        "stream_options",
    ];
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..1000 {
        let body: Vec<u8> = match i % 4 {
            // Flip random bytes.
            0 => {
                let mut b = good_text.clone().into_bytes();
                for _ in 0..rng.random_range(1..6) {
                    let at = rng.random_range(0..b.len());
                    b[at] = rng.random();
                }
                b
            }
            // Truncate.
            1 => good_text.as_bytes()[..rng.random_range(0..good_text.len())].to_vec(),
            // A field set to an odd value.
            2 => {
                let mut v = good.clone();
                let field = fields[rng.random_range(0..fields.len())];
                v[field] = odd_values[rng.random_range(0..odd_values.len())].clone();
                v.to_string().into_bytes()
            }
            // A message or its parts replaced by an odd value.
            _ => {
                let mut v = good.clone();
                let odd = odd_values[rng.random_range(0..odd_values.len())].clone();
                match rng.random_range(0..3) {
                    0 => v["messages"][1] = odd,
                    1 => v["messages"][1]["content"] = odd,
                    _ => v["messages"][0]["role"] = odd,
                }
                v.to_string().into_bytes()
            }
        };
        let (status, _) = server.post_raw(&client, body).await;
        *statuses.entry(status).or_insert(0) += 1;
    }
    assert!(statuses.keys().all(|s| *s < 500), "{statuses:?}");
    assert!(statuses.get(&400).copied().unwrap_or(0) > 500, "{statuses:?}");
    let (status, _) = server.chat(&client, &good).await;
    assert_eq!(status, 200);
    server.stop().await;
}

/// More concurrent requests than slots and queue: the excess gets 429 with
/// Retry-After, the rest complete, and the server serves normally afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_overflow_answers_429_then_recovers() {
    let dir = tiny_model();
    let engine = EngineConfig { max_num_seqs: 1, max_queue: 2, ..EngineConfig::default() };
    let server = Arc::new(TestServer::start(options(dir.path(), engine)).await);
    let client = http();
    let body = json!({"model": "tiny", "messages": user("kể chuyện"), "max_tokens": 300});
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (client, body, base) = (client.clone(), body.clone(), server.base.clone());
            tokio::spawn(async move {
                let r = client.post(format!("{base}/v1/chat/completions")).json(&body).send().await.unwrap();
                let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
                (r.status().as_u16(), retry_after)
            })
        })
        .collect();
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.unwrap() {
            (200, _) => ok += 1,
            (429, Some(after)) => {
                assert_eq!(after, "1");
                limited += 1
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(limited >= 1 && ok >= 1, "ok {ok}, 429 {limited}");
    let m = server.metrics().await;
    assert_eq!(m["stylevn_requests_total{endpoint=/v1/chat/completions,status=429}"], limited as f64);
    assert_eq!(m["stylevn_num_requests_waiting"], 0.0);
    let small = json!({"model": "tiny", "messages": user("chào"), "max_tokens": 2});
    assert_eq!(server.chat(&client, &small).await.0, 200);
    Arc::try_unwrap(server).ok().unwrap().stop().await;
}

/// A client that leaves mid-stream cancels its generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_mid_stream_cancels_generation() {
    let dir = tiny_model();
    let server = TestServer::start(options(dir.path(), EngineConfig::default())).await;
    let client = http();
    let body = json!({"model": "tiny", "messages": user("viết thật dài"), "max_tokens": 3500, "stream": true});
    let response = client.post(format!("{}/v1/chat/completions", server.base)).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut chunks = response.bytes_stream();
    let mut seen = 0;
    while seen < 3 {
        seen += chunks.next().await.unwrap().unwrap().iter().filter(|&&b| b == b'\n').count() / 2;
    }
    drop(chunks);
    let start = Instant::now();
    loop {
        let m = server.metrics().await;
        if m["stylevn_requests_cancelled_total"] == 1.0 && m["stylevn_num_requests_running"] == 0.0 {
            assert!(m["stylevn_generation_tokens_total"] < 3500.0, "stopped early");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the generation was not cancelled: {m:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let small = json!({"model": "tiny", "messages": user("chào"), "max_tokens": 2});
    assert_eq!(server.chat(&client, &small).await.0, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_guards_the_api_only() {
    let dir = tiny_model();
    let mut opts = options(dir.path(), EngineConfig::default());
    opts.api_key = Some("sk-test".into());
    let server = TestServer::start(opts).await;
    let client = http();
    let body = json!({"model": "tiny", "messages": user("chào"), "max_tokens": 2});
    let url = format!("{}/v1/chat/completions", server.base);
    let r = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let error: Value = r.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_api_key");
    assert_eq!(client.post(&url).bearer_auth("sk-wrong").json(&body).send().await.unwrap().status(), 401);
    assert_eq!(client.post(&url).bearer_auth("sk-test").json(&body).send().await.unwrap().status(), 200);
    assert_eq!(client.get(format!("{}/metrics", server.base)).send().await.unwrap().status(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_is_a_504() {
    let dir = tiny_model();
    let mut opts = options(dir.path(), EngineConfig::default());
    opts.defaults.request_timeout = Duration::ZERO;
    let server = TestServer::start(opts).await;
    let (status, text) = server.chat(&http(), &json!({"model": "tiny", "messages": user("chào")})).await;
    assert_eq!(status, 504, "{text}");
    assert_eq!(server.metrics().await["stylevn_requests_timed_out_total"], 1.0);
    server.stop().await;
}

/// Shutdown stops accepting but lets a running stream finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_streams() {
    let dir = tiny_model();
    let server = TestServer::start(options(dir.path(), EngineConfig::default())).await;
    let base = server.base.clone();
    let client = http();
    let body = json!({"model": "tiny", "messages": user("viết dài"), "max_tokens": 400, "stream": true});
    let response = client.post(format!("{base}/v1/chat/completions")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let reader = tokio::spawn(async move { response.text().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.stop().await;
    let sse = reader.await.unwrap();
    let (content, finish, _) = read_sse(&sse);
    assert!(finish.is_some() && !content.is_empty(), "the in-flight stream finished");
    assert!(http().get(format!("{base}/health")).send().await.is_err(), "no longer accepting");
}

/// Upstream mode in front of another stylevn server: the same answers, streamed and
/// not, with upstream's usage, and upstream's 4xx passed through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_mode_proxies_another_server() {
    let dir = tiny_model();
    let upstream = TestServer::start(options(dir.path(), EngineConfig::default())).await;
    let mut proxy_options = options(dir.path(), EngineConfig::default());
    proxy_options.backend = Backend::Upstream(UpstreamConfig {
        base_url: format!("{}/v1", upstream.base),
        model: "tiny".into(),
        api_key: None,
    });
    proxy_options.served_model_name = "proxied".into();
    let proxy = TestServer::start(proxy_options).await;
    let client = http();
    let direct = json!({"model": "tiny", "messages": user("Shop mở cửa mấy giờ?"), "max_tokens": 10});
    let (status, text) = upstream.chat(&client, &direct).await;
    assert_eq!(status, 200);
    let expected: Value = serde_json::from_str(&text).unwrap();

    let mut via = direct.clone();
    via["model"] = json!("proxied");
    let (status, text) = proxy.chat(&client, &via).await;
    assert_eq!(status, 200, "{text}");
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(got["model"], "proxied");
    assert_eq!(got["choices"][0]["message"], expected["choices"][0]["message"]);
    assert_eq!(got["usage"]["completion_tokens"], expected["usage"]["completion_tokens"]);

    via["stream"] = json!(true);
    via["stream_options"] = json!({"include_usage": true});
    let (status, sse) = proxy.chat(&client, &via).await;
    assert_eq!(status, 200);
    let (content, finish, usage) = read_sse(&sse);
    assert_eq!(content, expected["choices"][0]["message"]["content"].as_str().unwrap());
    assert_eq!(finish.as_deref(), expected["choices"][0]["finish_reason"].as_str());
    assert_eq!(usage.unwrap()["prompt_tokens"], expected["usage"]["prompt_tokens"]);

    let long = json!({"model": "proxied", "messages": user(&"dài ".repeat(2000)), "max_tokens": 4000});
    let (status, text) = proxy.chat(&client, &long).await;
    assert_eq!(status, 400, "upstream's 400 passes through: {text}");
    proxy.stop().await;
    upstream.stop().await;
}
