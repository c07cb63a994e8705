//! The store assistant served next to the raw model: tools over the store
//! database, guardrails, the assistant pipeline, caches, the exchange log with
//! feedback, and the Zalo OA webhook.

pub mod assistant;
pub mod cache;
pub mod guardrails;
pub mod log;
pub mod tools;
pub mod zalo;
