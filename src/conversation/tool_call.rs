//! Tool calls: the one [`ToolCall`] type, and the one parser of the calls a model
//! writes into its text, for every format we read.
//!
//! Wire formats, all inside hermes tags (Qwen2.5, Hermes, SmolLM2):
//!
//! ```text
//! Dạ em kiểm tra ngay ạ.<tool_call>
//! {"name": "get_order_status", "arguments": {"order_id": "DH250004"}}
//! </tool_call>
//! <tool_call>[{"name": "get_stock", "arguments": "{\"sku\": \"AT001\"}"}]</tool_call>
//! ```
//! - one object per tag (Qwen's hermes form), or a JSON list of them in one tag
//!   (SmolLM2's form);
//! - `arguments` an object, or the object's JSON text as a string (kept verbatim, as
//!   OpenAI carries arguments as text);
//! - the last tag may be unterminated (generation stopped at `</tool_call>` or ran out).
//!
//! Parsed as vLLM's hermes parser does: regex `<tool_call>(.*?)</tool_call>|<tool_call>(.*)`
//! (DOTALL), each match JSON with `name` and `arguments`; the content is the text
//! before the first `<tool_call>`; on any error the whole text stays content.
//!
//! [`ToolCallStream`] does the same over streamed pieces (the local engine's tokens,
//! an upstream's SSE deltas): text before a (possible) `<tool_call>` streams out at
//! once, and everything from the tag on is held until generation ends, then parsed as
//! a whole, so a stream reassembles to exactly the non-streamed answer.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The opening tag.
pub const TOOL_CALL_START: &str = "<tool_call>";

static HERMES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)<tool_call>(.*?)</tool_call>|<tool_call>(.*)").expect("valid regex"));

/// One call of a tool: OpenAI's `{"id", "type": "function", "function": {"name", "arguments"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Call id (`call_...`), echoed by the tool message; empty where none was given
    /// (a parsed call before the server names it, an eval's expected call).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Function name.
    pub name: String,
    /// The arguments: the JSON object, or, where they arrived as text (a string in
    /// the model's JSON, streamed deltas, text that does not parse), that text as a
    /// JSON string.
    #[serde(default)]
    pub arguments: Value,
}

impl ToolCall {
    /// A call without an id.
    pub fn new(name: impl Into<String>, arguments: Value) -> Self {
        ToolCall { id: String::new(), name: name.into(), arguments }
    }

    /// The same call with `id`.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// The arguments as the JSON text OpenAI carries: text that arrived as text
    /// verbatim, an object serialized.
    pub fn arguments_text(&self) -> String {
        match &self.arguments {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        }
    }

