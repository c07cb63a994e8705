//! The [`ChatService`] of a model served in this process: render the chat through the
//! model's template, tokenize, queue on the [`EngineHandle`], and turn the engine's
//! events into content and parsed tool calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::StreamExt;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::Value;

use super::api_error::ApiError;
use super::chat::{ChatEvent, ChatRequest, ChatService, ChatStream, ToolCallDelta, ToolChoice, Usage};
use super::engine::{EngineHandle, GenEvent, GenRequest, GenStream, GuardedObject, OutputGuard, SubmitError};
use super::prompt::{render_prompt, render_prompt_prefix};
use crate::conversation::{ToolCall, ToolCallStream};
use crate::generate::{ChatModel, FinishReason, SamplingParams};
use crate::tokenize::ChatTemplate;

/// Defaults for fields a request leaves out, and the per-request time limit.
#[derive(Debug, Clone)]
pub struct GenerationDefaults {
    /// Sampling temperature.
    pub temperature: f64,
    /// Nucleus mass.
    pub top_p: f64,
    /// Most tokens to generate when the request does not say.
    pub max_tokens: usize,
    /// Limit for one request, queueing included.
    pub request_timeout: Duration,
}

/// A local model behind the engine.
pub struct LocalChatService {
    engine: EngineHandle,
    model: Arc<ChatModel>,
    template: Arc<ChatTemplate>,
    defaults: GenerationDefaults,
}

impl LocalChatService {
    /// A service for `model`, running on `engine`.
    pub fn new(engine: EngineHandle, model: Arc<ChatModel>, defaults: GenerationDefaults) -> crate::Result<Self> {
        let template = Arc::new(ChatTemplate::from_model_files(&model.files)?);
        Ok(LocalChatService { engine, model, template, defaults })
    }

    /// Renders and tokenizes `request` and builds the engine request (CPU work: run off the async threads).
    fn prepare(&self, request: &ChatRequest) -> Result<GenRequest, ApiError> {
        let messages = request.openai_messages();
        let mut text = render_prompt(&self.template, &messages, &request.tools)?;
        let forced = Forced::of(request);
        let guard = forced.as_ref().map(|f| {
            text.push_str(&f.prompt_suffix());
            f.guard(&request.tools)
        });
        let prompt = self.model.encode(&text).map_err(|e| ApiError::invalid(Some("messages".into()), e.to_string()))?;
        let shared_prefix = self.shared_prefix(&messages, &request.tools, &prompt);
        let limit = self.engine.config().max_model_len;
        let room = limit.saturating_sub(prompt.len());
        if room == 0 {
            return Err(ApiError::invalid(
                Some("messages".into()),
                format!("This model's maximum context length is {limit} tokens. However, your messages resulted in {} tokens.", prompt.len()),
            ));
        }
        let max_new_tokens = match request.max_tokens {
            Some(n) if n > room => {
                return Err(ApiError::invalid(
                    Some("max_tokens".into()),
                    format!(
                        "This model's maximum context length is {limit} tokens. However, you requested {} tokens \
                         ({} in the messages, {n} in the completion).",
                        prompt.len() + n,
                        prompt.len()
                    ),
                ))
            }
            Some(n) => n,
            None => self.defaults.max_tokens.min(room),
        };
        let sampling = SamplingParams {
            temperature: request.temperature.unwrap_or(self.defaults.temperature),
            top_p: request.top_p.unwrap_or(self.defaults.top_p),
            seed: request.seed.unwrap_or_else(rand::random),
            ..SamplingParams::default()
        };
        Ok(GenRequest {
            prompt,
            sampling,
            max_new_tokens,
            stop: request.stop.clone(),
            eos_ids: self.model.eos_ids.clone(),
            deadline: Instant::now() + self.defaults.request_timeout,
            shared_prefix,
            guard,
        })
    }
}

