//! `POST /v1/chat/completions`: read the body under the size limit, validate, find
//! the model's service, and answer as one JSON object or as server-sent events.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::openai_json::{completion, completion_id, unix_now, ChunkWriter};
use super::AppState;
use crate::serve::api_error::ApiError;
use crate::serve::chat::{collect, ChatEvent, ChatStream};
use crate::serve::request::parse_chat_request;

/// The handler.
pub async fn chat_completions(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match answer(state, headers, body).await {
        Ok(response) => response,
        Err(e) => {
            if e.status >= 500 {
                tracing::error!(status = e.status, message = %e.message, "request failed");
            }
            e.into_response()
        }
    }
}

async fn answer(state: AppState, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(body, state.limits.max_body_bytes, &headers).await?;
    let request = parse_chat_request(&bytes, &state.limits.request)?;
    if !state.registry.is_ready() {
        return Err(ApiError::unavailable("the model is loading"));
    }
    let service = state.registry.get(&request.model).ok_or_else(|| ApiError::model_not_found(&request.model))?;
    let (model, stream_mode, include_usage) = (request.model.clone(), request.stream, request.include_usage);
    tracing::debug!(model = %model, stream = stream_mode, messages = request.messages.len(), "chat request");
    let events = service.chat(request).await?;
    let (id, created) = (completion_id(), unix_now());
    if !stream_mode {
        let answer = collect(events).await?;
        return Ok(axum::Json(completion(&id, created, &model, &answer)).into_response());
    }
    let writer = ChunkWriter { id, created, model, include_usage };
    let body = Body::from_stream(sse(writer, events).map(Ok::<_, std::convert::Infallible>));
    Ok(([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], body).into_response())
}

/// Reads the body up to `limit` bytes. A larger body is still read (and dropped) up
/// to [`DRAIN_FACTOR`] times the limit, so the client gets its 413 instead of a
/// connection reset in the middle of its upload.
async fn read_body(body: Body, limit: usize, headers: &HeaderMap) -> Result<Bytes, ApiError> {
    let too_large = || ApiError {
        status: 413,
        ..ApiError::invalid(None, format!("the request body is larger than this server accepts ({limit} bytes)"))
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > (limit * DRAIN_FACTOR) as u64) {
        return Err(too_large());
    }
    let mut body = body.into_data_stream();
    let mut kept: Vec<u8> = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(None, format!("could not read the request body: {e}")))?;
        seen += chunk.len();
        if seen <= limit {
            kept.extend_from_slice(&chunk);
        } else if seen > limit * DRAIN_FACTOR {
            break;
        }
    }
    if seen > limit {
        return Err(too_large());
    }
    Ok(Bytes::from(kept))
}

/// How far past the limit an oversized body is drained before the connection is dropped.
const DRAIN_FACTOR: usize = 8;

/// What is left to send.
enum Phase {
    Role,
    Events,
    Done,
    End,
}

/// The SSE byte stream of an answer: `data: {chunk}\n\n` lines, an error object if
/// the answer fails midway, and `data: [DONE]\n\n`.
fn sse(writer: ChunkWriter, events: ChatStream) -> impl futures::Stream<Item = Bytes> {
    let data = |v: serde_json::Value| Bytes::from(format!("data: {v}\n\n"));
    futures::stream::unfold((Phase::Role, writer, events), move |(phase, writer, mut events)| async move {
        match phase {
            Phase::Role => Some((vec![data(writer.role())], (Phase::Events, writer, events))),
            Phase::Events => match events.next().await {
                Some(Ok(ChatEvent::Content(text))) => {
                    Some((vec![data(writer.content(&text))], (Phase::Events, writer, events)))
                }
                Some(Ok(ChatEvent::ToolCall(delta))) => {
                    Some((vec![data(writer.tool_call(&delta))], (Phase::Events, writer, events)))
                }
                Some(Ok(ChatEvent::Finish { reason, usage })) => {
                    let mut out = vec![data(writer.finish(&reason))];
                    if writer.include_usage {
                        out.push(data(writer.usage(&usage)));
                    }
                    Some((out, (Phase::Done, writer, events)))
                }
                Some(Err(e)) => {
                    tracing::error!(status = e.status, message = %e.message, "stream failed");
                    Some((vec![data(e.body())], (Phase::Done, writer, events)))
                }
                None => {
                    let e = ApiError::internal("the answer ended without a finish event");
                    Some((vec![data(e.body())], (Phase::Done, writer, events)))
                }
            },
            Phase::Done => Some((vec![Bytes::from_static(b"data: [DONE]\n\n")], (Phase::End, writer, events))),
            Phase::End => None,
        }
    })
    .flat_map(futures::stream::iter)
}
