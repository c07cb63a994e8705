//! The conversation core shared by synth, eval and serve: tool calls and their
//! parser ([`tool_call`]), the chat [`message`] type, the fact extractor ([`facts`]) and the grounding check
//! with its evidence policies ([`grounding`]), the Vietnamese normaliser
//! ([`text`]) and the one OpenAI-compatible client ([`openai_client`]). It depends on no stage; `data`, `eval` and `serve` depend on it.

pub mod facts;
pub mod grounding;
pub mod message;
pub mod openai_client;
pub mod text;
pub mod tool_call;

pub use grounding::{check, Evidence, EvidencePolicy, Grounding, Source};
pub use message::{Message, Role};
pub use openai_client::{CallError, OpenAiClient};
pub use tool_call::{parse_tool_calls, ToolCall, ToolCallStream};
