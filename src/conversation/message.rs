//! One chat message, the one type serve, eval and synth share. Its JSON is OpenAI's:
//!
//! ```text
//! {"role": "system", "content": "Bạn là trợ lý của shop."}
//! {"role": "assistant", "content": null, "tool_calls": [{"id": "call_0", "type": "function",
//!     "function": {"name": "get_stock", "arguments": "{\"sku\": \"AT001\"}"}}]}
//! {"role": "tool", "tool_call_id": "call_0", "content": "{\"in_stock\": 3}"}
//! ```
//! - `content` is always written (`null` where absent); `tool_calls` only when there
//!   are some, `tool_call_id` and `name` only when set;
//! - `developer` (OpenAI's newer name for `system`) reads as [`Role::System`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::ToolCall;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions (`system`, or `developer`).
    #[serde(alias = "developer")]
    System,
    /// The customer.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

impl Role {
    /// The role's OpenAI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One OpenAI chat message, content as text (parts already joined).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// The text; `None` for an assistant turn that only calls tools.
    #[serde(default)]
    pub content: Option<String>,
    /// An assistant's tool calls (OpenAI's `tool_calls` entries on the wire).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "write_calls",
        deserialize_with = "read_calls"
    )]
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The participant's name, where the client gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    /// A message of `role` with `content` and nothing else.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message { role, content: Some(content.into()), tool_calls: Vec::new(), tool_call_id: None, name: None }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Message::new(Role::System, content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Message::new(Role::User, content)
    }

    /// An assistant message with text.
    pub fn assistant(content: impl Into<String>) -> Self {
        Message::new(Role::Assistant, content)
    }

    /// An assistant message calling tools (`content` where the model also wrote text).
    pub fn assistant_calls(content: Option<String>, tool_calls: Vec<ToolCall>) -> Self {
        Message { role: Role::Assistant, content, tool_calls, tool_call_id: None, name: None }
    }

    /// A tool's result answering call `tool_call_id`.
    pub fn tool(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Message { tool_call_id: Some(tool_call_id.into()), ..Message::new(Role::Tool, content) }
    }

    /// The message as OpenAI JSON.
    pub fn to_openai(&self) -> Value {
        serde_json::to_value(self).expect("a message serializes")
    }
}

/// The text of the last user message of OpenAI JSON `messages` (the question a
/// turn answers), empty when there is none.
pub fn last_user_text(messages: &[Value]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn write_calls<S: Serializer>(calls: &[ToolCall], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(calls.iter().map(ToolCall::to_openai))
}

fn read_calls<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ToolCall>, D::Error> {
    let entries = Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default();
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            ToolCall::from_openai(i, entry)
                .ok_or_else(|| serde::de::Error::custom(format!("tool_calls[{i}] needs `function.name`")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_openai_json() {
        assert_eq!(Message::system("a").to_openai(), json!({"role": "system", "content": "a"}));
        assert_eq!(
            Message::tool("c1", "ok").to_openai(),
            json!({"role": "tool", "content": "ok", "tool_call_id": "c1"})
        );
        let call = ToolCall::new("f", json!("{\"x\":1}")).with_id("c1");
        assert_eq!(
            Message::assistant_calls(None, vec![call]).to_openai(),
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}]})
        );
    }

    #[test]
    fn reads_openai_json() {
        let m: Message = serde_json::from_value(json!({"role": "developer", "content": "a"})).unwrap();
        assert_eq!(m, Message::system("a"));
        let m: Message = serde_json::from_value(json!({"role": "assistant", "content": null,
            "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]}))
        .unwrap();
        assert_eq!(m.tool_calls, [ToolCall::new("f", json!({"x": 1})).with_id("call_0")]);
        assert!(serde_json::from_value::<Message>(json!({"role": "wizard", "content": "a"})).is_err());
        assert!(serde_json::from_value::<Message>(json!({"role": "assistant", "tool_calls": [{}]})).is_err());
    }

    #[test]
    fn last_user_text_is_the_latest_question() {
        let messages = [
            json!({"role": "user", "content": "một"}),
            json!({"role": "assistant", "content": "hai"}),
            json!({"role": "user", "content": "ba"}),
            json!({"role": "tool", "content": "{}"}),
        ];
        assert_eq!(last_user_text(&messages), "ba");
        assert_eq!(last_user_text(&messages[1..2]), "");
    }
}
