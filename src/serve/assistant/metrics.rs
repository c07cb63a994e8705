//! The assistant's counters, printed in Prometheus text format by the server's
//! `/metrics` ([`Metrics::render`]).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::serve::guardrails::Rejection;

/// Counters, all monotonic.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Assistant turns handled.
    pub requests: AtomicU64,
    /// Turns refused by the input checks, by [`Rejection`] (in `Rejection` order).
    pub refusals: [AtomicU64; 5],
    /// Tools run (model calls and routed calls).
    pub tool_calls: AtomicU64,
    /// `get_order_status` calls made by deterministic routing.
    pub routed_calls: AtomicU64,
    /// Answers that failed the grounding verifier (each backend's attempt counts).
    pub grounding_failures: AtomicU64,
    /// Turns answered by the fallback model.
    pub fallback_used: AtomicU64,
    /// Fallbacks skipped because of the rate cap.
    pub fallback_capped: AtomicU64,
    /// Safe replies delivered instead of an answer.
    pub safe_replies: AtomicU64,
    /// Answers written from routed tool results (the model's left facts out or failed).
    pub composed_answers: AtomicU64,
    /// Model errors (transport, timeouts).
    pub backend_errors: AtomicU64,
    /// Answers served by the exact-match cache.
    pub cache_hits_exact: AtomicU64,
    /// Answers served by the semantic cache.
    pub cache_hits_semantic: AtomicU64,
    /// Cacheable turns the cache did not have.
    pub cache_misses: AtomicU64,
    /// Feedback received.
    pub feedback: AtomicU64,
    /// Zalo webhook events accepted.
    pub zalo_events: AtomicU64,
    /// Zalo events dropped as duplicates.
    pub zalo_duplicates: AtomicU64,
    /// Zalo requests rejected for a bad signature.
    pub zalo_bad_signatures: AtomicU64,
    /// Zalo replies sent.
    pub zalo_replies: AtomicU64,
    /// Zalo replies given up after retries.
    pub zalo_send_failures: AtomicU64,
    /// Zalo access-token refreshes.
    pub zalo_token_refreshes: AtomicU64,
}

/// Adds one.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Counts a refusal.
    pub fn refused(&self, why: Rejection) {
        inc(&self.refusals[why as usize]);
    }

    /// Prometheus text exposition of every counter (`stylevn_assistant_*`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(out, "# HELP stylevn_assistant_{name} {help}\n# TYPE stylevn_assistant_{name} counter");
            let _ = writeln!(out, "stylevn_assistant_{name} {}", v.load(Ordering::Relaxed));
        };
        counter("requests_total", "Assistant turns handled.", &self.requests);
        counter("tool_calls_total", "Tools run.", &self.tool_calls);
        counter("routed_calls_total", "Tool calls made by deterministic routing.", &self.routed_calls);
        counter("grounding_failures_total", "Answers that failed the grounding verifier.", &self.grounding_failures);
        counter("fallback_used_total", "Turns answered by the fallback model.", &self.fallback_used);
        counter("fallback_capped_total", "Fallbacks skipped by the rate cap.", &self.fallback_capped);
        counter("safe_replies_total", "Safe replies delivered instead of an answer.", &self.safe_replies);
        counter(
            "composed_answers_total",
            "Answers written from routed tool results instead of the model's.",
            &self.composed_answers,
        );
        counter("backend_errors_total", "Model call errors.", &self.backend_errors);
        counter("cache_hits_exact_total", "Answers served by the exact-match cache.", &self.cache_hits_exact);
        counter("cache_hits_semantic_total", "Answers served by the semantic cache.", &self.cache_hits_semantic);
        counter("cache_misses_total", "Cacheable turns not in the cache.", &self.cache_misses);
        counter("feedback_total", "Feedback received.", &self.feedback);
        counter("zalo_events_total", "Zalo webhook events accepted.", &self.zalo_events);
        counter("zalo_duplicates_total", "Zalo events dropped as duplicates.", &self.zalo_duplicates);
        counter("zalo_bad_signatures_total", "Zalo requests with a bad signature.", &self.zalo_bad_signatures);
        counter("zalo_replies_total", "Zalo replies sent.", &self.zalo_replies);
        counter("zalo_send_failures_total", "Zalo replies given up after retries.", &self.zalo_send_failures);
        counter("zalo_token_refreshes_total", "Zalo access-token refreshes.", &self.zalo_token_refreshes);
        let _ = writeln!(
            out,
            "# HELP stylevn_assistant_refusals_total Turns refused by the input checks.\n# TYPE stylevn_assistant_refusals_total counter"
        );
        for why in
            [Rejection::Empty, Rejection::TooLong, Rejection::Injection, Rejection::Exfiltration, Rejection::OutOfScope]
        {
            let v = self.refusals[why as usize].load(Ordering::Relaxed);
            let _ = writeln!(out, "stylevn_assistant_refusals_total{{reason=\"{}\"}} {v}", why.name());
        }
        out
    }
}
