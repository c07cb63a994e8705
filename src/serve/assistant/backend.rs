//! The model the assistant talks to: a [`ServedModel`], any [`ChatService`] asked
//! with OpenAI-shaped messages and tools, its answer one OpenAI-shaped
//! [`AssistantMessage`]. In `stylevn serve` it is the model id the server registered
//! (the local engine or the upstream proxy); `--fallback-url` is an
//! [`crate::serve::upstream::UpstreamChatService`].

use std::sync::Arc;

use futures::StreamExt;
use serde_json::{json, Value};

use crate::conversation::{parse_tool_calls, ToolCall};
use crate::serve::chat::{
    collect, ChatEvent, ChatRequest as ServiceRequest, ChatService, ChatStream, ToolCallDelta, ToolChoice, Usage,
};
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

    /// The message streamed as a [`ChatService`] streams an answer: the content, one
    /// delta per tool call (id, name and the arguments' JSON text), then `Finish` with
    /// the usage (`tool_calls` when there are calls, `stop` otherwise).
    pub fn into_stream(self) -> ChatStream {
        let mut events: Vec<ChatEvent> = self.content.into_iter().map(ChatEvent::Content).collect();
        let reason = if self.tool_calls.is_empty() { "stop" } else { "tool_calls" };
        for (index, call) in self.tool_calls.into_iter().enumerate() {
            events.push(ChatEvent::ToolCall(ToolCallDelta {
                index,
                id: Some(call.id.clone()).filter(|id| !id.is_empty()),
                arguments: call.arguments_text(),
                name: Some(call.name),
            }));
        }
        events.push(ChatEvent::Finish { reason: reason.into(), usage: self.usage });
        futures::stream::iter(events.into_iter().map(Ok)).boxed()
    }
}

/// A model the assistant asks: a [`ChatService`], the server's one chat interface
/// (the local engine, an upstream OpenAI-compatible server, a test double), and the
/// model id it is asked for. Each call sends the assistant's request as a validated
/// chat request and folds the streamed answer into one [`AssistantMessage`].
#[derive(Clone)]
pub struct ServedModel {
    model: String,
    service: Arc<dyn ChatService>,
}

impl ServedModel {
    /// Asks `service` for `model`.
    pub fn new(model: impl Into<String>, service: Arc<dyn ChatService>) -> Self {
        ServedModel { model: model.into(), service }
    }

    /// The model id, for logs and metrics.
    pub fn name(&self) -> &str {
        &self.model
    }

    /// One model call.
    pub async fn chat(&self, request: &ChatRequest) -> Result<AssistantMessage> {
        let model = &self.model;
        let messages = serde_json::from_value(request.messages.clone().into())
            .map_err(|e| Error::msg(format!("{model}: a message of the conversation: {e}")))?;
        let mut req = ServiceRequest::new(model.clone(), messages);
        req.tools = request.tools.clone();
        req.tool_choice = ToolChoice::Auto;
        req.temperature = Some(request.sampling.temperature as f64);
        req.top_p = request.sampling.top_p.map(f64::from);
        req.seed = request.sampling.seed;
        req.max_tokens = Some(request.sampling.max_tokens as usize);
        let stream = self.service.chat(req).await.map_err(|e| Error::msg(format!("{model}: {e:?}")))?;
        let done = collect(stream).await.map_err(|e| Error::msg(format!("{model}: {e:?}")))?;
        Ok(AssistantMessage::from_openai(&done.message()).with_usage(done.usage))
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

    /// A message streamed as its events and folded back is the same message.
    #[test]
    fn events_fold_back_into_the_message() {
        let usage = Usage { prompt_tokens: 7, completion_tokens: 3, cached_tokens: 2 };
        for m in [
            AssistantMessage::text("Dạ, còn hàng ạ.").with_usage(usage),
            AssistantMessage::call("get_stock", json!({"sku": "QJ-01-BLK"})).with_usage(usage),
        ] {
            let done = futures::executor::block_on(collect(m.clone().into_stream())).unwrap();
            assert_eq!(AssistantMessage::from_openai(&done.message()).with_usage(done.usage), m);
        }
    }
}
