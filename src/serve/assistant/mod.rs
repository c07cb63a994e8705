//! The store assistant (`stylevn-assistant`): the turn around any chat model
//! ([`backend::ServedModel`], a [`crate::serve::chat::ChatService`]) with retrieval, tools, deterministic routing,
//! guardrails, fallback, caching and logging ([`turn`]), served as OpenAI
//! chat completions and a web chat page ([`routes`]).

pub mod backend;
pub mod config;
pub mod facts;
pub mod metrics;
pub mod openai;
pub mod retrieval;
pub mod routes;
pub mod routing;
pub mod served;
pub mod turn;

pub use backend::{AssistantMessage, ChatRequest, Sampling, ServedModel};
pub use config::AssistantConfig;
pub use metrics::Metrics;
pub use retrieval::Retriever;
pub use routes::{chat_completions, routes, AssistantState};
pub use served::{build_assistant, AssistantOptions, AssistantService};
pub use turn::{Assistant, AssistantParts, Outcome, Reply, Turn};
