//! Tool calls in generated text, hermes format (Qwen2.5, Hermes, and SmolLM2's
//! variant with a JSON list inside one tag):
//!
//! ```text
//! Dạ em kiểm tra ngay ạ.<tool_call>
//! {"name": "get_order_status", "arguments": {"order_id": "DH250004"}}
//! </tool_call>
//! <tool_call>[{"name": "get_stock", "arguments": {"sku": "AT001"}}]</tool_call>
//! ```
//! Parsed as vLLM's hermes parser does: regex `<tool_call>(.*?)</tool_call>|<tool_call>(.*)`
//! (DOTALL), each match JSON with `name` and `arguments`; the content is the text
//! before the first `<tool_call>`; on any error the whole text stays content.
//!
//! [`ToolCallStream`] does the same over streamed pieces: text before a (possible)
//! `<tool_call>` streams out at once, and everything from the tag on is held until
//! generation ends, then parsed as a whole, so a stream reassembles to exactly the
//! non-streamed answer.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// The opening tag.
pub const TOOL_CALL_START: &str = "<tool_call>";

static HERMES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)<tool_call>(.*?)</tool_call>|<tool_call>(.*)").expect("valid regex"));

/// One parsed call: the function name and its arguments as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedToolCall {
    /// Function name.
    pub name: String,
    /// Arguments, serialized JSON (OpenAI carries them as a string).
    pub arguments: String,
}

/// Splits `text` into content and tool calls. Returns `(text, [])` when there is no
/// call or any call is malformed.
pub fn parse_tool_calls(text: &str) -> (String, Vec<ParsedToolCall>) {
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
            // A model may write the arguments as a JSON string; OpenAI wants the JSON text either way.
            let arguments = match arguments {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            calls.push(ParsedToolCall { name: name.to_string(), arguments });
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
    pub fn finish(self) -> (String, Vec<ParsedToolCall>) {
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
        assert_eq!(
            calls,
            [
                ParsedToolCall { name: "get_order_status".into(), arguments: r#"{"order_id":"DH250004"}"#.into() },
                ParsedToolCall { name: "get_stock".into(), arguments: r#"{"sku": "AT001"}"#.into() },
            ]
        );
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
}