    /// The arguments as a JSON value: text parsed (`{}` when it is not JSON), an
    /// object as it is.
    pub fn arguments_value(&self) -> Value {
        match &self.arguments {
            Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| json!({})),
            other => other.clone(),
        }
    }

    /// OpenAI's `tool_calls` entry (arguments as JSON text).
    pub fn to_openai(&self) -> Value {
        json!({"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments_text()}})
    }

    /// Reads OpenAI's `tool_calls` entry `i` (id `call_<i>` when absent); `None`
    /// without a function name.
    pub fn from_openai(i: usize, call: &Value) -> Option<Self> {
        let function = call.get("function")?;
        let name = function.get("name")?.as_str()?;
        let arguments = function.get("arguments").cloned().unwrap_or_else(|| json!({}));
        let id = call.get("id").and_then(Value::as_str).map_or_else(|| format!("call_{i}"), str::to_owned);
        Some(ToolCall::new(name, arguments).with_id(id))
    }
}

/// Splits `text` into content and tool calls. Returns `(text, [])` when there is no
/// call or any call is malformed.
pub fn parse_tool_calls(text: &str) -> (String, Vec<ToolCall>) {
    let Some(start) = text.find(TOOL_CALL_START) else { return (text.to_string(), Vec::new()) };
    let mut calls = Vec::new();
    for caps in HERMES.captures_iter(text) {
        let body = caps.get(1).or_else(|| caps.get(2)).map_or("", |m| m.as_str()).trim();
        let Ok(value) = serde_json::from_str::<Value>(body) else { return (text.to_string(), Vec::new()) };
        let items = match value {
            Value::Array(items) => items,
            one => vec![one],
        };
        for item in items {
            let (Some(name), Some(arguments)) = (item.get("name").and_then(Value::as_str), item.get("arguments"))
            else {
                return (text.to_string(), Vec::new());
            };
            calls.push(ToolCall::new(name, arguments.clone()));
        }
    }
    if calls.is_empty() {
        return (text.to_string(), Vec::new());
    }
    (text[..start].to_string(), calls)
}

/// Streaming counterpart of [`parse_tool_calls`].
#[derive(Debug, Default)]
pub struct ToolCallStream {
    /// Text from the first `<tool_call>` (or a possible start of it) on.
    held: String,
    /// Whether a complete `<tool_call>` has been seen.
    in_call: bool,
}

impl ToolCallStream {
    /// A parser with nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `piece` and returns the content that is final now.
    pub fn push(&mut self, piece: &str) -> String {
        self.held.push_str(piece);
        if self.in_call {
            return String::new();
        }
        if let Some(at) = self.held.find(TOOL_CALL_START) {
            self.in_call = true;
            return self.held.drain(..at).collect();
        }
        // Keep back the longest suffix that could still grow into the tag.
        let keep = (1..TOOL_CALL_START.len()).rev().find(|&n| self.held.ends_with(&TOOL_CALL_START[..n])).unwrap_or(0);
        let cut = self.held.len() - keep;
        self.held.drain(..cut).collect()
    }

    /// Ends the stream: the remaining content and the tool calls.
    pub fn finish(self) -> (String, Vec<ToolCall>) {
        if !self.in_call {
            return (self.held, Vec::new());
        }
        parse_tool_calls(&self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_CALLS: &str = "Dạ em kiểm tra ạ.<tool_call>\n{\"name\": \"get_order_status\", \"arguments\": {\"order_id\": \"DH250004\"}}\n</tool_call>\n<tool_call>[{\"name\": \"get_stock\", \"arguments\": \"{\\\"sku\\\": \\\"AT001\\\"}\"}]</tool_call>";

    #[test]
    fn parses_hermes_and_list_calls() {
        let (content, calls) = parse_tool_calls(TWO_CALLS);
        assert_eq!(content, "Dạ em kiểm tra ạ.");
        let texts: Vec<(&str, String)> = calls.iter().map(|c| (c.name.as_str(), c.arguments_text())).collect();
        assert_eq!(
            texts,
            [
                ("get_order_status", r#"{"order_id":"DH250004"}"#.to_string()),
                ("get_stock", r#"{"sku": "AT001"}"#.into())
            ]
        );
        assert_eq!(calls[1].arguments_value(), json!({"sku": "AT001"}));
    }

    #[test]
    fn hermes_calls_and_invalid_calls() {
        let (content, calls) = parse_tool_calls(
            "Dạ em kiểm tra ạ<tool_call>\n{\"name\": \"get_order_status\", \"arguments\": {\"order_id\": \"DH1\"}}\n</tool_call>",
        );
        assert_eq!(content, "Dạ em kiểm tra ạ");
        assert_eq!(calls, [ToolCall::new("get_order_status", json!({"order_id": "DH1"}))]);
    }

    #[test]
    fn malformed_calls_stay_content() {
        for text in ["a<tool_call>{not json}</tool_call>", "<tool_call>{\"name\": \"x\"}</tool_call>", "<tool_call>[]"]
        {
            assert_eq!(parse_tool_calls(text), (text.to_string(), vec![]));
        }
        let (content, calls) = parse_tool_calls("<tool_call>{\"name\": \"x\", \"arguments\": {}}");
        assert_eq!((content.as_str(), calls.len()), ("", 1), "an unterminated last call still parses");
    }

    /// Every split of the text into two pieces and into single characters streams to
    /// the non-streamed result.
    #[test]
    fn streaming_reassembles_to_the_whole_parse() {
        let texts = [TWO_CALLS, "plain <tool answer <tool_cal", "x<tool_call>{bad}</tool_call>", "<tool_ca"];
        for text in texts {
            let whole = parse_tool_calls(text);
            let mut splits: Vec<Vec<String>> =
                text.char_indices().map(|(i, _)| vec![text[..i].to_string(), text[i..].to_string()]).collect();
            splits.push(text.chars().map(String::from).collect());
            for pieces in splits {
                let mut stream = ToolCallStream::new();
                let mut content: String = pieces.iter().map(|p| stream.push(p)).collect();
                let (rest, calls) = stream.finish();
                content.push_str(&rest);
                assert_eq!((content, calls), whole.clone(), "{pieces:?}");
            }
        }
    }

    #[test]
    fn content_before_the_tag_streams_at_once() {
        let mut stream = ToolCallStream::new();
        assert_eq!(stream.push("Dạ <tool"), "Dạ ");
        assert_eq!(stream.push("box"), "<toolbox");
        assert_eq!(stream.push(" ok<tool_call>{"), " ok");
        assert_eq!(stream.push("}</tool_call>"), "");
    }

    #[test]
    fn openai_entry_round_trip() {
        let call = ToolCall::new("get_stock", json!({"sku": "AT001"})).with_id("call_1");
        let wire = call.to_openai();
        assert_eq!(wire["function"]["arguments"], r#"{"sku":"AT001"}"#);
        let back = ToolCall::from_openai(0, &wire).unwrap();
        assert_eq!((back.id.as_str(), back.arguments_value()), ("call_1", json!({"sku": "AT001"})));
    }
}
