//! One way to put tools, tool calls and tool results into a prompt, shared by
//! training (`stylevn template`, `stylevn train`) and serving (`stylevn serve`), so
//! a model is fine-tuned on exactly the prompts it is later asked with.
//!
//! Tool-call `arguments` arrive as JSON strings (OpenAI's wire format); like vLLM,
//! they are parsed back into objects before rendering, so a template's
//! `arguments | tojson` writes the object.
//!
//! Templates without tool support (SmolLM2-135M's renders only `role` and
//! `content`) get the hermes convention written into the messages first, exactly
//! as Qwen2.5's template renders it: the tool list in the system turn,
//!
//! ```text
//! # Tools
//!
//! You may call one or more functions to assist with the user query.
//!
//! You are provided with function signatures within <tools></tools> XML tags:
//! <tools>
//! {"type": "function", "function": {"name": "get_order_status", ...}}
//! </tools>
//!
//! For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
//! <tool_call>
//! {"name": <function-name>, "arguments": <args-json-object>}
//! </tool_call>
//! ```
//! earlier calls as `<tool_call>` blocks in the assistant turn, and tool results as
//! one user turn of `<tool_response>` blocks per run of tool messages. Assistant
//! messages stay assistant messages, so their spans can still be located.

use serde_json::{json, Value};

use super::chat_template::ChatTemplate;
use super::pyjson::to_py_json;

/// `messages` and `tools` as `template` should receive them: tool-call arguments
/// as objects and, for a template that does not render tools itself, the hermes
/// rewrite (then no `tools` are passed on).
pub fn with_tool_convention(template: &ChatTemplate, messages: &[Value], tools: &[Value]) -> (Vec<Value>, Vec<Value>) {
    let messages: Vec<Value> = messages.iter().map(arguments_as_objects).collect();
    if supports_tools(template) {
        (messages, tools.to_vec())
    } else {
        (hermes_messages(&messages, tools), Vec::new())
    }
}

/// Whether the template renders tools itself.
fn supports_tools(template: &ChatTemplate) -> bool {
    template.source().contains("tools")
}

fn arguments_as_objects(message: &Value) -> Value {
    let mut message = message.clone();
    if let Some(calls) = message.get_mut("tool_calls").and_then(Value::as_array_mut) {
        for call in calls {
            let parsed = call["function"]["arguments"].as_str().and_then(|s| serde_json::from_str::<Value>(s).ok());
            if let Some(args) = parsed {
                call["function"]["arguments"] = args;
            }
        }
    }
    message
}

/// The tool block Qwen2.5's template appends to the system turn.
fn tools_block(tools: &[Value]) -> String {
    let mut out = String::from(
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
         You are provided with function signatures within <tools></tools> XML tags:\n<tools>",
    );
    for tool in tools {
        out.push('\n');
        out.push_str(&to_py_json(tool));
    }
    out.push_str(
        "\n</tools>\n\nFor each function call, return a json object with function name and arguments within \
         <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>",
    );
    out
}

/// Writes tools, calls and results into plain system/user/assistant messages.
fn hermes_messages(messages: &[Value], tools: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(messages.len() + 1);
    if !tools.is_empty() {
        let block = tools_block(tools);
        match messages.first() {
            Some(first) if first["role"] == "system" => {
                let system = first["content"].as_str().unwrap_or_default();
                out.push(json!({"role": "system", "content": format!("{system}\n\n{block}")}));
            }
            _ => out.push(json!({"role": "system", "content": block})),
        }
    }
    let skip = usize::from(!tools.is_empty() && messages.first().is_some_and(|m| m["role"] == "system"));
    for message in &messages[skip..] {
        match message["role"].as_str() {
            Some("assistant") if message.get("tool_calls").is_some() => {
                let mut text = message["content"].as_str().unwrap_or_default().to_string();
                for call in message["tool_calls"].as_array().into_iter().flatten() {
                    let call_json =
                        json!({"name": call["function"]["name"], "arguments": call["function"]["arguments"]});
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&format!("<tool_call>\n{}\n</tool_call>", to_py_json(&call_json)));
                }
                out.push(json!({"role": "assistant", "content": text}));
            }
            Some("tool") => {
                let response =
                    format!("<tool_response>\n{}\n</tool_response>", message["content"].as_str().unwrap_or_default());
                match out.last_mut() {
                    Some(last) if last["role"] == "user" && last.get("tool_responses").is_some() => {
                        let merged = format!("{}\n{response}", last["content"].as_str().unwrap_or_default());
                        last["content"] = merged.into();
                    }
                    _ => out.push(json!({"role": "user", "content": response, "tool_responses": true})),
                }
            }
            _ => out.push(message.clone()),
        }
    }
    for message in &mut out {
        if let Some(obj) = message.as_object_mut() {
            obj.remove("tool_responses");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-135M-Instruct's template (no tool support).
    const CHATML_ONLY: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn conversation() -> (Vec<Value>, Vec<Value>) {
        let messages = vec![
            json!({"role": "system", "content": "Bạn là trợ lý."}),
            json!({"role": "user", "content": "Đơn DH1?"}),
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_order_status", "arguments": "{\"order_id\": \"DH1\"}"}},
                {"id": "c2", "type": "function", "function": {"name": "get_stock", "arguments": "{\"sku\": \"A\"}"}}]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": "{\"status\": \"Đang giao\"}"}),
            json!({"role": "tool", "tool_call_id": "c2", "content": "{\"qty\": 3}"}),
        ];
        let tools = vec![json!({"type": "function", "function": {"name": "get_order_status", "parameters": {}}})];
        (messages, tools)
    }

    /// The hermes rewrite through a ChatML-only template gives Qwen2.5's own rendering
    /// (with Qwen's template, which supports tools, rendering the same conversation).
    #[test]
    fn hermes_rewrite_matches_qwen_rendering() {
        let (messages, tools) = conversation();
        let smol = ChatTemplate::new(CHATML_ONLY, vec![]).unwrap();
        let qwen_source = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen2.5_chat_template.jinja"),
        )
        .unwrap();
        let qwen = ChatTemplate::new(qwen_source, vec![]).unwrap();
        let render = |template: &ChatTemplate| {
            let (messages, tools) = with_tool_convention(template, &messages, &tools);
            template.render(&messages, (!tools.is_empty()).then_some(&tools[..]), true).unwrap()
        };
        let (ours, theirs) = (render(&smol), render(&qwen));
        assert_eq!(ours, theirs);
        assert!(ours.contains(
            "<tool_call>\n{\"name\": \"get_order_status\", \"arguments\": {\"order_id\": \"DH1\"}}\n</tool_call>"
        ));
    }
}
