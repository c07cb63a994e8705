//! `stylevn serve`: an OpenAI-compatible chat server.
//!
//! Request flow: [`api`] (axum routes, limits, auth, metrics) parses a body with
//! [`request`] into a [`chat::ChatRequest`] and hands it to the [`chat::ChatService`]
//! registered for its model id: [`local::LocalChatService`] renders the prompt
//! ([`prompt`]), queues it on the continuous-batching [`engine`] and parses tool
//! calls out of the output ([`tool_parser`]); [`upstream::UpstreamChatService`]
//! forwards to a vLLM server instead. [`server`] binds, loads and drains.
//!
//! Two seams for code built on top (the store assistant):
//! - HTTP: [`api::router`] returns an `axum::Router` to `.merge()` more routes into,
//!   and [`api::ModelRegistry::register`] adds a model id backed by any
//!   [`chat::ChatService`].
//! - In process: any registered service answers [`chat::ChatService::chat`] with a
//!   stream of events; [`chat::collect`] folds it into an OpenAI assistant message
//!   with parsed `tool_calls`. Token-level access is [`engine::EngineHandle::submit`].

pub mod api;
pub mod api_error;
pub mod chat;
pub mod engine;
pub mod local;
pub mod metrics;
pub mod prompt;
pub mod request;
pub mod server;
pub mod tool_parser;
pub mod upstream;
