//! A scripted OpenAI-compatible server for the eval tests: loopback only, one thread
//! per connection, bounded (it stops on drop and after `MAX_CONNECTIONS`).
//!
//! `POST .../chat/completions` bodies go to a handler that returns a [`Reply`]: a JSON
//! response with a status, or an SSE stream whose chunks are each sent after a chosen
//! delay (`data: {json}\n\n`, then `data: [DONE]\n\n`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

/// The most connections one server accepts before it stops by itself.
pub const MAX_CONNECTIONS: usize = 2_000;

/// What the server answers one request with.
pub enum Reply {
    /// A JSON body with this HTTP status.
    Json(u16, Value),
    /// An SSE stream: each chunk sent after its delay.
    Stream(Vec<(Duration, Value)>),
}

type Handler = dyn Fn(&Value) -> Reply + Send + Sync;

/// A running mock server.
pub struct MockServer {
    /// `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
    /// Every request body received, in arrival order.
    pub requests: Arc<Mutex<Vec<Value>>>,
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Starts a server on an ephemeral loopback port.
    pub fn start(handler: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (stop2, requests2) = (stop.clone(), requests.clone());
        let accept = std::thread::spawn(move || {
            let served = AtomicUsize::new(0);
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) || served.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (handler, requests) = (handler.clone(), requests2.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &*handler, &requests);
                });
            }
        });
        MockServer { base_url: format!("http://{addr}/v1"), requests, addr, stop, accept: Some(accept) }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve(conn: TcpStream, handler: &Handler, requests: &Mutex<Vec<Value>>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut content_length = 0usize;
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                content_length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; content_length.min(16 << 20)];
    reader.read_exact(&mut body)?;
    let mut out = conn;
    if !request_line.contains("/chat/completions") {
        return write_json(
            &mut out,
            404,
            &json!({"error": {"message": "not found", "type": "not_found", "param": null, "code": null}}),
        );
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    requests.lock().unwrap().push(request.clone());
    match handler(&request) {
        Reply::Json(status, v) => write_json(&mut out, status, &v),
        Reply::Stream(chunks) => {
            out.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
            )?;
            out.flush()?;
            for (delay, chunk) in chunks {
                std::thread::sleep(delay);
                out.write_all(format!("data: {chunk}\n\n").as_bytes())?;
                out.flush()?;
            }
            out.write_all(b"data: [DONE]\n\n")?;
            out.flush()
        }
    }
}

fn write_json(out: &mut TcpStream, status: u16, v: &Value) -> std::io::Result<()> {
    let body = v.to_string();
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    out.write_all(head.as_bytes())?;
    out.write_all(body.as_bytes())?;
    out.flush()
}

/// A streamed chat chunk carrying `delta`.
pub fn chunk(delta: Value) -> Value {
    json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0, "model": "mock",
           "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
}

/// The final usage chunk (`stream_options.include_usage`).
pub fn usage_chunk(prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0, "model": "mock", "choices": [],
           "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                     "total_tokens": prompt_tokens + completion_tokens}})
}

/// A stream that sends `text` word by word with no delay (role chunk first).
pub fn stream_text(text: &str) -> Reply {
    let mut chunks = vec![(Duration::ZERO, chunk(json!({"role": "assistant", "content": ""})))];
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    for w in &words {
        chunks.push((Duration::ZERO, chunk(json!({"content": w}))));
    }
    chunks.push((Duration::ZERO, usage_chunk(10, words.len() as u64)));
    Reply::Stream(chunks)
}

/// A stream carrying one OpenAI tool call.
pub fn stream_tool_call(name: &str, arguments: &Value) -> Reply {
    let args = arguments.to_string();
    let (a, b) = args.split_at(args.len() / 2);
    Reply::Stream(vec![
        (Duration::ZERO, chunk(json!({"role": "assistant", "content": null}))),
        (
            Duration::ZERO,
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": name, "arguments": ""}}]}),
            ),
        ),
        (Duration::ZERO, chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": a}}]}))),
        (Duration::ZERO, chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": b}}]}))),
    ])
}

/// A non-streamed chat completion whose message content is `content`.
pub fn completion(content: &str) -> Reply {
    Reply::Json(
        200,
        json!({"id": "chatcmpl-mock", "object": "chat.completion", "created": 0, "model": "judge",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
    )
}

/// An OpenAI-shaped error.
pub fn error(status: u16, message: &str) -> Reply {
    Reply::Json(status, json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}}))
}

/// The text of the last message with `role` in a request.
pub fn last_content(request: &Value, role: &str) -> String {
    request["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == role))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}
