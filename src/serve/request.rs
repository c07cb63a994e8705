//! Parsing and validating `POST /v1/chat/completions` bodies into [`ChatRequest`]s.
//!
//! The body deserializes into [`ChatCompletionBody`], whose fields carry their limits
//! and defaults beside them; [`parse_chat_request`] then checks what serde cannot (ranges,
//! roles, tool names) and builds the [`ChatRequest`] with typed [`Message`]s. Every
//! rejection is a 400 in OpenAI's error shape naming the field (`param`) at fault:
//! `messages[2].content`, `max_tokens`, `tools[0]`. Fields the server does not use
//! (`user`, `frequency_penalty`, ...) are ignored.

use serde::Deserialize;
use serde_json::Value;

use super::api_error::ApiError;
use super::chat::{ChatRequest, ToolChoice};
use crate::conversation::{Message, Role, ToolCall};

/// Roles a message may have (`developer` is OpenAI's newer name for `system`).
const ROLES: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];

/// Most `stop` strings (OpenAI's limit).
const MAX_STOP: usize = 4;

/// Request-size limits.
#[derive(Debug, Clone)]
pub struct RequestLimits {
    /// Most messages in one request.
    pub max_messages: usize,
    /// Largest `max_tokens` accepted.
    pub max_tokens: usize,
}

/// An OpenAI chat-completions body as it arrives (`null` reads as absent everywhere).
#[derive(Debug, Deserialize)]
pub struct ChatCompletionBody {
    /// Model id. Required, non-empty.
    pub model: Option<String>,
    /// The conversation. Required: 1 to [`RequestLimits::max_messages`] messages.
    pub messages: Option<Vec<MessageBody>>,
    /// OpenAI tool definitions, each `{"type": "function", "function": {"name": ...}}`
    /// with a non-empty name; kept verbatim for the template. Default: none.
    pub tools: Option<Vec<Value>>,
    /// `"auto"` (default), `"none"`, `"required"` (needs `tools`), or
    /// `{"type": "function", "function": {"name": ...}}` naming one of `tools`.
    pub tool_choice: Option<ToolChoiceBody>,
    /// SSE chunks instead of one response. Default: false.
    pub stream: Option<bool>,
    /// Streaming options; only `include_usage` is read.
    pub stream_options: Option<StreamOptionsBody>,
    /// Sampling temperature, 0 to 2. Default: the server's.
    pub temperature: Option<f64>,
    /// Nucleus mass, greater than 0 and at most 1. Default: the server's.
    pub top_p: Option<f64>,
    /// Sampling seed; a negative seed wraps to the same 64 bits, as OpenAI allows them.
    pub seed: Option<SeedBody>,
    /// Most tokens to generate, 1 to [`RequestLimits::max_tokens`] (the older name).
    pub max_tokens: Option<i64>,
    /// Most tokens to generate, 1 to [`RequestLimits::max_tokens`]; wins over `max_tokens`.
    pub max_completion_tokens: Option<i64>,
    /// Choices per request: only 1. Default: 1.
    pub n: Option<u64>,
    /// Stop strings: one string or at most [`MAX_STOP`]. Default: none.
    pub stop: Option<StopBody>,
}

/// One message as it arrives.
#[derive(Debug, Deserialize)]
pub struct MessageBody {
    /// One of [`ROLES`]; `developer` becomes `system`.
    pub role: Option<String>,
    /// A string, or text parts joined into one. Required except for an assistant
    /// message with `tool_calls`.
    pub content: Option<ContentBody>,
    /// An assistant's calls, each with `function.name` and `function.arguments`.
    pub tool_calls: Option<Vec<ToolCallBody>>,
    /// The call a tool message answers.
    pub tool_call_id: Option<String>,
    /// The participant's name.
    pub name: Option<String>,
}

/// Message content: a string or a list of parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ContentBody {
    /// Plain text.
    Text(String),
    /// Parts; only `{"type": "text", "text": ...}` is supported.
    Parts(Vec<ContentPartBody>),
}

/// One content part.
#[derive(Debug, Deserialize)]
pub struct ContentPartBody {
    /// Must be `"text"`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The part's text.
    pub text: Option<String>,
}

/// One assistant tool call as it arrives.
#[derive(Debug, Deserialize)]
pub struct ToolCallBody {
    /// Call id; empty when absent.
    pub id: Option<String>,
    /// The function called.
    pub function: Option<FunctionCallBody>,
}

/// The function of a tool call.
#[derive(Debug, Deserialize)]
pub struct FunctionCallBody {
    /// Function name. Required.
    pub name: Option<String>,
    /// The arguments: a JSON string, or an object (serialized to its text). Required.
    pub arguments: Option<Value>,
}

