//! Guardrails around the model: [`input`] checks each customer turn before the
//! model sees it (length, prompt injection, data exfiltration, out-of-scope
//! requests, in Vietnamese and English); [`verifier`] checks each answer's facts
//! against the evidence of its turn before it is delivered.

pub mod input;
pub mod verifier;

pub use input::{check_input, InputLimits, Rejection};
pub use verifier::{verify, Verdict};
