//! The model the assistant talks to: any [`ChatBackend`] taking OpenAI-shaped
//! messages and tools and returning an OpenAI-shaped assistant message. The server
//! adapts its in-process engine to it; [`OpenAiBackend`] talks to any
//! OpenAI-compatible endpoint (vLLM, another `stylevn serve`, a hosted model for
//! `--fallback-url`).

use std::time::Duration;

use async_openai::config::OpenAIConfig;
use futures::future::BoxFuture;
use serde_json::{json, Value};

use crate::eval::checks::parse_hermes_tool_calls;
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

/// One tool call the model asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// Call id (echoed by the tool message).
    pub id: String,
    /// Function name.
    pub name: String,
    /// Arguments object (`{}` when the model's JSON did not parse).
    pub arguments: Value,
}

/// The model's answer: text and/or tool calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssistantMessage {
    /// Text content.
    pub content: Option<String>,
    /// Tool calls.
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
        let id = "call_0".to_string();
        AssistantMessage { tool_calls: vec![ToolCall { id, name: name.into(), arguments }], ..Default::default() }
    }

    /// The same message with `usage`.
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = usage;
        self
    }

    /// Reads an OpenAI `message` object. Hermes `<tool_call>` markup left in the
    /// content (a server without a tool parser) is parsed as vLLM's hermes parser does.
    pub fn from_openai(message: &Value) -> Self {
        let mut content = message.get("content").and_then(Value::as_str).map(str::to_owned);
        let mut tool_calls: Vec<ToolCall> = message
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, c)| {
                let f = c.get("function")?;
                let name = f.get("name")?.as_str()?.to_string();
                let arguments = match f.get("arguments") {
                    Some(Value::String(s)) => serde_json::from_str(s).unwrap_or_else(|_| json!({})),
                    Some(v @ Value::Object(_)) => v.clone(),
                    _ => json!({}),
                };
                let id = c.get("id").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| format!("call_{i}"));
                Some(ToolCall { id, name, arguments })
            })
            .collect();
        if tool_calls.is_empty() {
            if let Some(text) = content.as_deref().filter(|t| t.contains("<tool_call>")) {
                let (rest, calls) = parse_hermes_tool_calls(text);
                if !calls.is_empty() {
                    tool_calls = calls
                        .into_iter()
                        .enumerate()
                        .map(|(i, c)| ToolCall { id: format!("call_{i}"), name: c.name, arguments: c.arguments })
                        .collect();
                    content = Some(rest).filter(|r| !r.trim().is_empty());
                }
            }
        }
        AssistantMessage { content, tool_calls, usage: Usage::default() }
    }

    /// The OpenAI `message` object (arguments as a JSON string, as the API carries them).
    pub fn to_openai(&self) -> Value {
        let mut m = json!({"role": "assistant", "content": self.content});
        if !self.tool_calls.is_empty() {
            m["tool_calls"] = self
                .tool_calls
                .iter()
                .map(|c| {
                    json!({"id": c.id, "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments.to_string()}})
                })
                .collect();
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

/// Any OpenAI-compatible `/v1/chat/completions` endpoint, through async-openai.
pub struct OpenAiBackend {
    client: async_openai::Client<OpenAIConfig>,
    base_url: String,
    model: String,
    timeout: Duration,
}

impl OpenAiBackend {
    /// A backend for `model` at `base_url` (including `/v1`); requests are sent once.
    pub fn new(base_url: &str, model: &str, api_key: Option<&str>, timeout: Duration) -> Self {
        crate::tls::install_crypto_provider();
        let config =
            OpenAIConfig::new().with_api_base(base_url.trim_end_matches('/')).with_api_key(api_key.unwrap_or_default());
        let client = async_openai::Client::with_config(config)
            .with_http_service(async_openai::middleware::ReqwestService::default());
        OpenAiBackend { client, base_url: base_url.to_string(), model: model.to_string(), timeout }
    }
}

impl ChatBackend for OpenAiBackend {
    fn name(&self) -> &str {
        &self.base_url
    }

    fn chat<'a>(&'a self, request: &'a ChatRequest) -> BoxFuture<'a, Result<AssistantMessage>> {
        Box::pin(async move {
            let s = request.sampling;
            let mut body = json!({"model": self.model, "messages": request.messages,
                "temperature": s.temperature, "max_tokens": s.max_tokens});
            if !request.tools.is_empty() {
                body["tools"] = json!(request.tools);
            }
            if let Some(p) = s.top_p {
                body["top_p"] = json!(p);
            }
            if let Some(seed) = s.seed {
                body["seed"] = json!(seed);
            }
            let chat = self.client.chat();
            let reply: Value = tokio::time::timeout(self.timeout, chat.create_byot::<Value, Value>(body))
                .await
                .map_err(|_| Error::msg(format!("{}: timed out after {:?}", self.base_url, self.timeout)))?
                .map_err(|e| Error::msg(format!("{}: {e}", self.base_url)))?;
            let message = reply
                .pointer("/choices/0/message")
                .ok_or_else(|| Error::msg(format!("{}: reply has no choices[0].message", self.base_url)))?;
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
