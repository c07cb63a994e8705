//! Per-request middleware: a request id (the `x-request-id` header, echoed or made
//! up), a tracing span and log line per request, the per-status request counter,
//! and bearer-token auth on `/v1/*`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::AppState;
use crate::serve::api_error::ApiError;

/// The request-id header.
const REQUEST_ID: &str = "x-request-id";

/// Logs, counts and tags every request.
pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("req-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)));
    let endpoint = request.extensions().get::<MatchedPath>().map_or("other", |p| p.as_str()).to_string();
    let method = request.method().clone();
    let span = tracing::info_span!("request", request_id = %id, %method, endpoint = %endpoint);
    let start = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    state.metrics.count_request(&endpoint, status);
    span.in_scope(|| {
        let ms = start.elapsed().as_secs_f64() * 1e3;
        if status >= 500 {
            tracing::error!(status, ms, "answered");
        } else {
            tracing::info!(status, ms, "answered");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Rejects `/v1/*` requests without `Authorization: Bearer <api key>` when a key is set.
pub async fn require_api_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(key) = &state.api_key {
        if !bearer_matches(request.headers(), key) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}

/// Whether `headers` carry `Authorization: Bearer <key>`.
pub fn bearer_matches(headers: &HeaderMap, key: &str) -> bool {
    let given =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    given.is_some_and(|g| constant_time_eq(g.as_bytes(), key.as_bytes()))
}

/// Compares without an early exit, so the time taken does not reveal the key.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
