//! The HTTP API (axum): OpenAI's `POST /v1/chat/completions` and `GET /v1/models`,
//! plus `GET /health` and `GET /metrics`.
//!
//! Extending it: [`router`] returns a plain `axum::Router` (state already applied),
//! so more routes are added with `router(state.clone()).merge(other_routes)`; and a
//! new model id is one [`ModelRegistry::register`] call with any [`ChatService`].
//! Both are how the store assistant plugs in.

mod chat_route;
mod middleware;
mod openai_json;

pub use middleware::bearer_matches;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::api_error::ApiError;
use super::chat::ChatService;
use super::metrics::Metrics;
use super::request::RequestLimits;

/// The model ids the server answers, in registration order, and whether it is ready.
#[derive(Default)]
pub struct ModelRegistry {
    services: RwLock<Vec<(String, Arc<dyn ChatService>)>>,
    ready: AtomicBool,
}

impl ModelRegistry {
    /// Serves `model_id` with `service` (replacing an earlier one of that id).
    pub fn register(&self, model_id: impl Into<String>, service: Arc<dyn ChatService>) {
        let model_id = model_id.into();
        let mut services = self.services.write().unwrap_or_else(|e| e.into_inner());
        services.retain(|(id, _)| *id != model_id);
        services.push((model_id, service));
    }

    /// The service of `model_id`.
    pub fn get(&self, model_id: &str) -> Option<Arc<dyn ChatService>> {
        let services = self.services.read().unwrap_or_else(|e| e.into_inner());
        services.iter().find(|(id, _)| id == model_id).map(|(_, s)| s.clone())
    }

    /// Every model id.
    pub fn ids(&self) -> Vec<String> {
        self.services.read().unwrap_or_else(|e| e.into_inner()).iter().map(|(id, _)| id.clone()).collect()
    }

    /// Marks the server ready (`/health` answers 200 from now on).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether the models are loaded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// HTTP-level limits.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Message and token limits of chat requests.
    pub request: RequestLimits,
}

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The served models.
    pub registry: Arc<ModelRegistry>,
    /// Server metrics.
    pub metrics: Arc<Metrics>,
    /// Size limits.
    pub limits: Arc<HttpLimits>,
    /// Bearer token required on `/v1/*`, when set.
    pub api_key: Option<Arc<str>>,
}

/// The server's routes with `state` applied; merge more routes into it as needed.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_route::chat_completions))
        .route("/v1/models", get(list_models))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), middleware::require_api_key))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::observe))
        .with_state(state)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after_s {
            response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

async fn list_models(State(state): State<AppState>) -> Response {
    let data: Vec<_> = state
        .registry
        .ids()
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": openai_json::unix_now(), "owned_by": "stylevn"}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn health(State(state): State<AppState>) -> Response {
    if state.registry.is_ready() {
        axum::Json(json!({"status": "ok"})).into_response()
    } else {
        ApiError::unavailable("the model is loading").into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}

async fn not_found() -> ApiError {
    ApiError { status: 404, ..ApiError::invalid(None, "no such route") }
}

async fn method_not_allowed() -> ApiError {
    ApiError { status: 405, ..ApiError::invalid(None, "method not allowed on this route") }
}