/// `tool_choice` as it arrives.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ToolChoiceBody {
    /// `"none"`, `"auto"` or `"required"`.
    Mode(String),
    /// `{"type": "function", "function": {"name": ...}}`.
    Function {
        /// The function forced.
        function: Option<NamedFunctionBody>,
    },
}

/// The function a `tool_choice` object names.
#[derive(Debug, Deserialize)]
pub struct NamedFunctionBody {
    /// Function name; must be one of `tools`.
    pub name: Option<String>,
}

/// `stream_options`.
#[derive(Debug, Deserialize)]
pub struct StreamOptionsBody {
    /// A last chunk with the usage. Default: false.
    pub include_usage: Option<bool>,
}

/// `seed`: any 64-bit integer.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SeedBody {
    /// A seed that fits `i64` (negative ones wrap).
    Signed(i64),
    /// A seed above `i64::MAX`.
    Unsigned(u64),
}

/// `stop`: one string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StopBody {
    /// One stop string.
    One(String),
    /// Several (at most [`MAX_STOP`]).
    Many(Vec<String>),
}

/// Parses `body` (raw bytes: invalid UTF-8 and malformed JSON are 400s).
pub fn parse_chat_request(body: &[u8], limits: &RequestLimits) -> Result<ChatRequest, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(None, format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::invalid(None, "the body must be a JSON object"));
    }
    let body: ChatCompletionBody = serde_path_to_error::deserialize(value).map_err(|e| {
        let param = e.path().to_string();
        shape_error(&param)
    })?;
    validate(body, limits)
}

/// The 400 for a field of the wrong JSON type at `path` (`messages[0].role`).
fn shape_error(path: &str) -> ApiError {
    // Errors inside one tool call, content part or tool name that entry as a whole.
    for entry in [".tool_calls[", ".content[", "tools["] {
        if let Some(at) = path.find(entry) {
            let end = path[at..].find(']').map_or(path.len(), |e| at + e + 1);
            let param = &path[..end];
            let message = match entry {
                ".tool_calls[" => "a tool call needs `function.name`",
                ".content[" => "only text content parts (`{\"type\": \"text\", \"text\": ...}`) are supported",
                _ => "a tool must be `{\"type\": \"function\", \"function\": {\"name\": ...}}`",
            };
            return invalid(param, message);
        }
    }
    let field = path.rsplit('.').next().unwrap_or(path);
    let message = match field {
        "model" => "`model` is required and must be a non-empty string".to_string(),
        "messages" => "`messages` is required and must be an array of messages".to_string(),
        "tool_call_id" => "must be a string".to_string(),
        "role" | "name" => format!("`{path}` must be a string"),
        "content" => "`content` must be a string or an array of parts".to_string(),
        "tool_calls" => "`tool_calls` must be an array".to_string(),
        "tools" => "`tools` must be an array".to_string(),
        "tool_choice" => "`tool_choice` must be \"none\", \"auto\", \"required\" or a function".to_string(),
        "stream" | "include_usage" => format!("`{field}` must be a boolean"),
        "stream_options" => "`stream_options` must be an object".to_string(),
        "temperature" => "`temperature` must be a number between 0 and 2".to_string(),
        "top_p" => "`top_p` must be a number between 0 and 1".to_string(),
        "seed" | "max_tokens" | "max_completion_tokens" => format!("`{field}` must be an integer"),
        "n" => "only `n: 1` is supported".to_string(),
        "stop" => format!("`stop` must be a string or an array of at most {MAX_STOP} strings"),
        // `messages[i]` itself.
        _ => format!("`{path}` must be an object"),
    };
    invalid(path, message)
}

