//! The interface between the HTTP layer and whatever answers a model id.
//!
//! A [`ChatService`] takes a validated OpenAI chat request and returns a stream of
//! [`ChatEvent`]s: content pieces, tool-call deltas, and one final `Finish` with the
//! usage. The HTTP layer turns that stream into an OpenAI response or SSE chunks; an
//! in-process caller (the store assistant) folds it with [`collect`] into a
//! [`ChatCompletion`], an OpenAI assistant message with parsed `tool_calls`.
//!
//! Services are registered per model id in [`super::api::ModelRegistry`]: the local
//! model ([`super::local::LocalChatService`]), an upstream OpenAI-compatible server
//! ([`super::upstream::UpstreamChatService`]), and later the assistant pipeline,
//! which itself calls a service for each model turn.

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::{json, Value};

use super::api_error::ApiError;
use crate::conversation::{Message, ToolCall};

/// How the model may use the tools (OpenAI `tool_choice`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// `"auto"` (the default when tools are given): calls are parsed out of the output.
    #[default]
    Auto,
    /// `"none"`: tools are shown to the model but output stays content.
    None,
    /// `"required"`: the answer must be a call to one of the tools.
    Required,
    /// `{"type": "function", "function": {"name": ...}}`: the answer must call this one.
    Function(String),
}

/// A validated chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// Model id.
    pub model: String,
    /// The conversation, validated (text parts joined, `developer` read as `system`).
    pub messages: Vec<Message>,
    /// OpenAI tool definitions (`{"type": "function", "function": {...}}`).
    pub tools: Vec<Value>,
    /// How tools may be used.
    pub tool_choice: ToolChoice,
    /// Whether the client wants SSE chunks.
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk with the usage.
    pub include_usage: bool,
    /// Sampling temperature (server default when absent).
    pub temperature: Option<f64>,
    /// Nucleus mass.
    pub top_p: Option<f64>,
    /// Sampling seed.
    pub seed: Option<u64>,
    /// Most tokens to generate (`max_completion_tokens` or `max_tokens`).
    pub max_tokens: Option<usize>,
    /// Stop strings.
    pub stop: Vec<String>,
}

impl ChatRequest {
    /// The messages as OpenAI JSON (what a chat template renders).
    pub fn openai_messages(&self) -> Vec<Value> {
        self.messages.iter().map(Message::to_openai).collect()
    }

    /// A non-streamed request for `model` with these messages and defaults elsewhere.
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> Self {
        ChatRequest {
            model: model.into(),
            messages,
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
            stream: false,
            include_usage: false,
            temperature: None,
            top_p: None,
            seed: None,
            max_tokens: None,
            stop: Vec::new(),
        }
    }
}

/// Token counts of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: usize,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cached_tokens += other.cached_tokens;
    }
}

impl Usage {
    /// Reads OpenAI's `usage` object (absent fields count 0).
    pub fn from_json(v: &Value) -> Self {
        let n = |p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0) as usize;
        Usage {
            prompt_tokens: n("/prompt_tokens"),
            completion_tokens: n("/completion_tokens"),
            cached_tokens: n("/prompt_tokens_details/cached_tokens"),
        }
    }

    /// OpenAI's `usage` object.
    pub fn to_json(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
        })
    }
}

/// Part of a tool call, as OpenAI streams them: the first delta of call `index`
/// carries its id and name, and the argument text may come in pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCallDelta {
    /// Which call of the answer.
    pub index: usize,
    /// Call id (first delta only).
    pub id: Option<String>,
    /// Function name (first delta only).
    pub name: Option<String>,
    /// A piece of the arguments' JSON text.
    pub arguments: String,
}

/// One step of an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// A piece of content.
    Content(String),
    /// A piece of a tool call.
    ToolCall(ToolCallDelta),
    /// The end: OpenAI `finish_reason` (`stop`, `length`, `tool_calls`) and usage.
    Finish {
        /// Why the answer ended.
        reason: String,
        /// Token counts.
        usage: Usage,
    },
}

/// The events of one answer; an `Err` ends it.
pub type ChatStream = BoxStream<'static, Result<ChatEvent, ApiError>>;

/// Something that answers chat requests for one model id.
///
/// `chat` resolves once the request is accepted (validation, queueing: errors here
/// become HTTP errors such as 400 or 429) and then streams the answer. Dropping the
/// stream cancels the work.
pub trait ChatService: Send + Sync {
    /// Starts answering `request`.
    fn chat(&self, request: ChatRequest) -> BoxFuture<'static, Result<ChatStream, ApiError>>;
}

/// A whole answer, folded from its events.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatCompletion {
    /// The content (`None` when the model only called tools).
    pub content: Option<String>,
    /// Parsed tool calls, their arguments the JSON text as streamed.
    pub tool_calls: Vec<ToolCall>,
    /// OpenAI `finish_reason`.
    pub finish_reason: String,
    /// Token counts.
    pub usage: Usage,
}

impl ChatCompletion {
    /// The OpenAI assistant message (`{"role": "assistant", "content", "tool_calls"}`),
    /// ready to append to the conversation.
    pub fn message(&self) -> Value {
        let mut message = json!({"role": "assistant", "content": self.content});
        if !self.tool_calls.is_empty() {
            message["tool_calls"] = self.tool_calls.iter().map(ToolCall::to_openai).collect();
        }
        message
    }
}

/// Folds an answer's events into a [`ChatCompletion`].
pub async fn collect(mut stream: ChatStream) -> Result<ChatCompletion, ApiError> {
    let mut content = String::new();
    // (id, name, arguments text) of each call so far.
    let mut calls: Vec<(String, String, String)> = Vec::new();
    while let Some(event) = stream.next().await {
        match event? {
            ChatEvent::Content(text) => content.push_str(&text),
            ChatEvent::ToolCall(delta) => {
                if calls.len() <= delta.index {
                    calls.resize(delta.index + 1, Default::default());
                }
                let (id, name, arguments) = &mut calls[delta.index];
                if let Some(given) = delta.id {
                    *id = given;
                }
                if let Some(piece) = delta.name {
                    name.push_str(&piece);
                }
                arguments.push_str(&delta.arguments);
            }
            ChatEvent::Finish { reason, usage } => {
                let content = (!content.is_empty() || calls.is_empty()).then_some(content);
                let tool_calls = calls
                    .into_iter()
                    .map(|(id, name, arguments)| ToolCall::new(name, Value::String(arguments)).with_id(id))
                    .collect();
                return Ok(ChatCompletion { content, tool_calls, finish_reason: reason, usage });
            }
        }
    }
    Err(ApiError::internal("the answer ended without a finish event"))
}
