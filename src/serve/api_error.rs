//! Errors as the OpenAI API returns them:
//!
//! ```text
//! HTTP/1.1 400 Bad Request
//! {"error": {"message": "...", "type": "invalid_request_error", "param": "messages", "code": null}}
//! ```

use serde_json::{json, Value};

/// One API error: status code and OpenAI error object.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status} {kind}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// Human-readable message.
    pub message: String,
    /// OpenAI `type` (`invalid_request_error`, `rate_limit_error`, ...).
    pub kind: &'static str,
    /// The request field at fault, if any.
    pub param: Option<String>,
    /// Machine-readable code, if any (`model_not_found`, `invalid_api_key`).
    pub code: Option<&'static str>,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// A 400 about field `param`.
    pub fn invalid(param: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.into(),
            code: None,
            retry_after_s: None,
        }
    }

    /// A 404 for an unknown model id.
    pub fn model_not_found(model: &str) -> Self {
        ApiError {
            status: 404,
            message: format!("The model `{model}` does not exist."),
            kind: "invalid_request_error",
            param: Some("model".into()),
            code: Some("model_not_found"),
            retry_after_s: None,
        }
    }

    /// A 429: the queue is full.
    pub fn overloaded(message: impl Into<String>) -> Self {
        ApiError {
            status: 429,
            message: message.into(),
            kind: "rate_limit_error",
            param: None,
            code: None,
            retry_after_s: Some(1),
        }
    }

    /// A 503: not ready (loading, shutting down).
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            status: 503,
            message: message.into(),
            kind: "service_unavailable_error",
            param: None,
            code: None,
            retry_after_s: Some(5),
        }
    }

    /// A 401 for a missing or wrong bearer token.
    pub fn unauthorized() -> Self {
        ApiError {
            status: 401,
            message: "Incorrect API key provided. Send it as `Authorization: Bearer <key>`.".into(),
            kind: "invalid_request_error",
            param: None,
            code: Some("invalid_api_key"),
            retry_after_s: None,
        }
    }

    /// A 429 from a per-client limit (`requests` or `tokens`, OpenAI's error types
    /// for those limits), with `Retry-After`.
    pub fn rate_limited(kind: &'static str, retry_after_s: u64) -> Self {
        ApiError {
            status: 429,
            message: format!("Rate limit reached for {kind} of this client. Retry in {retry_after_s} s."),
            kind,
            param: None,
            code: Some("rate_limit_exceeded"),
            retry_after_s: Some(retry_after_s),
        }
    }

    /// A 504: the request ran past its time limit.
    pub fn timeout(seconds: u64) -> Self {
        ApiError {
            status: 504,
            message: format!("the request did not finish within {seconds} s"),
            kind: "timeout_error",
            param: None,
            code: None,
            retry_after_s: None,
        }
    }

    /// A 500 for a failure inside the server.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: 500,
            message: message.into(),
            kind: "server_error",
            param: None,
            code: None,
            retry_after_s: None,
        }
    }

    /// A 502 for a failure of the upstream server.
    pub fn upstream(message: impl Into<String>) -> Self {
        ApiError {
            status: 502,
            message: message.into(),
            kind: "upstream_error",
            param: None,
            code: None,
            retry_after_s: None,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}