/// The checks serde cannot make, and the typed request.
fn validate(body: ChatCompletionBody, limits: &RequestLimits) -> Result<ChatRequest, ApiError> {
    let model = body
        .model
        .filter(|m| !m.is_empty())
        .ok_or_else(|| invalid("model", "`model` is required and must be a non-empty string"))?;
    let messages = match body.messages {
        None => return Err(invalid("messages", "`messages` is required and must be an array of messages")),
        Some(list) if list.is_empty() => return Err(invalid("messages", "`messages` must not be empty")),
        Some(list) if list.len() > limits.max_messages => {
            return Err(invalid(
                "messages",
                format!("{} messages is more than this server accepts ({})", list.len(), limits.max_messages),
            ))
        }
        Some(list) => list.into_iter().enumerate().map(|(i, m)| message(i, m)).collect::<Result<Vec<_>, _>>()?,
    };
    let tools = body.tools.unwrap_or_default();
    for (i, t) in tools.iter().enumerate() {
        tool(i, t)?;
    }
    let tool_choice = tool_choice(body.tool_choice, &tools)?;
    let temperature = range("temperature", body.temperature, 0.0, 2.0)?;
    let top_p = range("top_p", body.top_p, 0.0, 1.0)?;
    if top_p == Some(0.0) {
        return Err(invalid("top_p", "`top_p` must be greater than 0"));
    }
    let seed = body.seed.map(|s| match s {
        SeedBody::Signed(s) => s as u64,
        SeedBody::Unsigned(s) => s,
    });
    let mut max_tokens = None;
    for (field, n) in [("max_tokens", body.max_tokens), ("max_completion_tokens", body.max_completion_tokens)] {
        match n {
            None => {}
            Some(n) if n >= 1 && n as u64 <= limits.max_tokens as u64 => max_tokens = Some(n as usize),
            Some(n) => {
                return Err(invalid(field, format!("`{field}` must be between 1 and {}, got {n}", limits.max_tokens)))
            }
        }
    }
    if body.n.is_some_and(|n| n != 1) {
        return Err(invalid("n", "only `n: 1` is supported"));
    }
    let stop = match body.stop {
        None => Vec::new(),
        Some(StopBody::One(s)) => vec![s],
        Some(StopBody::Many(list)) if list.len() <= MAX_STOP => list,
        Some(StopBody::Many(_)) => return Err(shape_error("stop")),
    };
    Ok(ChatRequest {
        model,
        messages,
        tools,
        tool_choice,
        stream: body.stream.unwrap_or(false),
        include_usage: body.stream_options.and_then(|o| o.include_usage).unwrap_or(false),
        temperature,
        top_p,
        seed,
        max_tokens,
        stop,
    })
}

fn invalid(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(Some(param.to_string()), message)
}

fn range(field: &str, x: Option<f64>, min: f64, max: f64) -> Result<Option<f64>, ApiError> {
    match x {
        Some(x) if !(min..=max).contains(&x) => {
            Err(invalid(field, format!("`{field}` must be a number between {min} and {max}")))
        }
        x => Ok(x),
    }
}

/// Validates message `i` into a [`Message`]: `developer` becomes `system`, text parts
/// are joined into one string, `tool_call_id` is kept only on tool messages and
/// `tool_calls` only on assistant messages.
fn message(i: usize, m: MessageBody) -> Result<Message, ApiError> {
    let param = format!("messages[{i}]");
    let role = match m.role.as_deref() {
        Some("system" | "developer") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("tool") => Role::Tool,
        Some(r) => {
            return Err(invalid(
                &format!("{param}.role"),
                format!("`{param}.role` is `{r}`; expected one of {}", ROLES.join(", ")),
            ))
        }
        None => return Err(invalid(&format!("{param}.role"), format!("`{param}.role` must be a string"))),
    };
    let content = match m.content {
        None => None,
        Some(ContentBody::Text(s)) => Some(s),
        Some(ContentBody::Parts(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.into_iter().enumerate() {
                match (part.kind.as_deref(), part.text) {
                    (Some("text"), Some(t)) => text.push_str(&t),
                    _ => return Err(shape_error(&format!("{param}.content[{j}]"))),
                }
            }
            Some(text)
        }
    };
    let mut out = Message { role, content, tool_calls: Vec::new(), tool_call_id: None, name: m.name };
    match role {
        Role::Assistant => {
            out.tool_calls = m
                .tool_calls
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(j, c)| tool_call(&format!("{param}.tool_calls[{j}]"), c))
                .collect::<Result<_, _>>()?;
            if out.content.is_none() && out.tool_calls.is_empty() {
                return Err(invalid(&format!("{param}.content"), "an assistant message needs content or tool_calls"));
            }
        }
        Role::Tool => {
            if out.content.is_none() {
                return Err(invalid(&format!("{param}.content"), "a tool message needs content"));
            }
            out.tool_call_id = m.tool_call_id;
        }
        _ => {
            if out.content.is_none() {
                let role = m.role.as_deref().unwrap_or_default();
                let role = if role == "developer" { "system" } else { role };
                return Err(invalid(&format!("{param}.content"), format!("a {role} message needs content")));
            }
        }
    }
    Ok(out)
}

/// Validates an assistant tool call; `arguments` may be a JSON string or an object
/// (kept as its JSON text, as OpenAI carries arguments).
fn tool_call(param: &str, c: ToolCallBody) -> Result<ToolCall, ApiError> {
    let function = c.function.ok_or_else(|| shape_error(param))?;
    let name = function.name.ok_or_else(|| shape_error(param))?;
    let arguments = match function.arguments {
        Some(Value::String(s)) => s,
        Some(v @ Value::Object(_)) => v.to_string(),
        _ => return Err(invalid(param, "a tool call needs `function.arguments` (a JSON string)")),
    };
    Ok(ToolCall::new(name, Value::String(arguments)).with_id(c.id.unwrap_or_default()))
}

