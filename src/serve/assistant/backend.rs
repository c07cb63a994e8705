//! The model the assistant talks to: any [`ChatBackend`] taking OpenAI-shaped
//! messages and tools and returning an OpenAI-shaped assistant message. The server
//! adapts its in-process engine to it; [`OpenAiBackend`] talks to any
//! OpenAI-compatible endpoint (vLLM, another `stylevn serve`, a hosted model for
//! `--fallback-url`).

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{json, Value};

use crate::conversation::{parse_tool_calls, OpenAiClient, ToolCall};
use crate::serve::chat::Usage;
use crate::{Error, Result};

/// Sampling settings of one call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Temperature (0 = greedy).
    pub temperature: f32,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Longest answer in tokens.
    pub max_tokens: u32,
    /// Seed, for reproducible sampling.
    pub seed: Option<u64>,
}

/// One call to the model: OpenAI `messages` and `tools`.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// OpenAI chat messages (system first).
    pub messages: Vec<Value>,
    /// OpenAI `tools` entries.
    pub tools: Vec<Value>,
    /// Sampling.
    pub sampling: Sampling,
}

/// The model's answer: text and/or tool calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssistantMessage {
    /// Text content.
    pub content: Option<String>,
    /// Tool calls, each with an id and its arguments parsed (`{}` when the model's
    /// JSON did not parse).
    pub tool_calls: Vec<ToolCall>,
    /// The tokens this call took, as the model's server counted them.
    pub usage: Usage,
}

impl AssistantMessage {
    /// A text answer.
    pub fn text(content: impl Into<String>) -> Self {
        AssistantMessage { content: Some(content.into()), ..Default::default() }
    }

    /// One tool call.
    pub fn call(name: &str, arguments: Value) -> Self {
        AssistantMessage { tool_calls: vec![ToolCall::new(name, arguments).with_id("call_0")], ..Default::default() }
    }

    /// The same message with `usage`.
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = usage;
        self
    }

    /// Reads an OpenAI `message` object. Hermes `<tool_call>` markup left in the
    /// content (a server without a tool parser) is parsed by the one tool-call parser
    /// ([`crate::conversation::tool_call`]).
    pub fn from_openai(message: &Value) -> Self {
        let mut content = message.get("content").and_then(Value::as_str).map(str::to_owned);
        let mut calls: Vec<ToolCall> = message
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, c)| ToolCall::from_openai(i, c))
            .collect();
        if calls.is_empty() {
            if let Some(text) = content.as_deref() {
                let (rest, parsed) = parse_tool_calls(text);
                if !parsed.is_empty() {
                    calls = parsed.into_iter().enumerate().map(|(i, c)| c.with_id(format!("call_{i}"))).collect();
                    content = Some(rest).filter(|r| !r.trim().is_empty());
                }
            }
        }
        let tool_calls = calls
            .into_iter()
            .map(|c| {
                let arguments = match c.arguments_value() {
                    object @ Value::Object(_) => object,
                    _ => json!({}),
                };
                ToolCall { arguments, ..c }
            })
            .collect();
        AssistantMessage { content, tool_calls, usage: Usage::default() }
    }

    /// The OpenAI `message` object (arguments as a JSON string, as the API carries them).
    pub fn to_openai(&self) -> Value {
        let mut m = json!({"role": "assistant", "content": self.content});
        if !self.tool_calls.is_empty() {
            m["tool_calls"] = self.tool_calls.iter().map(ToolCall::to_openai).collect();
        }
        m
    }
}

/// A chat model the assistant can ask.
pub trait ChatBackend: Send + Sync {
    /// A short name for logs and metrics (`local`, `fallback`, a URL).
    fn name(&self) -> &str;
    /// One model call.
    fn chat<'a>(&'a self, request: &'a ChatRequest) -> BoxFuture<'a, Result<AssistantMessage>>;
}

/// Any OpenAI-compatible `/v1/chat/completions` endpoint, through the one client.
pub struct OpenAiBackend {
    client: OpenAiClient,
}

impl OpenAiBackend {
    /// A backend for `model` at `base_url` (including `/v1`); requests are sent once.
    pub fn new(base_url: &str, model: &str, api_key: Option<&str>, timeout: Duration) -> Self {
        OpenAiBackend { client: OpenAiClient::new(base_url, model, api_key, timeout) }
    }
}

impl ChatBackend for OpenAiBackend {
    fn name(&self) -> &str {
        self.client.base_url()
    }

    fn chat<'a>(&'a self, request: &'a ChatRequest) -> BoxFuture<'a, Result<AssistantMessage>> {
        Box::pin(async move {
            let s = request.sampling;
            let mut body =
                json!({"messages": request.messages, "temperature": s.temperature, "max_tokens": s.max_tokens});
            if !request.tools.is_empty() {
                body["tools"] = json!(request.tools);
            }
            if let Some(p) = s.top_p {
                body["top_p"] = json!(p);
            }
            if let Some(seed) = s.seed {
                body["seed"] = json!(seed);
            }
            let url = self.client.base_url();
            let reply = self.client.complete(body).await.map_err(|e| Error::msg(format!("{url}: {e}")))?;
            let message = reply
                .pointer("/choices/0/message")
                .ok_or_else(|| Error::msg(format!("{url}: reply has no choices[0].message")))?;
            Ok(AssistantMessage::from_openai(message).with_usage(Usage::from_json(&reply["usage"])))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_message_round_trip_and_hermes_markup() {
        let m = AssistantMessage::call("get_stock", json!({"sku": "AT001"}));
        assert_eq!(AssistantMessage::from_openai(&m.to_openai()), m);
        let raw = json!({"role": "assistant",
            "content": "<tool_call>\n{\"name\": \"get_policy\", \"arguments\": {\"topic\": \"doi-tra\"}}\n</tool_call>"});
        let parsed = AssistantMessage::from_openai(&raw);
        assert_eq!(parsed.content, None);
        assert_eq!(parsed.tool_calls[0].name, "get_policy");
        assert_eq!(parsed.tool_calls[0].arguments, json!({"topic": "doi-tra"}));
    }
}
