//! Server metrics in the Prometheus text exposition format (version 0.0.4):
//!
//! ```text
//! # HELP stylevn_requests_total HTTP requests answered, by endpoint and status code.
//! # TYPE stylevn_requests_total counter
//! stylevn_requests_total{endpoint="/v1/chat/completions",status="200"} 3
//! # TYPE stylevn_time_to_first_token_seconds histogram
//! stylevn_time_to_first_token_seconds_bucket{le="0.05"} 1
//! stylevn_time_to_first_token_seconds_bucket{le="+Inf"} 3
//! stylevn_time_to_first_token_seconds_sum 0.7
//! stylevn_time_to_first_token_seconds_count 3
//! ```
//! Counters and gauges are atomics; histograms keep cumulative bucket counts, as
//! the format wants them. Names follow vLLM's where one exists (TTFT, inter-token
//! latency, prompt and generation tokens, prefix-cache queries and hits).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// Bucket upper bounds (seconds) of the time-to-first-token histogram (vLLM's).
const TTFT_BUCKETS_S: [f64; 15] =
    [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0];
/// Bucket upper bounds (seconds) of the inter-token latency histogram (vLLM's).
const ITL_BUCKETS_S: [f64; 14] = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0];

/// A histogram with fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative counts per bucket, plus one for `+Inf`, and the sum.
    state: Mutex<(Vec<u64>, f64)>,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram { bounds, state: Mutex::new((vec![0; bounds.len() + 1], 0.0)) }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        let slot = self.bounds.iter().position(|&b| value <= b).unwrap_or(self.bounds.len());
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0[slot] += 1;
        state.1 += value;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, count) in state.0.iter().enumerate() {
            cumulative += count;
            let le = self.bounds.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {cumulative}", state.1);
    }
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// Requests waiting for a batch slot.
    pub queue_depth: AtomicI64,
    /// Sequences in the running batch.
    pub running: AtomicI64,
    /// Prompt tokens of admitted requests (cached ones included).
    pub prompt_tokens: AtomicU64,
    /// Tokens generated.
    pub generation_tokens: AtomicU64,
    /// Admitted requests that looked up the prefix cache.
    pub prefix_cache_queries: AtomicU64,
    /// Admitted requests that reused a cached prefix.
    pub prefix_cache_hits: AtomicU64,
    /// Prompt tokens whose keys and values came from the prefix cache.
    pub prefix_cache_hit_tokens: AtomicU64,
    /// Generations stopped because the client went away.
    pub cancelled: AtomicU64,
    /// Generations stopped by the per-request timeout.
    pub timed_out: AtomicU64,
    /// Seconds from admission to the first generated token.
    pub ttft: Histogram,
    /// Seconds between consecutive generated tokens of one request.
    pub itl: Histogram,
    /// More exposition text appended to [`Metrics::render`] (the assistant's counters).
    extra: Mutex<Vec<ExtraSource>>,
}

/// A function that renders more exposition text.
struct ExtraSource(Box<dyn Fn() -> String + Send + Sync>);

impl std::fmt::Debug for ExtraSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExtraSource")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            queue_depth: AtomicI64::new(0),
            running: AtomicI64::new(0),
            prompt_tokens: AtomicU64::new(0),
            generation_tokens: AtomicU64::new(0),
            prefix_cache_queries: AtomicU64::new(0),
            prefix_cache_hits: AtomicU64::new(0),
            prefix_cache_hit_tokens: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            ttft: Histogram::new(&TTFT_BUCKETS_S),
            itl: Histogram::new(&ITL_BUCKETS_S),
            extra: Mutex::new(Vec::new()),
        }
    }
}

impl Metrics {
    /// Counts one answered HTTP request.
    pub fn count_request(&self, endpoint: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((endpoint.to_string(), status)).or_default() += 1;
    }

    /// Appends `source`'s text to every [`Metrics::render`] (metrics of code built on
    /// the server, such as the assistant's cache hits and guardrail events).
    pub fn add_source(&self, source: impl Fn() -> String + Send + Sync + 'static) {
        self.extra.lock().unwrap_or_else(|e| e.into_inner()).push(ExtraSource(Box::new(source)));
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for source in self.extra.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            out.push_str(&(source.0)());
        }
        let _ = writeln!(
            out,
            "# HELP stylevn_requests_total HTTP requests answered, by endpoint and status code.\n\
             # TYPE stylevn_requests_total counter"
        );
        for ((endpoint, status), n) in self.requests.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "stylevn_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}");
        }
        let gauges = [
            ("stylevn_num_requests_waiting", "Requests waiting in the queue.", &self.queue_depth),
            ("stylevn_num_requests_running", "Sequences in the running batch.", &self.running),
        ];
        for (name, help, value) in gauges {
            let _ =
                writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}", value.load(Ordering::Relaxed));
        }
        let counters = [
            ("stylevn_prompt_tokens_total", "Prompt tokens of admitted requests.", &self.prompt_tokens),
            ("stylevn_generation_tokens_total", "Generated tokens.", &self.generation_tokens),
            (
                "stylevn_prefix_cache_queries_total",
                "Requests that looked up the prefix cache.",
                &self.prefix_cache_queries,
            ),
            ("stylevn_prefix_cache_hits_total", "Requests that reused a cached prefix.", &self.prefix_cache_hits),
            (
                "stylevn_prefix_cache_hit_tokens_total",
                "Prompt tokens served from the prefix cache.",
                &self.prefix_cache_hit_tokens,
            ),
            ("stylevn_requests_cancelled_total", "Generations stopped because the client left.", &self.cancelled),
            ("stylevn_requests_timed_out_total", "Generations stopped by the request timeout.", &self.timed_out),
        ];
        for (name, help, value) in counters {
            let _ =
                writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", value.load(Ordering::Relaxed));
        }
        self.ttft.render(&mut out, "stylevn_time_to_first_token_seconds", "Seconds from admission to the first token.");
        self.itl.render(&mut out, "stylevn_inter_token_latency_seconds", "Seconds between consecutive tokens.");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        for v in [0.003, 0.003, 0.09, 20.0] {
            m.ttft.observe(v);
        }
        let text = m.render();
        assert!(text.contains("stylevn_time_to_first_token_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("stylevn_time_to_first_token_seconds_bucket{le=\"0.1\"} 3\n"));
        assert!(text.contains("stylevn_time_to_first_token_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(text.contains("stylevn_time_to_first_token_seconds_count 4\n"));
    }
}
