//! Serving latency, defined exactly as vLLM's `benchmark_serving` does for streamed
//! OpenAI chat responses:
//!
//! - **TTFT**: first chunk carrying generated text - time the request was sent;
//! - **ITL**: for every later chunk carrying text, its arrival - the previous chunk's
//!   arrival (any chunk, text or not, moves the previous-arrival mark);
//! - **E2E latency**: end of the stream (`[DONE]`) - send time;
//! - **TPOT**: (E2E - TTFT) / (output tokens - 1), for requests with > 1 output token;
//! - request throughput = completed / duration, output token throughput = output
//!   tokens / duration, total token throughput = (prompt + output tokens) / duration;
//! - statistics: mean, median and numpy-style (linear) percentiles, in milliseconds.
//!
//! Output tokens come from the stream's `usage` (`stream_options.include_usage`) when
//! the server sends it, else one per text chunk. Tool-call deltas count as text (vLLM
//! counts only `content`, which leaves tool-call answers without a TTFT).
//!
//! Load shapes: a fixed number of concurrent requests, or Poisson arrivals at a rate
//! (exponential gaps, vLLM's gamma with burstiness 1) with an optional concurrency cap.

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Timings of one streamed request, in milliseconds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RequestTiming {
    /// Time to first generated text.
    pub ttft_ms: f64,
    /// Gaps between consecutive text chunks after the first.
    pub itl_ms: Vec<f64>,
    /// Send to end of stream.
    pub e2e_ms: f64,
    /// Generated tokens.
    pub output_tokens: usize,
    /// Prompt tokens, when the server reported usage (else 0).
    pub prompt_tokens: usize,
}

impl RequestTiming {
    /// (E2E - TTFT) / (output tokens - 1); `None` for a single-token answer.
    pub fn tpot_ms(&self) -> Option<f64> {
        (self.output_tokens > 1).then(|| (self.e2e_ms - self.ttft_ms) / (self.output_tokens - 1) as f64)
    }
}

/// Mean, median and tail percentiles of one latency metric, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Distribution {
    /// Number of samples.
    pub count: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// 50th percentile.
    pub median: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

impl Distribution {
    /// Summarizes `samples` (all zeros when empty, as numpy's benchmark does with `or 0`).
    pub fn of(samples: &[f64]) -> Self {
        if samples.is_empty() {
            return Distribution::default();
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Distribution {
            count: sorted.len(),
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
            median: percentile(&sorted, 50.0),
            p95: percentile(&sorted, 95.0),
            p99: percentile(&sorted, 99.0),
            max: sorted[sorted.len() - 1],
        }
    }
}

/// numpy's default (`linear`) percentile of ascending `sorted` samples, `q` in 0..=100.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        1 => sorted[0],
        n => {
            let pos = q / 100.0 * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
        }
    }
}

/// The latency section of a report.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Requests that streamed to the end.
    pub completed: usize,
    /// Requests that failed.
    pub failed: usize,
    /// Wall time of the whole run, seconds.
    pub duration_s: f64,
    /// Completed requests per second.
    pub request_throughput: f64,
    /// Generated tokens per second.
    pub output_token_throughput: f64,
    /// Prompt plus generated tokens per second.
    pub total_token_throughput: f64,
    /// Generated tokens, all requests.
    pub total_output_tokens: usize,
    /// Prompt tokens, all requests (0 when the server reports no usage).
    pub total_prompt_tokens: usize,
    /// Time to first token.
    pub ttft_ms: Distribution,
    /// Time per output token after the first.
    pub tpot_ms: Distribution,
    /// Inter-token latency, all gaps of all requests.
    pub itl_ms: Distribution,
    /// End-to-end request latency.
    pub e2e_ms: Distribution,
}

/// Summarizes completed requests' timings over a run of `duration_s` seconds.
pub fn summarize(timings: &[RequestTiming], failed: usize, duration_s: f64) -> LatencySummary {
    let ttft: Vec<f64> = timings.iter().map(|t| t.ttft_ms).collect();
    let tpot: Vec<f64> = timings.iter().filter_map(RequestTiming::tpot_ms).collect();
    let itl: Vec<f64> = timings.iter().flat_map(|t| t.itl_ms.iter().copied()).collect();
    let e2e: Vec<f64> = timings.iter().map(|t| t.e2e_ms).collect();
    let total_output_tokens: usize = timings.iter().map(|t| t.output_tokens).sum();
    let total_prompt_tokens: usize = timings.iter().map(|t| t.prompt_tokens).sum();
    let per_s = |x: f64| if duration_s > 0.0 { x / duration_s } else { 0.0 };
    LatencySummary {
        completed: timings.len(),
        failed,
        duration_s,
        request_throughput: per_s(timings.len() as f64),
        output_token_throughput: per_s(total_output_tokens as f64),
        total_token_throughput: per_s((total_output_tokens + total_prompt_tokens) as f64),
        total_output_tokens,
        total_prompt_tokens,
        ttft_ms: Distribution::of(&ttft),
        tpot_ms: Distribution::of(&tpot),
        itl_ms: Distribution::of(&itl),
        e2e_ms: Distribution::of(&e2e),
    }
}

/// How requests are sent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadShape {
    /// All requests queued at once, at most this many in flight.
    Concurrency(usize),
    /// Poisson arrivals at `per_s` requests per second, at most `max_concurrency` in
    /// flight (0 = unlimited).
    Rate {
        /// Mean arrivals per second.
        per_s: f64,
        /// In-flight cap; 0 means none.
        max_concurrency: usize,
    },
}

/// Send-time offsets (seconds from the start) of `n` Poisson arrivals at `per_s`
/// requests per second: cumulative exponential gaps, reproducible from `seed`.
pub fn poisson_offsets(n: usize, per_s: f64, seed: u64) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut t = 0.0;
    (0..n)
        .map(|_| {
            let u: f64 = rng.random::<f64>();
            t += -(1.0 - u).ln() / per_s;
            t
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_linear_percentiles() {
        // numpy.percentile([1, 2, 3, 4], [50, 95, 99]) = 2.5, 3.85, 3.97
        let s = [1.0, 2.0, 3.0, 4.0];
        assert!((percentile(&s, 50.0) - 2.5).abs() < 1e-12);
        assert!((percentile(&s, 95.0) - 3.85).abs() < 1e-12);
        assert!((percentile(&s, 99.0) - 3.97).abs() < 1e-12);
    }

    #[test]
    fn tpot_and_throughput() {
        let t =
            RequestTiming { ttft_ms: 100.0, itl_ms: vec![10.0; 4], e2e_ms: 140.0, output_tokens: 5, prompt_tokens: 20 };
        assert_eq!(t.tpot_ms(), Some(10.0));
        let s = summarize(&[t.clone(), t], 1, 2.0);
        assert_eq!((s.completed, s.failed), (2, 1));
        assert_eq!(s.request_throughput, 1.0);
        assert_eq!(s.output_token_throughput, 5.0);
        assert_eq!(s.total_token_throughput, 25.0);
        assert_eq!(s.itl_ms.count, 8);
    }

    #[test]
    fn poisson_mean_gap_is_one_over_rate() {
        let offs = poisson_offsets(20_000, 4.0, 1);
        let mean_gap = offs.last().unwrap() / offs.len() as f64;
        assert!((mean_gap - 0.25).abs() < 0.01, "{mean_gap}");
        assert!(offs.windows(2).all(|w| w[1] >= w[0]));
    }
}
