//! The evaluation's side of the one OpenAI-compatible client ([`OpenAiClient`]):
//! streamed chat turns with benchmark_serving timings for the model under test, and
//! plain JSON-mode turns for the judge.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

use super::latency::RequestTiming;
use crate::conversation::{parse_tool_calls, CallError, OpenAiClient, ToolCall};
use crate::{Error, Result};

/// Where a model is served.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Base URL including the version prefix, e.g. `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    /// Model id to request.
    pub model: String,
    /// Bearer token, when the server wants one.
    pub api_key: Option<String>,
    /// Limit for one whole request (connect to end of stream).
    pub timeout: Duration,
}

/// One streamed answer and its timings.
#[derive(Debug, Clone, Default)]
pub struct StreamedReply {
    /// The text content (hermes tool-call markup removed when it was parsed).
    pub content: String,
    /// Tool calls, from `tool_calls` deltas or hermes markup in the content.
    pub tool_calls: Vec<ToolCall>,
    /// benchmark_serving timings.
    pub timing: RequestTiming,
    /// `finish_reason` of the last choice chunk that had one.
    pub finish_reason: Option<String>,
}

/// A client for one endpoint.
pub struct ChatClient {
    client: OpenAiClient,
    endpoint: Endpoint,
}

impl ChatClient {
    /// A client for `endpoint`. Requests are sent once: retrying is the caller's
    /// decision (the judge retries and counts; the model under test never retries).
    pub fn new(endpoint: Endpoint) -> Self {
        let client =
            OpenAiClient::new(&endpoint.base_url, &endpoint.model, endpoint.api_key.as_deref(), endpoint.timeout);
        ChatClient { client, endpoint }
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Streams one chat turn. `body` holds everything but `model` and `stream`, which
    /// the client sets (with `stream_options.include_usage`).
    pub async fn stream_chat(&self, body: Value) -> Result<StreamedReply> {
        tokio::time::timeout(self.endpoint.timeout, self.stream_inner(body))
            .await
            .map_err(|_| Error::msg(format!("request timed out after {:?}", self.endpoint.timeout)))?
    }

    async fn stream_inner(&self, body: Value) -> Result<StreamedReply> {
        let sent = Instant::now();
        let deadline = sent + self.endpoint.timeout;
        let mut stream = self
            .client
            .stream(body, deadline)
            .await
            .map_err(|e| Error::msg(format!("{}: {e}", self.endpoint.base_url)))?;
        let mut reply = StreamedReply::default();
        let mut first: Option<Instant> = None;
        let mut most_recent = sent;
        let mut text_chunks = 0usize;
        let mut usage_tokens: Option<usize> = None;
        // Tool-call deltas, by index: (name, concatenated argument text).
        let mut partial_calls: Vec<(String, String)> = Vec::new();
        while let Some(item) = stream.next().await {
            let chunk = item.map_err(|e| Error::msg(format!("{}: stream: {e}", self.endpoint.base_url)))?;
            let now = Instant::now();
            if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
                usage_tokens = usage["completion_tokens"].as_u64().map(|n| n as usize);
                reply.timing.prompt_tokens = usage["prompt_tokens"].as_u64().unwrap_or(0) as usize;
            }
            let choice = &chunk["choices"][0];
            if let Some(reason) = choice["finish_reason"].as_str() {
                reply.finish_reason = Some(reason.to_string());
            }
            let delta = &choice["delta"];
            let mut carries_text = false;
            if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
                reply.content.push_str(text);
                carries_text = true;
            }
            if let Some(calls) = delta["tool_calls"].as_array() {
                for call in calls {
                    let index = call["index"].as_u64().unwrap_or(0) as usize;
                    if partial_calls.len() <= index {
                        partial_calls.resize(index + 1, Default::default());
                    }
                    if let Some(name) = call["function"]["name"].as_str() {
                        partial_calls[index].0.push_str(name);
                        carries_text = true;
                    }
                    if let Some(args) = call["function"]["arguments"].as_str().filter(|a| !a.is_empty()) {
                        partial_calls[index].1.push_str(args);
                        carries_text = true;
                    }
                }
            }
            if carries_text {
                text_chunks += 1;
                match first {
                    None => {
                        first = Some(now);
                        reply.timing.ttft_ms = ms(now - sent);
                    }
                    Some(_) => reply.timing.itl_ms.push(ms(now - most_recent)),
                }
            }
            most_recent = now;
        }
        reply.timing.e2e_ms = ms(sent.elapsed());
        reply.timing.output_tokens = usage_tokens.unwrap_or(text_chunks);
        for (name, args) in partial_calls.into_iter().filter(|(n, _)| !n.is_empty()) {
            let arguments = serde_json::from_str(&args).unwrap_or(Value::String(args));
            reply.tool_calls.push(ToolCall::new(name, arguments));
        }
        if reply.tool_calls.is_empty() {
            let (content, calls) = parse_tool_calls(&reply.content);
            if !calls.is_empty() {
                reply.content = content;
                reply.tool_calls = calls;
            }
        }
        Ok(reply)
    }

    /// One non-streamed chat turn asking for a JSON object (`response_format:
    /// json_object`, temperature 0); returns the message content as sent.
    pub async fn chat_json(&self, system: &str, user: &str) -> Result<String> {
        let body = json!({
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "temperature": 0.0,
            "response_format": {"type": "json_object"},
        });
        let response = self.client.complete(body).await.map_err(|e| match e {
            CallError::TimedOut(limit) => Error::msg(format!("judge request timed out after {limit:?}")),
            CallError::Failed(e) => Error::msg(format!("{}: {e}", self.endpoint.base_url)),
        })?;
        response["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::msg(format!("{}: response has no message content", self.endpoint.base_url)))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
