//! From validated OpenAI messages and tools to the prompt text, through the model's
//! own chat template and the tool convention shared with training
//! ([`crate::tokenize::tool_prompt`]).

use serde_json::Value;

use super::api_error::ApiError;
use crate::tokenize::tool_prompt::with_tool_convention;
use crate::tokenize::ChatTemplate;

/// Renders `messages` (validated by [`super::request`]) and `tools` into prompt text.
pub fn render_prompt(template: &ChatTemplate, messages: &[Value], tools: &[Value]) -> Result<String, ApiError> {
    render(template, messages, tools, true)
}

/// Renders the first messages of a conversation without the generation prompt: the
/// text the whole conversation's prompt starts with.
pub fn render_prompt_prefix(template: &ChatTemplate, messages: &[Value], tools: &[Value]) -> Result<String, ApiError> {
    render(template, messages, tools, false)
}

fn render(
    template: &ChatTemplate,
    messages: &[Value],
    tools: &[Value],
    add_generation_prompt: bool,
) -> Result<String, ApiError> {
    let (messages, tools) = with_tool_convention(template, messages, tools);
    let tools = (!tools.is_empty()).then_some(&tools[..]);
    // A template that rejects the conversation (raise_exception) is the client's error.
    template
        .render(&messages, tools, add_generation_prompt)
        .map_err(|e| ApiError::invalid(Some("messages".into()), e.to_string()))
}
