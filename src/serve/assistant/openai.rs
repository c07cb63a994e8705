//! The assistant's answers in OpenAI's chat-completion shapes: a
//! `chat.completion` object, or `chat.completion.chunk` SSE events (the verified
//! answer is streamed in pieces of a few words, then `[DONE]`). The extension
//! field `stylevn` carries the outcome and the tools run; `usage` sums every model
//! call of the turn.

use serde_json::{json, Value};

use super::turn::Reply;

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn extension(reply: &Reply) -> Value {
    let tools: Vec<&str> = reply.tools.iter().map(|t| t.name.as_str()).collect();
    json!({"outcome": reply.outcome.name(), "tools": tools})
}

/// The `chat.completion` object for `reply`.
pub fn completion(reply: &Reply, model: &str) -> Value {
    json!({
        "id": reply.id,
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.content},
            "logprobs": null, "finish_reason": "stop"}],
        "usage": reply.usage.to_json(),
        "stylevn": extension(reply),
    })
}

/// Words per streamed chunk.
const WORDS_PER_CHUNK: usize = 3;

/// The SSE events (each `data: ...\n\n`) streaming `reply`, ending with `[DONE]`;
/// with `include_usage`, a last chunk before it with no choices and the usage, as
/// OpenAI streams `stream_options.include_usage`.
pub fn completion_events(reply: &Reply, model: &str, include_usage: bool) -> Vec<String> {
    let created = unix_now();
    let chunk = |delta: Value, finish: Value| {
        json!({"id": reply.id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    let words: Vec<&str> = reply.content.split_inclusive(' ').collect();
    for piece in words.chunks(WORDS_PER_CHUNK) {
        events.push(chunk(json!({"content": piece.concat()}), Value::Null));
    }
    let mut last = chunk(json!({}), json!("stop"));
    last["stylevn"] = extension(reply);
    events.push(last);
    if include_usage {
        events.push(json!({"id": reply.id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [], "usage": reply.usage.to_json()}));
    }
    let mut out: Vec<String> = events.into_iter().map(|e| format!("data: {e}\n\n")).collect();
    out.push("data: [DONE]\n\n".into());
    out
}
