//! `stylevn serve`: an OpenAI-compatible chat server, and the store assistant
//! served next to the raw model.
//!
//! Request flow: [`api`] (axum routes, limits, auth, metrics) parses a body with
//! [`request`] into a [`chat::ChatRequest`] and hands it to the [`chat::ChatService`]
//! registered for its model id: [`local::LocalChatService`] renders the prompt
//! ([`prompt`]), queues it on the continuous-batching [`engine`] and parses tool
//! calls out of the output ([`crate::conversation::tool_call`]); [`upstream::UpstreamChatService`]
//! forwards to a vLLM server instead. [`server`] binds, loads and drains.
//!
//! The store assistant ([`assistant`]) runs tools over the store database
//! ([`tools`]), guardrails ([`guardrails`]), caches ([`cache`]), the exchange log
//! with feedback ([`crate::data::exchange_log`]) and the Zalo OA webhook ([`zalo`]); it is registered as
//! the model `stylevn-assistant` and merges its routes into [`api::router`].

pub mod api;
pub mod api_error;
pub mod assistant;
pub mod cache;
pub mod chat;
pub mod client_limits;
pub mod config;
pub mod engine;
pub mod guardrails;
pub mod local;
pub mod metrics;
pub mod prompt;
pub mod request;
pub mod server;
pub mod tools;
pub mod upstream;
pub mod zalo;
