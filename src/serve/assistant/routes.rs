//! The assistant's HTTP routes, for the server to `.merge()`:
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the web chat page |
//! | `POST /assistant/v1/chat/completions` | the assistant as an OpenAI-compatible endpoint (also what the server's `/v1/chat/completions` calls for model `stylevn-assistant`: [`chat_completions`]) |
//! | `POST /v1/feedback` | `{"response_id", "rating": "up"|"down", "comment"?}` |
//! | `POST /zalo/webhook` | Zalo OA events, when Zalo is configured |
//!
//! The first three are public (a customer-facing bot is), each client held to the
//! assistant's per-client limits ([`crate::serve::client_limits::ClientLimits`]: 429 with `Retry-After` past them);
//! with [`AssistantState::api_key`] set they need `Authorization: Bearer <key>` too
//! (the chat page as well, so a browser without the key gets 401). The Zalo
//! webhook is public and checks Zalo's signature instead.

use std::convert::Infallible;
use std::sync::Arc;

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::backend::Sampling;
use super::metrics::inc;
use super::openai::{completion, completion_events};
use super::turn::client_message;
use super::turn::{Assistant, Turn};
use crate::data::exchange_log::Rating;
use crate::serve::api::bearer_matches;
use crate::serve::api_error::ApiError;
use crate::serve::zalo::Zalo;

/// The web chat page.
const CHAT_PAGE: &str = include_str!("chat.html");

/// What the routes share.
pub struct AssistantState {
    /// The assistant.
    pub assistant: Arc<Assistant>,
    /// The Zalo OA channel, when configured.
    pub zalo: Option<Arc<Zalo>>,
    /// The key the chat routes require (`--assistant-requires-key`), when set.
    pub api_key: Option<Arc<str>>,
}

/// The rate-limit key of the request's client, set by the guard for the handlers.
#[derive(Debug, Clone)]
struct Client(String);

/// The routes above over `state`. Serve them with
/// `into_make_service_with_connect_info::<SocketAddr>()`, or every client is one
/// (`ip:unknown`) to the limits.
pub fn routes(state: Arc<AssistantState>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(CHAT_PAGE) }))
        .route("/assistant/v1/chat/completions", post(completions_route))
        .route("/v1/feedback", post(feedback_route))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .route("/zalo/webhook", post(zalo_route))
        .with_state(state)
}

/// The chat routes' gate: the key when one is required, then the client's request bucket.
async fn guard(State(state): State<Arc<AssistantState>>, mut request: Request, next: Next) -> Response {
    if let Some(key) = &state.api_key {
        if !bearer_matches(request.headers(), key) {
            return ApiError::unauthorized().into_response();
        }
    }
    // Held until the handler returns: the assistant's answer, streamed or not, is complete by then.
    let mut _in_flight = None;
    if let Some(limits) = state.assistant.client_limits() {
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let forwarded = request.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
        let client = limits.http_client(peer, forwarded);
        match limits.admit_request(&client).and_then(|_| limits.enter(&client)) {
            Ok(guard) => _in_flight = Some(guard),
            Err(denied) => return ApiError::rate_limited(denied.kind.name(), denied.retry_after_s()).into_response(),
        }
        request.extensions_mut().insert(Client(client));
    }
    next.run(request).await
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
/// when `"stream": true`, with a last usage chunk when `stream_options.include_usage`).
/// `channel` is logged (`api`, `web`); `client` (the rate-limit key) pays the
/// request's `max_tokens` from its token bucket and caps its fallback calls.
pub async fn chat_completions(assistant: &Assistant, body: &Value, channel: &str, client: Option<&str>) -> Response {
    let Some(messages) = body.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty()) else {
        return error_response(StatusCode::BAD_REQUEST, "`messages` must be a non-empty list", Some("messages"));
    };
    let sampling = sampling_of(body, assistant);
    if let (Some(limits), Some(client)) = (assistant.client_limits(), client) {
        if let Err(denied) = limits.take_tokens(client, sampling.max_tokens) {
            return ApiError::rate_limited(denied.kind.name(), denied.retry_after_s()).into_response();
        }
    }
    let turn = Turn {
        messages: messages.iter().filter_map(client_message).collect(),
        user: body.get("user").and_then(Value::as_str).map(str::to_owned),
        client: client.map(str::to_owned),
        channel: channel.to_string(),
        sampling: Some(sampling),
    };
    let reply = match assistant.respond(turn).await {
        Ok(r) => r,
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), None),
    };
    let model = body.get("model").and_then(Value::as_str).unwrap_or(&assistant.config().model_id).to_string();
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
        let events = completion_events(&reply, &model, usage).into_iter().map(|e| Ok::<_, Infallible>(Bytes::from(e)));
        let stream = Body::from_stream(futures::stream::iter(events));
        return ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], stream)
            .into_response();
    }
    Json(completion(&reply, &model)).into_response()
}

async fn completions_route(
    State(state): State<Arc<AssistantState>>,
    client: Option<axum::Extension<Client>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error_response(StatusCode::BAD_REQUEST, "the body is not valid JSON", None);
    };
    let channel = if headers.get("x-stylevn-channel").is_some_and(|v| v == "web") { "web" } else { "api" };
    let client = client.as_ref().map(|c| c.0 .0.as_str());
    chat_completions(&state.assistant, &body, channel, client).await
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
