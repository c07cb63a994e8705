//! The store assistant (`stylevn-assistant`): a pipeline around any chat model
//! ([`backend::ChatBackend`]) with retrieval, tools, deterministic routing,
//! guardrails, fallback, caching and logging ([`pipeline`]), served as OpenAI
//! chat completions and a web chat page ([`routes`]).

pub mod backend;
pub mod config;
pub mod doubles;
pub mod facts;
pub mod metrics;
pub mod openai;
pub mod pipeline;
pub mod retrieval;
pub mod routes;
pub mod routing;
pub mod served;

pub use backend::{AssistantMessage, ChatBackend, ChatRequest, OpenAiBackend, Sampling, ToolCall};
pub use config::AssistantConfig;
pub use metrics::Metrics;
pub use pipeline::{Assistant, AssistantParts, Outcome, Reply, Turn};
pub use retrieval::Retriever;
pub use routes::{chat_completions, routes, AssistantState};
pub use served::{build_assistant, AssistantOptions, AssistantService, RegistryBackend};