impl LocalChatService {
    /// Token length of the conversation before its last message (system prompt, tools,
    /// earlier turns): what the next request of this conversation, or of any
    /// conversation with the same system prompt, starts with. 0 when its tokens are not
    /// a prefix of `prompt`.
    fn shared_prefix(&self, messages: &[Value], tools: &[Value], prompt: &[u32]) -> usize {
        let earlier = &messages[..messages.len() - 1];
        if earlier.is_empty() {
            return 0;
        }
        let Ok(text) = render_prompt_prefix(&self.template, earlier, tools) else { return 0 };
        match self.model.encode(&text) {
            Ok(tokens) if prompt.starts_with(&tokens) => tokens.len(),
            _ => 0,
        }
    }
}

/// A forced tool call (`tool_choice` `required` or a named function), written as hermes
/// markup: the prompt ends inside the call, and the engine's [`OutputGuard`] lets
/// only a tool name (for `required`) and a JSON object of arguments follow.
#[derive(Debug, Clone)]
enum Forced {
    /// `required`: any of these tools.
    AnyOf(Vec<String>),
    /// This tool.
    Function(String),
}

/// What comes between the tool name and the arguments object.
const ARGUMENTS_KEY: &str = "\", \"arguments\": ";

impl Forced {
    fn of(request: &ChatRequest) -> Option<Self> {
        match &request.tool_choice {
            ToolChoice::Required => Some(Forced::AnyOf(
                request.tools.iter().filter_map(|t| t["function"]["name"].as_str().map(str::to_owned)).collect(),
            )),
            ToolChoice::Function(name) => Some(Forced::Function(name.clone())),
            ToolChoice::Auto | ToolChoice::None => None,
        }
    }

    /// Text appended to the prompt (after the assistant turn's opening).
    fn prompt_suffix(&self) -> String {
        match self {
            Forced::AnyOf(_) => "<tool_call>\n{\"name\": \"".to_string(),
            Forced::Function(name) => format!("<tool_call>\n{{\"name\": \"{name}{ARGUMENTS_KEY}"),
        }
    }

    /// The guard: the tool name (for `required`), then an arguments object whose keys
    /// are the tool schema's `properties`.
    fn guard(&self, tools: &[Value]) -> OutputGuard {
        let keys = |name: &str| {
            let tool = tools.iter().find(|t| t["function"]["name"] == name)?;
            let properties = tool["function"]["parameters"]["properties"].as_object()?;
            let keys: Vec<(String, Option<String>)> =
                properties.iter().map(|(k, v)| (k.clone(), v["type"].as_str().map(str::to_owned))).collect();
            Some(keys).filter(|k| !k.is_empty())
        };
        let shapes = match self {
            Forced::AnyOf(names) => {
                names.iter().map(|n| GuardedObject { opening: format!("{n}{ARGUMENTS_KEY}"), keys: keys(n) }).collect()
            }
            Forced::Function(name) => vec![GuardedObject { opening: String::new(), keys: keys(name) }],
        };
        OutputGuard { shapes }
    }

    /// The call in the generated text: `(name, arguments)`.
    fn call(&self, output: &str) -> (String, String) {
        match self {
            Forced::Function(name) => (name.clone(), output.trim().to_string()),
            Forced::AnyOf(_) => match output.split_once(ARGUMENTS_KEY) {
                Some((name, arguments)) => (name.to_string(), arguments.trim().to_string()),
                None => (output.to_string(), String::new()),
            },
        }
    }
}

