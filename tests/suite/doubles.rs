//! Test doubles for the [`ChatService`] the assistant asks: a scripted model (a
//! function of the conversation, so tests decide which tools it calls and how it
//! words the answer) and a lying model that corrupts another model's answers with a
//! wrong order status or price. Used by the assistant's tests and to drive the
//! assistant's turn without a model.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use futures::future::BoxFuture;
use regex::Regex;
use serde_json::Value;

use stylevn::conversation::facts::ORDER_STATUSES;
use stylevn::serve::api_error::ApiError;
use stylevn::serve::assistant::backend::{AssistantMessage, ChatRequest, Sampling, ServedModel};
use stylevn::serve::chat::{collect, ChatRequest as ServiceRequest, ChatService, ChatStream};

type Script = dyn Fn(&ChatRequest) -> AssistantMessage + Send + Sync;

/// The model the assistant asks, served by the test double `service`.
pub fn served(service: Arc<dyn ChatService>) -> ServedModel {
    ServedModel::new("test-model", service)
}

/// The assistant's request as the service received it.
fn assistant_request(request: &ServiceRequest) -> ChatRequest {
    ChatRequest {
        messages: request.openai_messages(),
        tools: request.tools.clone(),
        sampling: Sampling {
            temperature: request.temperature.unwrap_or(0.0) as f32,
            top_p: request.top_p.map(|p| p as f32),
            max_tokens: request.max_tokens.unwrap_or(0) as u32,
            seed: request.seed,
        },
    }
}

/// A model whose every answer is `script(request)`; counts its calls.
pub struct ScriptedBackend {
    script: Box<Script>,
    calls: AtomicUsize,
}

impl ScriptedBackend {
    /// A model answering `script(request)`.
    pub fn new(script: impl Fn(&ChatRequest) -> AssistantMessage + Send + Sync + 'static) -> Self {
        ScriptedBackend { script: Box::new(script), calls: AtomicUsize::new(0) }
    }

    /// Calls so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }
}

impl ChatService for ScriptedBackend {
    fn chat(&self, request: ServiceRequest) -> BoxFuture<'static, Result<ChatStream, ApiError>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let message = (self.script)(&assistant_request(&request));
        Box::pin(async move { Ok(message.into_stream()) })
    }
}

static STATUS: LazyLock<Regex> = LazyLock::new(|| {
    let all: Vec<&str> = ORDER_STATUSES.iter().flat_map(|s| s.iter().copied()).collect();
    Regex::new(&format!("(?i){}", all.join("|"))).expect("status regex")
});
static MONEY: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b(\d{1,3}(?:\.\d{3})+)\s*đ").expect("money regex"));

/// Wraps a backend and lies in every text answer: each order status becomes a
/// different one, each price grows by 10.000đ, and an answer with neither gets a
/// made-up price appended. Tool calls pass through unchanged.
pub struct LyingBackend {
    inner: Arc<dyn ChatService>,
}

impl LyingBackend {
    /// Lies on top of `inner`.
    pub fn new(inner: Arc<dyn ChatService>) -> Self {
        LyingBackend { inner }
    }
}

/// The lie told about `text`.
pub fn corrupt(text: &str) -> String {
    let mut out = MONEY
        .replace_all(text, |c: &regex::Captures| {
            let v: i64 = c[1].replace('.', "").parse().unwrap_or(0) + 10_000;
            stylevn::data::text::vnd(v)
        })
        .into_owned();
    out = STATUS
        .replace_all(&out, |c: &regex::Captures| {
            let said = c[0].to_lowercase();
            let i = ORDER_STATUSES.iter().position(|sp| sp.contains(&said.as_str())).unwrap_or(0);
            ORDER_STATUSES[(i + 1) % ORDER_STATUSES.len()][0]
        })
        .into_owned();
    if out == text {
        out.push_str(" Sản phẩm đang giảm giá chỉ còn 99.000đ ạ.");
    }
    out
}

impl ChatService for LyingBackend {
    fn chat(&self, request: ServiceRequest) -> BoxFuture<'static, Result<ChatStream, ApiError>> {
        let inner = self.inner.chat(request);
        Box::pin(async move {
            let done = collect(inner.await?).await?;
            let mut m = AssistantMessage::from_openai(&done.message()).with_usage(done.usage);
            if m.tool_calls.is_empty() {
                m.content = m.content.as_deref().map(corrupt);
            }
            Ok(m.into_stream())
        })
    }
}

/// The last message of `request` with role `tool`, parsed (for scripts).
pub fn last_tool_result(request: &ChatRequest) -> Option<Value> {
    let m = request.messages.last().filter(|m| m["role"] == "tool")?;
    serde_json::from_str(m["content"].as_str()?).ok()
}

/// The text of the last user message of `request` (for scripts).
pub fn last_user_text(request: &ChatRequest) -> String {
    stylevn::conversation::message::last_user_text(&request.messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lie_changes_a_fact() {
        assert_eq!(corrupt("Dạ đơn đang giao, tổng 249.000đ ạ"), "Dạ đơn đã giao, tổng 259.000đ ạ");
        assert_eq!(corrupt("Đã hủy rồi ạ"), "đang hoàn trả rồi ạ");
        assert!(corrupt("Dạ vâng ạ").ends_with("99.000đ ạ."));
    }
}
