//! OpenAI's response shapes:
//!
//! ```text
//! {"id": "chatcmpl-…", "object": "chat.completion", "created": 1732233600, "model": "m",
//!  "choices": [{"index": 0, "message": {"role": "assistant", "content": "…", "tool_calls": […]},
//!               "logprobs": null, "finish_reason": "stop"}],
//!  "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21,
//!            "prompt_tokens_details": {"cached_tokens": 0}}}
//!
//! data: {"id": "chatcmpl-…", "object": "chat.completion.chunk", "created": …, "model": "m",
//!        "choices": [{"index": 0, "delta": {"content": "Dạ"}, "logprobs": null, "finish_reason": null}]}
//! ```
//! Streams start with a `{"role": "assistant", "content": ""}` delta, end with an
//! empty delta carrying `finish_reason`, then (with `stream_options.include_usage`)
//! a chunk with `"choices": []` and the usage, then `data: [DONE]`. With
//! include_usage every other chunk has `"usage": null`.

use rand::distr::{Alphanumeric, SampleString};
use serde_json::{json, Value};

use crate::serve::chat::{ChatCompletion, ToolCallDelta, Usage};

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A fresh completion id.
pub fn completion_id() -> String {
    format!("chatcmpl-{}", Alphanumeric.sample_string(&mut rand::rng(), 29))
}

/// The non-streamed response.
pub fn completion(id: &str, created: u64, model: &str, answer: &ChatCompletion) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": answer.message(), "logprobs": null, "finish_reason": answer.finish_reason}],
        "usage": answer.usage.to_json(),
    })
}

/// Builds the chunks of one streamed answer.
pub struct ChunkWriter {
    /// Completion id shared by every chunk.
    pub id: String,
    /// Creation time shared by every chunk.
    pub created: u64,
    /// Model id.
    pub model: String,
    /// Whether chunks carry `"usage": null` and a usage chunk ends the stream.
    pub include_usage: bool,
}

impl ChunkWriter {
    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        });
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    /// The first chunk: the assistant role.
    pub fn role(&self) -> Value {
        self.chunk(json!({"role": "assistant", "content": ""}), None)
    }

    /// A content piece.
    pub fn content(&self, text: &str) -> Value {
        self.chunk(json!({"content": text}), None)
    }

    /// A tool-call delta.
    pub fn tool_call(&self, delta: &ToolCallDelta) -> Value {
        let mut call = json!({"index": delta.index, "function": {"arguments": delta.arguments}});
        if let Some(id) = &delta.id {
            call["id"] = id.as_str().into();
            call["type"] = "function".into();
        }
        if let Some(name) = &delta.name {
            call["function"]["name"] = name.as_str().into();
        }
        self.chunk(json!({"tool_calls": [call]}), None)
    }

    /// The last choice chunk.
    pub fn finish(&self, reason: &str) -> Value {
        self.chunk(json!({}), Some(reason))
    }

    /// The usage chunk (`include_usage` only).
    pub fn usage(&self, usage: &Usage) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage.to_json(),
        })
    }
}
