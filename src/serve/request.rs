//! Parsing and validating `POST /v1/chat/completions` bodies into [`ChatRequest`]s.
//! Every rejection is a 400 naming the field (`param`) at fault, as OpenAI does.
//! Fields the server does not use (`user`, `frequency_penalty`, ...) are ignored.

use serde_json::{Map, Value};

use super::api_error::ApiError;
use super::chat::{ChatRequest, ToolChoice};

/// Roles a message may have (`developer` is OpenAI's newer name for `system`).
const ROLES: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];

/// Request-size limits.
#[derive(Debug, Clone)]
pub struct RequestLimits {
    /// Most messages in one request.
    pub max_messages: usize,
    /// Largest `max_tokens` accepted.
    pub max_tokens: usize,
}

/// Parses `body` (raw bytes: invalid UTF-8 and malformed JSON are 400s).
pub fn parse_chat_request(body: &[u8], limits: &RequestLimits) -> Result<ChatRequest, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(None, format!("the body is not valid JSON: {e}")))?;
    let Value::Object(obj) = value else { return Err(ApiError::invalid(None, "the body must be a JSON object")) };

    let model = match obj.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => return Err(invalid("model", "`model` is required and must be a non-empty string")),
    };
    let messages = match obj.get("messages") {
        Some(Value::Array(list)) if list.is_empty() => return Err(invalid("messages", "`messages` must not be empty")),
        Some(Value::Array(list)) if list.len() > limits.max_messages => {
            return Err(invalid(
                "messages",
                format!("{} messages is more than this server accepts ({})", list.len(), limits.max_messages),
            ))
        }
        Some(Value::Array(list)) => {
            list.iter().enumerate().map(|(i, m)| message(i, m)).collect::<Result<Vec<_>, _>>()?
        }
        _ => return Err(invalid("messages", "`messages` is required and must be an array of messages")),
    };
    let tools = match obj.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list.iter().enumerate().map(|(i, t)| tool(i, t)).collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("tools", "`tools` must be an array")),
    };
    let tool_choice = tool_choice(obj.get("tool_choice"), &tools)?;
    let stream = boolean(&obj, "stream")?.unwrap_or(false);
    let include_usage = match obj.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => boolean(o, "include_usage")?.unwrap_or(false),
        Some(_) => return Err(invalid("stream_options", "`stream_options` must be an object")),
    };
    let temperature = number(&obj, "temperature", 0.0, 2.0)?;
    let top_p = number(&obj, "top_p", 0.0, 1.0)?;
    if top_p == Some(0.0) {
        return Err(invalid("top_p", "`top_p` must be greater than 0"));
    }
    let seed = match obj.get("seed") {
        None | Some(Value::Null) => None,
        // Negative seeds are valid in OpenAI's API; they wrap to the same bits.
        Some(v) => Some(
            v.as_i64().map(|s| s as u64).or(v.as_u64()).ok_or_else(|| invalid("seed", "`seed` must be an integer"))?,
        ),
    };
    let mut max_tokens = None;
    for field in ["max_tokens", "max_completion_tokens"] {
        match obj.get(field) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_i64() {
                Some(n) if n >= 1 && n as u64 <= limits.max_tokens as u64 => max_tokens = Some(n as usize),
                Some(n) => {
                    return Err(invalid(
                        field,
                        format!("`{field}` must be between 1 and {}, got {n}", limits.max_tokens),
                    ))
                }
                None => return Err(invalid(field, format!("`{field}` must be an integer"))),
            },
        }
    }
    match obj.get("n") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64() == Some(1) => {}
        Some(_) => return Err(invalid("n", "only `n: 1` is supported")),
    }
    let stop = match obj.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(list)) if list.len() <= 4 => list
            .iter()
            .map(|s| s.as_str().map(str::to_owned).ok_or_else(|| invalid("stop", "`stop` entries must be strings")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("stop", "`stop` must be a string or an array of at most 4 strings")),
    };
    Ok(ChatRequest {
        model,
        messages,
        tools,
        tool_choice,
        stream,
        include_usage,
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

fn boolean(obj: &Map<String, Value>, field: &str) -> Result<Option<bool>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid(field, format!("`{field}` must be a boolean"))),
    }
}

fn number(obj: &Map<String, Value>, field: &str, min: f64, max: f64) -> Result<Option<f64>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if (min..=max).contains(&x) => Ok(Some(x)),
            _ => Err(invalid(field, format!("`{field}` must be a number between {min} and {max}"))),
        },
    }
}