/// Checks tool definition `i` (kept verbatim).
fn tool(i: usize, t: &Value) -> Result<(), ApiError> {
    #[derive(Deserialize)]
    struct ToolShape {
        #[serde(rename = "type")]
        kind: String,
        function: NamedFunctionBody,
    }
    match ToolShape::deserialize(t) {
        Ok(ToolShape { kind, function: NamedFunctionBody { name: Some(name) } })
            if kind == "function" && !name.is_empty() =>
        {
            Ok(())
        }
        _ => Err(shape_error(&format!("tools[{i}]"))),
    }
}

fn tool_choice(choice: Option<ToolChoiceBody>, tools: &[Value]) -> Result<ToolChoice, ApiError> {
    let names: Vec<&str> = tools.iter().filter_map(|t| t["function"]["name"].as_str()).collect();
    let choice = match choice {
        None => return Ok(ToolChoice::Auto),
        Some(ToolChoiceBody::Mode(s)) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            _ => return Err(shape_error("tool_choice")),
        },
        Some(ToolChoiceBody::Function { function }) => match function.and_then(|f| f.name) {
            Some(name) if names.contains(&name.as_str()) => ToolChoice::Function(name),
            Some(name) => {
                return Err(invalid("tool_choice", format!("`tool_choice` names `{name}`, which is not in `tools`")))
            }
            None => return Err(invalid("tool_choice", "`tool_choice` object needs `function.name`")),
        },
    };
    if matches!(choice, ToolChoice::Required) && tools.is_empty() {
        return Err(invalid("tool_choice", "`tool_choice: required` needs `tools`"));
    }
    Ok(choice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMITS: RequestLimits = RequestLimits { max_messages: 8, max_tokens: 100 };

    fn parse(v: Value) -> Result<ChatRequest, ApiError> {
        parse_chat_request(v.to_string().as_bytes(), &LIMITS)
    }

    #[test]
    fn accepts_a_full_request_and_normalizes_messages() {
        let r = parse(json!({
            "model": "m", "stream": true, "stream_options": {"include_usage": true}, "temperature": 0,
            "max_tokens": 5, "stop": "END", "seed": -1, "user": "ignored",
            "messages": [
                {"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "f", "arguments": {"x": 1}}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
        }))
        .unwrap();
        assert_eq!(r.messages[0].to_openai(), json!({"role": "system", "content": "ab"}));
        assert_eq!(r.messages[1].to_openai()["tool_calls"][0]["function"]["arguments"], "{\"x\":1}");
        assert_eq!((r.stream, r.include_usage, r.max_tokens, r.seed), (true, true, Some(5), Some(u64::MAX)));
        assert_eq!(r.tool_choice, ToolChoice::Function("f".into()));
        assert_eq!(r.stop, ["END"]);
    }

    #[test]
    fn rejections_name_the_field() {
        let good = json!([{"role": "user", "content": "hi"}]);
        let cases = [
            (json!({"messages": good}), "model"),
            (json!({"model": "m", "messages": []}), "messages"),
            (json!({"model": "m", "messages": "hi"}), "messages"),
            (json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}), "messages[0].role"),
            (json!({"model": "m", "messages": [{"role": "user"}]}), "messages[0].content"),
            (json!({"model": "m", "messages": [{"role": "user", "content": 5}]}), "messages[0].content"),
            (json!({"model": "m", "messages": good, "max_tokens": -3}), "max_tokens"),
            (json!({"model": "m", "messages": good, "max_tokens": 1e12}), "max_tokens"),
            (json!({"model": "m", "messages": good, "max_completion_tokens": 101}), "max_completion_tokens"),
            (json!({"model": "m", "messages": good, "temperature": "hot"}), "temperature"),
            (json!({"model": "m", "messages": good, "stream": "yes"}), "stream"),
            (json!({"model": "m", "messages": good, "n": 2}), "n"),
            (json!({"model": "m", "messages": good, "tool_choice": "required"}), "tool_choice"),
            (json!({"model": "m", "messages": vec![json!({"role": "user", "content": "x"}); 9]}), "messages"),
        ];
        for (body, param) in cases {
            let e = parse(body.clone()).unwrap_err();
            assert_eq!((e.status, e.param.as_deref()), (400, Some(param)), "{body}");
        }
        for raw in [&b"{"[..], b"\xff\xfe", b"[]", b"null"] {
            assert_eq!(parse_chat_request(raw, &LIMITS).unwrap_err().status, 400);
        }
    }
}
