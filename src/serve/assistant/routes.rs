//! The assistant's HTTP routes, for the server to `.merge()`:
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the web chat page |
//! | `POST /assistant/v1/chat/completions` | the assistant as an OpenAI-compatible endpoint (also what the server's `/v1/chat/completions` calls for model `stylevn-assistant`: [`chat_completions`]) |
//! | `POST /v1/feedback` | `{"response_id", "rating": "up"|"down", "comment"?}` |
//! | `POST /zalo/webhook` | Zalo OA events, when Zalo is configured |

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::backend::Sampling;
use super::metrics::inc;
use super::openai::{completion, completion_events};
use super::pipeline::{Assistant, Turn};
use crate::serve::log::Rating;
use crate::serve::zalo::Zalo;

/// The web chat page.
const CHAT_PAGE: &str = include_str!("chat.html");

/// What the routes share.
pub struct AssistantState {
    /// The assistant.
    pub assistant: Arc<Assistant>,
    /// The Zalo OA channel, when configured.
    pub zalo: Option<Arc<Zalo>>,
}

/// The routes above over `state`.
pub fn routes(state: Arc<AssistantState>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(CHAT_PAGE) }))
        .route("/assistant/v1/chat/completions", post(completions_route))
        .route("/v1/feedback", post(feedback_route))
        .route("/zalo/webhook", post(zalo_route))
        .with_state(state)
}

/// An OpenAI-shaped error response.
pub fn error_response(status: StatusCode, message: &str, param: Option<&str>) -> Response {
    let kind = if status.is_server_error() { "server_error" } else { "invalid_request_error" };
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": null}});
    (status, Json(body)).into_response()
}

fn sampling_of(body: &Value, assistant: &Assistant) -> Sampling {
    let c = assistant.config();
    Sampling {
        temperature: body["temperature"].as_f64().map_or(c.temperature, |t| t.clamp(0.0, 2.0) as f32),
        top_p: body["top_p"].as_f64().map(|p| p.clamp(0.0, 1.0) as f32),
        max_tokens: body["max_tokens"]
            .as_u64()
            .or(body["max_completion_tokens"].as_u64())
            .map_or(c.max_tokens, |m| m.clamp(1, c.max_tokens as u64) as u32),
        seed: body["seed"].as_u64(),
    }
}

/// Answers an OpenAI chat-completions request body with the assistant (streamed
/// when `"stream": true`). `channel` is logged (`api`, `web`).
pub async fn chat_completions(assistant: &Assistant, body: &Value, channel: &str) -> Response {
    let Some(messages) = body.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty()) else {
        return error_response(StatusCode::BAD_REQUEST, "`messages` must be a non-empty list", Some("messages"));
    };
    let turn = Turn {
        messages: messages.clone(),
        user: body.get("user").and_then(Value::as_str).map(str::to_owned),
        channel: channel.to_string(),
        sampling: Some(sampling_of(body, assistant)),
    };
    let reply = match assistant.respond(turn).await {
        Ok(r) => r,
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), None),
    };
    let model = body.get("model").and_then(Value::as_str).unwrap_or(&assistant.config().model_id).to_string();
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let events = completion_events(&reply, &model).into_iter().map(|e| Ok::<_, Infallible>(Bytes::from(e)));
        let stream = Body::from_stream(futures::stream::iter(events));
        return ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], stream)
            .into_response();
    }
    Json(completion(&reply, &model)).into_response()
}

async fn completions_route(State(state): State<Arc<AssistantState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error_response(StatusCode::BAD_REQUEST, "the body is not valid JSON", None);
    };
    let channel = if headers.get("x-stylevn-channel").is_some_and(|v| v == "web") { "web" } else { "api" };
    chat_completions(&state.assistant, &body, channel).await
}

async fn feedback_route(State(state): State<Arc<AssistantState>>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error_response(StatusCode::BAD_REQUEST, "the body is not valid JSON", None);
    };
    let Some(id) = body.get("response_id").and_then(Value::as_str) else {
        return error_response(StatusCode::BAD_REQUEST, "`response_id` is required", Some("response_id"));
    };
    let rating = match &body["rating"] {
        Value::String(s) if s == "up" => Rating::Up,
        Value::String(s) if s == "down" => Rating::Down,
        Value::Number(n) if n.as_i64() == Some(1) => Rating::Up,
        Value::Number(n) if n.as_i64() == Some(-1) => Rating::Down,
        _ => return error_response(StatusCode::BAD_REQUEST, "`rating` must be \"up\" or \"down\"", Some("rating")),
    };
    let Some(log) = state.assistant.log() else {
        return error_response(StatusCode::NOT_FOUND, "feedback is not recorded: no exchange log", None);
    };
    match log.feedback(id, rating, body.get("comment").and_then(Value::as_str)) {
        Ok(true) => {
            inc(&state.assistant.metrics().feedback);
            Json(json!({"ok": true})).into_response()
        }
        Ok(false) => error_response(StatusCode::NOT_FOUND, "no such response id", Some("response_id")),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), None),
    }
}

async fn zalo_route(State(state): State<Arc<AssistantState>>, headers: HeaderMap, body: Bytes) -> Response {
    match &state.zalo {
        Some(zalo) => zalo.clone().webhook(&headers, &body),
        None => error_response(StatusCode::NOT_FOUND, "Zalo OA is not configured", None),
    }
}