/// Validates message `i` and normalizes it: `developer` becomes `system`, text parts
/// are joined into one string, unused fields are dropped.
fn message(i: usize, m: &Value) -> Result<Value, ApiError> {
    let param = format!("messages[{i}]");
    let Value::Object(obj) = m else { return Err(invalid(&param, format!("`{param}` must be an object"))) };
    let role = match obj.get("role").and_then(Value::as_str) {
        Some(r) if ROLES.contains(&r) => r,
        Some(r) => {
            return Err(invalid(
                &format!("{param}.role"),
                format!("`{param}.role` is `{r}`; expected one of {}", ROLES.join(", ")),
            ))
        }
        None => return Err(invalid(&format!("{param}.role"), format!("`{param}.role` must be a string"))),
    };
    let role = if role == "developer" { "system" } else { role };
    let content = match obj.get("content") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => {
                        return Err(invalid(
                            &format!("{param}.content[{j}]"),
                            "only text content parts (`{\"type\": \"text\", \"text\": ...}`) are supported",
                        ))
                    }
                }
            }
            Some(text)
        }
        Some(_) => return Err(invalid(&format!("{param}.content"), "`content` must be a string or an array of parts")),
    };
    let mut out = Map::new();
    out.insert("role".into(), role.into());
    out.insert("content".into(), content.clone().map_or(Value::Null, Value::String));
    match role {
        "assistant" => {
            let calls = match obj.get("tool_calls") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(calls)) => calls
                    .iter()
                    .enumerate()
                    .map(|(j, c)| tool_call(&format!("{param}.tool_calls[{j}]"), c))
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(invalid(&format!("{param}.tool_calls"), "`tool_calls` must be an array")),
            };
            if content.is_none() && calls.is_empty() {
                return Err(invalid(&format!("{param}.content"), "an assistant message needs content or tool_calls"));
            }
            if !calls.is_empty() {
                out.insert("tool_calls".into(), Value::Array(calls));
            }
        }
        "tool" => {
            if content.is_none() {
                return Err(invalid(&format!("{param}.content"), "a tool message needs content"));
            }
            if let Some(id) = obj.get("tool_call_id") {
                let id = id.as_str().ok_or_else(|| invalid(&format!("{param}.tool_call_id"), "must be a string"))?;
                out.insert("tool_call_id".into(), id.into());
            }
        }
        _ => {
            if content.is_none() {
                return Err(invalid(&format!("{param}.content"), format!("a {role} message needs content")));
            }
        }
    }
    Ok(Value::Object(out))
}

/// Validates an assistant tool call; `arguments` may be a JSON string or an object.
fn tool_call(param: &str, c: &Value) -> Result<Value, ApiError> {
    let function = c.get("function").filter(|f| f.is_object());
    let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
    let Some(name) = name else { return Err(invalid(param, "a tool call needs `function.name`")) };
    let arguments = match function.and_then(|f| f.get("arguments")) {
        Some(Value::String(s)) => s.clone(),
        Some(v @ Value::Object(_)) => v.to_string(),
        _ => return Err(invalid(param, "a tool call needs `function.arguments` (a JSON string)")),
    };
    let id = c.get("id").and_then(Value::as_str).unwrap_or_default();
    Ok(serde_json::json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}))
}

fn tool(i: usize, t: &Value) -> Result<Value, ApiError> {
    let param = format!("tools[{i}]");
    let function = t.get("function").filter(|f| f.is_object());
    let ok_type = t.get("type").and_then(Value::as_str) == Some("function");
    let name = function.and_then(|f| f.get("name")).and_then(Value::as_str).filter(|n| !n.is_empty());
    if !ok_type || name.is_none() {
        return Err(invalid(&param, "a tool must be `{\"type\": \"function\", \"function\": {\"name\": ...}}`"));
    }
    Ok(t.clone())
}

fn tool_choice(v: Option<&Value>, tools: &[Value]) -> Result<ToolChoice, ApiError> {
    let names: Vec<&str> = tools.iter().filter_map(|t| t["function"]["name"].as_str()).collect();
    let choice = match v {
        None | Some(Value::Null) => return Ok(ToolChoice::Auto),
        Some(Value::String(s)) if s == "auto" => ToolChoice::Auto,
        Some(Value::String(s)) if s == "none" => ToolChoice::None,
        Some(Value::String(s)) if s == "required" => ToolChoice::Required,
        Some(Value::Object(o)) => match o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
            Some(name) if names.contains(&name) => ToolChoice::Function(name.to_string()),
            Some(name) => {
                return Err(invalid("tool_choice", format!("`tool_choice` names `{name}`, which is not in `tools`")))
            }
            None => return Err(invalid("tool_choice", "`tool_choice` object needs `function.name`")),
        },
        Some(_) => {
            return Err(invalid("tool_choice", "`tool_choice` must be \"none\", \"auto\", \"required\" or a function"))
        }
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
        assert_eq!(r.messages[0], json!({"role": "system", "content": "ab"}));
        assert_eq!(r.messages[1]["tool_calls"][0]["function"]["arguments"], "{\"x\":1}");
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
