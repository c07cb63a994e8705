//! Test doubles for [`ChatBackend`]: a scripted model (a function of the
//! conversation, so tests decide which tools it calls and how it words the answer)
//! and a lying model that corrupts another backend's answers with a wrong order
//! status or price. Used by the assistant's tests and to drive the assistant's turn
//! without a model.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use futures::future::BoxFuture;
use regex::Regex;
use serde_json::Value;

use stylevn::conversation::facts::ORDER_STATUSES;
use stylevn::serve::assistant::backend::{AssistantMessage, ChatBackend, ChatRequest};
use stylevn::Result;

type Script = dyn Fn(&ChatRequest) -> AssistantMessage + Send + Sync;

/// A model whose every answer is `script(request)`; counts its calls.
pub struct ScriptedBackend {
    name: String,
    script: Box<Script>,
    calls: AtomicUsize,
}

impl ScriptedBackend {
    /// A scripted model called `name`.
    pub fn new(name: &str, script: impl Fn(&ChatRequest) -> AssistantMessage + Send + Sync + 'static) -> Self {
        ScriptedBackend { name: name.into(), script: Box::new(script), calls: AtomicUsize::new(0) }
    }

    /// Calls so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }
}

impl ChatBackend for ScriptedBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat<'a>(&'a self, request: &'a ChatRequest) -> BoxFuture<'a, Result<AssistantMessage>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let answer = (self.script)(request);
        Box::pin(async move { Ok(answer) })
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
    inner: Arc<dyn ChatBackend>,
}

impl LyingBackend {
    /// Lies on top of `inner`.
    pub fn new(inner: Arc<dyn ChatBackend>) -> Self {
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

impl ChatBackend for LyingBackend {
    fn name(&self) -> &str {
        "liar"
    }

    fn chat<'a>(&'a self, request: &'a ChatRequest) -> BoxFuture<'a, Result<AssistantMessage>> {
        Box::pin(async move {
            let mut m = self.inner.chat(request).await?;
            if m.tool_calls.is_empty() {
                m.content = m.content.as_deref().map(corrupt);
            }
            Ok(m)
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