impl ChatService for Arc<LocalChatService> {
    fn chat(&self, request: ChatRequest) -> BoxFuture<'static, Result<ChatStream, ApiError>> {
        let this = self.clone();
        Box::pin(async move {
            let prepared = {
                let this = this.clone();
                let request = request.clone();
                tokio::task::spawn_blocking(move || this.prepare(&request))
                    .await
                    .map_err(|e| ApiError::internal(format!("preparing the prompt: {e}")))??
            };
            let events = this.engine.submit(prepared).map_err(|e| match e {
                SubmitError::QueueFull(_) => ApiError::overloaded(e.to_string()),
                SubmitError::ShuttingDown => ApiError::unavailable(e.to_string()),
                SubmitError::Invalid(m) => ApiError::invalid(Some("messages".into()), m),
            })?;
            let parse_tools = !request.tools.is_empty() && request.tool_choice == ToolChoice::Auto;
            let timeout_s = this.defaults.request_timeout.as_secs();
            Ok(answer_stream(events, parse_tools, Forced::of(&request), timeout_s))
        })
    }
}

/// State of one answer being translated from engine events.
struct Translate {
    events: GenStream,
    forced: Option<Forced>,
    forced_text: String,
    tools: Option<ToolCallStream>,
    usage: Usage,
    timeout_s: u64,
    done: bool,
}

/// Engine events to chat events, parsing hermes tool calls when `parse_tools`.
fn answer_stream(events: GenStream, parse_tools: bool, forced: Option<Forced>, timeout_s: u64) -> ChatStream {
    let state = Translate {
        events,
        forced,
        forced_text: String::new(),
        tools: parse_tools.then(ToolCallStream::new),
        usage: Usage::default(),
        timeout_s,
        done: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            let Some(event) = s.events.next().await else {
                s.done = true;
                return Some((vec![Err(ApiError::internal("the engine stopped"))], s));
            };
            let out: Vec<Result<ChatEvent, ApiError>> = match event {
                GenEvent::Started { prompt_tokens, cached_tokens } => {
                    s.usage.prompt_tokens = prompt_tokens;
                    s.usage.cached_tokens = cached_tokens;
                    continue;
                }
                GenEvent::Text(text) if s.forced.is_some() => {
                    s.forced_text.push_str(&text);
                    continue;
                }
                GenEvent::Text(text) => {
                    let content = match &mut s.tools {
                        Some(parser) => parser.push(&text),
                        None => text,
                    };
                    if content.is_empty() {
                        continue;
                    }
                    vec![Ok(ChatEvent::Content(content))]
                }
                GenEvent::Finished { reason, completion_tokens } => {
                    s.done = true;
                    s.usage.completion_tokens = completion_tokens;
                    let mut out = Vec::new();
                    let (rest, calls) = match &s.forced {
                        Some(forced) => {
                            let (name, arguments) = forced.call(&s.forced_text);
                            (String::new(), vec![ToolCall::new(name, arguments.into())])
                        }
                        None => s.tools.take().map(ToolCallStream::finish).unwrap_or_default(),
                    };
                    if !rest.is_empty() {
                        out.push(Ok(ChatEvent::Content(rest)));
                    }
                    let reason = match (&s.forced, reason) {
                        (Some(_), FinishReason::Length) => "length",
                        // OpenAI ends a call forced by name with "stop".
                        (Some(Forced::Function(_)), _) => "stop",
                        _ if !calls.is_empty() => "tool_calls",
                        (_, FinishReason::Stop) => "stop",
                        (_, FinishReason::Length) => "length",
                    };
                    for (index, call) in calls.into_iter().enumerate() {
                        out.push(Ok(ChatEvent::ToolCall(ToolCallDelta {
                            index,
                            id: Some(format!("call_{}", Alphanumeric.sample_string(&mut rand::rng(), 24))),
                            arguments: call.arguments_text(),
                            name: Some(call.name),
                        })));
                    }
                    out.push(Ok(ChatEvent::Finish { reason: reason.into(), usage: s.usage }));
                    out
                }
                GenEvent::TimedOut => {
                    s.done = true;
                    vec![Err(ApiError::timeout(s.timeout_s))]
                }
                GenEvent::Failed(message) => {
                    s.done = true;
                    vec![Err(ApiError::internal(message))]
                }
            };
            return Some((out, s));
        }
    })
    .flat_map(futures::stream::iter)
    .boxed()
}
