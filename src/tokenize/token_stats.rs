//! Token-length statistics of a templated dataset.

use serde::Serialize;

/// Lengths in tokens of the kept rows, and how many rows were over the limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TokenStats {
    /// Rows measured.
    pub count: usize,
    /// Shortest row.
    pub min: usize,
    /// Mean length.
    pub mean: f64,
    /// Median (nearest rank).
    pub p50: usize,
    /// 95th percentile (nearest rank).
    pub p95: usize,
    /// Longest row.
    pub max: usize,
    /// Rows dropped for exceeding the limit.
    pub over_max_len: usize,
    /// The limit.
    pub max_len: usize,
}

impl TokenStats {
    /// Statistics of `lengths`; `over_max_len` rows were dropped for exceeding `max_len`.
    pub fn new(lengths: &[usize], over_max_len: usize, max_len: usize) -> Self {
        let mut sorted = lengths.to_vec();
        sorted.sort_unstable();
        let rank = |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        if sorted.is_empty() {
            return TokenStats { over_max_len, max_len, ..Default::default() };
        }
        TokenStats {
            count: sorted.len(),
            min: sorted[0],
            mean: sorted.iter().sum::<usize>() as f64 / sorted.len() as f64,
            p50: rank(0.50),
            p95: rank(0.95),
            max: sorted[sorted.len() - 1],
            over_max_len,
            max_len,
        }
    }
}

impl std::fmt::Display for TokenStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tokens min {} mean {:.1} p50 {} p95 {} max {}, {} over max-len {}",
            self.min, self.mean, self.p50, self.p95, self.max, self.over_max_len, self.max_len
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let lengths: Vec<usize> = (1..=20).collect();
        let s = TokenStats::new(&lengths, 2, 100);
        assert_eq!((s.count, s.min, s.p50, s.p95, s.max, s.over_max_len), (20, 1, 10, 19, 20, 2));
        assert_eq!(s.mean, 10.5);
        assert_eq!(TokenStats::new(&[], 0, 8).count, 0);
        assert_eq!(TokenStats::new(&[7], 0, 8).p95, 7);
    }
}
