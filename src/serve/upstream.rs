//! Upstream mode: generation is proxied to an OpenAI-compatible server (vLLM on a GPU
//! instance) through the one client ([`OpenAiClient`]), streaming included, so this server (and the
//! assistant on top of it) scales out as stateless replicas in front of vLLM.
//!
//! Every request is streamed from upstream with `stream_options.include_usage` and
//! turned into [`ChatEvent`]s, so streamed and non-streamed answers share one path.
//! Tool-call deltas from upstream pass through; when upstream returns hermes markup
//! as content instead (vLLM without `--enable-auto-tool-choice`), it is parsed here.
//! Upstream 4xx errors keep their status (400, 404, 429); other failures are 502.

use std::time::{Duration, Instant};

use async_openai::error::OpenAIError;
use futures::future::BoxFuture;
use futures::StreamExt;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{json, Value};

use super::api_error::ApiError;
use super::chat::{ChatEvent, ChatRequest, ChatService, ChatStream, ToolCallDelta, ToolChoice, Usage};
use crate::conversation::openai_client::ChunkStream;
use crate::conversation::{CallError, OpenAiClient, ToolCallStream};

/// Where the upstream server is.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Base URL with the version prefix, e.g. `http://vllm-host:8000/v1`.
    pub base_url: String,
    /// The model id to ask upstream for.
    pub model: String,
    /// Bearer token for upstream, if it wants one.
    pub api_key: Option<String>,
}

/// A [`ChatService`] that forwards to an upstream server.
pub struct UpstreamChatService {
    client: OpenAiClient,
}

impl UpstreamChatService {
    /// A service for `config`; each request may take at most `timeout`.
    pub fn new(config: UpstreamConfig, timeout: Duration) -> Self {
        UpstreamChatService {
            client: OpenAiClient::new(&config.base_url, &config.model, config.api_key.as_deref(), timeout),
        }
    }

    fn body(&self, request: &ChatRequest) -> Value {
        let mut body = json!({"messages": request.messages});
        if !request.tools.is_empty() {
            body["tools"] = request.tools.clone().into();
            body["tool_choice"] = match &request.tool_choice {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Function(name) => json!({"type": "function", "function": {"name": name}}),
            };
        }
        let optional = [
            ("temperature", request.temperature.map(Value::from)),
            ("top_p", request.top_p.map(Value::from)),
            ("seed", request.seed.map(Value::from)),
            ("max_tokens", request.max_tokens.map(Value::from)),
        ];
        for (field, value) in optional {
            if let Some(v) = value {
                body[field] = v;
            }
        }
        if !request.stop.is_empty() {
            body["stop"] = request.stop.clone().into();
        }
        body
    }
}

fn upstream_error(e: OpenAIError) -> ApiError {
    match e {
        OpenAIError::ApiError(response) if response.status_code.is_client_error() => ApiError {
            status: response.status_code.as_u16(),
            message: format!("upstream: {}", response.api_error.message),
            param: response.api_error.param.clone(),
            retry_after_s: (response.status_code.as_u16() == 429).then_some(1),
            ..ApiError::invalid(None, "")
        },
        other => ApiError::upstream(format!("upstream: {other}")),
    }
}

impl ChatService for UpstreamChatService {
    fn chat(&self, request: ChatRequest) -> BoxFuture<'static, Result<ChatStream, ApiError>> {
        let body = self.body(&request);
        let client = self.client.clone();
        let deadline = Instant::now() + client.timeout();
        let timeout_s = client.timeout().as_secs();
        let parse_tools = !request.tools.is_empty() && request.tool_choice != ToolChoice::None;
        Box::pin(async move {
            let opened = client.stream(body, deadline).await.map_err(|e| match e {
                CallError::TimedOut(_) => ApiError::timeout(timeout_s),
                CallError::Failed(e) => upstream_error(e),
            })?;
            let state = Relay {
                chunks: opened,
                deadline,
                timeout_s,
                tools: parse_tools.then(ToolCallStream::new),
                saw_tool_deltas: false,
                finish: None,
                usage: Usage::default(),
                done: false,
            };
            Ok(relay(state))
        })
    }
}

/// State of one relayed answer.
struct Relay {
    chunks: ChunkStream,
    deadline: Instant,
    timeout_s: u64,
    tools: Option<ToolCallStream>,
    saw_tool_deltas: bool,
    finish: Option<String>,
    usage: Usage,
    done: bool,
}

fn relay(state: Relay) -> ChatStream {
    futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        let next = tokio::time::timeout_at(s.deadline.into(), s.chunks.next()).await;
        let out: Vec<Result<ChatEvent, ApiError>> = match next {
            Err(_) => {
                s.done = true;
                vec![Err(ApiError::timeout(s.timeout_s))]
            }
            Ok(Some(Err(e))) => {
                s.done = true;
                vec![Err(upstream_error(e))]
            }
            Ok(Some(Ok(chunk))) => read_chunk(&mut s, &chunk),
            Ok(None) => {
                s.done = true;
                let (rest, calls) = s.tools.take().map(ToolCallStream::finish).unwrap_or_default();
                let mut out = Vec::new();
                if !rest.is_empty() {
                    out.push(Ok(ChatEvent::Content(rest)));
                }
                let mut reason = s.finish.take().unwrap_or_else(|| "stop".into());
                if !calls.is_empty() && !s.saw_tool_deltas {
                    reason = "tool_calls".into();
                    for (index, call) in calls.into_iter().enumerate() {
                        out.push(Ok(ChatEvent::ToolCall(ToolCallDelta {
                            index,
                            id: Some(format!("call_{}", Alphanumeric.sample_string(&mut rand::rng(), 24))),
                            arguments: call.arguments_text(),
                            name: Some(call.name),
                        })));
                    }
                }
                out.push(Ok(ChatEvent::Finish { reason, usage: s.usage }));
                out
            }
        };
        Some((out, s))
    })
    .flat_map(futures::stream::iter)
    .boxed()
}

/// The events in one upstream chunk.
fn read_chunk(s: &mut Relay, chunk: &Value) -> Vec<Result<ChatEvent, ApiError>> {
    let mut out = Vec::new();
    if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
        s.usage = Usage::from_json(usage);
    }
    let choice = &chunk["choices"][0];
    if let Some(reason) = choice["finish_reason"].as_str() {
        s.finish = Some(reason.to_string());
    }
    if let Some(text) = choice["delta"]["content"].as_str().filter(|t| !t.is_empty()) {
        let content = match &mut s.tools {
            Some(parser) => parser.push(text),
            None => text.to_string(),
        };
        if !content.is_empty() {
            out.push(Ok(ChatEvent::Content(content)));
        }
    }
    for call in choice["delta"]["tool_calls"].as_array().into_iter().flatten() {
        s.saw_tool_deltas = true;
        out.push(Ok(ChatEvent::ToolCall(ToolCallDelta {
            index: call["index"].as_u64().unwrap_or(0) as usize,
            id: call["id"].as_str().map(str::to_owned),
            name: call["function"]["name"].as_str().map(str::to_owned),
            arguments: call["function"]["arguments"].as_str().unwrap_or_default().to_string(),
        })));
    }
    out
}
