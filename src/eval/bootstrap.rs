//! 95% bootstrap intervals over golden cases: how far a score could move with another
//! draw of cases of the same kind, so a reader can tell a real difference between two
//! models from noise.
//!
//! Percentile bootstrap (Efron): draw as many cases as there are, with replacement,
//! recompute the metric exactly as the report does ([`summarize_quality_of`]), repeat
//! [`RESAMPLES`] times, and take the 2.5th and 97.5th percentiles. A difference between
//! two models on the same cases is resampled *paired*: each draw picks the same case
//! ids for both, so the interval measures the models' difference, not the spread of
//! the cases' difficulty. Draws come from a seeded generator: the same reports give the
//! same intervals.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::report::{summarize_quality_of, QualitySummary};
use super::runner::CaseResult;

/// Resamples per interval.
pub const RESAMPLES: usize = 2000;

/// The generator's seed for every interval.
pub const SEED: u64 = 20_251_126;

/// A metric's value on all cases and its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The value on the cases as drawn.
    pub value: f64,
    /// 2.5th percentile of the resampled values.
    pub low: f64,
    /// 97.5th percentile of the resampled values.
    pub high: f64,
}

impl Interval {
    /// Whether the interval lies wholly above zero (for a difference: a real gain).
    pub fn above_zero(&self) -> bool {
        self.low > 0.0
    }
}

/// `key` (a field name of `report.json`'s `quality`, e.g. `tool_call_accuracy`, `rougeL`)
/// of a quality summary; `None` when it is not a number there.
pub fn quality_metric(q: &QualitySummary, key: &str) -> Option<f64> {
    serde_json::to_value(q).ok()?.get(key)?.as_f64()
}

/// Linear-interpolated percentile `p` (0-100) of sorted `values` (numpy's default).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let at = p / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64)
}

/// The interval of `statistic` over `n` cases: `statistic(&indexes)` computes the
/// metric on the drawn case indexes (`None` when undefined on that draw, which is
/// then left out, as when a draw holds no tool turn).
fn resample(n: usize, value: f64, statistic: impl Fn(&[usize]) -> Option<f64>) -> Interval {
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut draws = Vec::with_capacity(RESAMPLES);
    let mut picked = vec![0usize; n];
    for _ in 0..RESAMPLES {
        for p in picked.iter_mut() {
            *p = rng.random_range(0..n);
        }
        draws.extend(statistic(&picked));
    }
    draws.sort_by(f64::total_cmp);
    if draws.is_empty() {
        return Interval { value, low: value, high: value };
    }
    Interval { value, low: percentile(&draws, 2.5), high: percentile(&draws, 97.5) }
}

fn metric_of(cases: &[&CaseResult], key: &str) -> Option<f64> {
    quality_metric(&summarize_quality_of(cases, None), key)
}

/// `key` over `cases` with its 95% bootstrap interval; `None` when it is undefined on them.
pub fn interval(cases: &[CaseResult], key: &str) -> Option<Interval> {
    let all: Vec<&CaseResult> = cases.iter().collect();
    let value = metric_of(&all, key)?;
    Some(resample(cases.len(), value, |idx| metric_of(&idx.iter().map(|&i| &cases[i]).collect::<Vec<_>>(), key)))
}

/// `key` of `b` minus `key` of `a` over the cases both ran (matched by id), with its
/// paired 95% bootstrap interval; `None` when they share no case or the metric is
/// undefined on them.
pub fn paired_difference(a: &[CaseResult], b: &[CaseResult], key: &str) -> Option<Interval> {
    let by_id: HashMap<&str, &CaseResult> = b.iter().map(|c| (c.id.as_str(), c)).collect();
    let pairs: Vec<(&CaseResult, &CaseResult)> =
        a.iter().filter_map(|c| by_id.get(c.id.as_str()).map(|d| (c, *d))).collect();
    if pairs.is_empty() {
        return None;
    }
    let diff = |idx: &[usize]| -> Option<f64> {
        let left: Vec<&CaseResult> = idx.iter().map(|&i| pairs[i].0).collect();
        let right: Vec<&CaseResult> = idx.iter().map(|&i| pairs[i].1).collect();
        Some(metric_of(&right, key)? - metric_of(&left, key)?)
    };
    let value = diff(&(0..pairs.len()).collect::<Vec<_>>())?;
    Some(resample(pairs.len(), value, diff))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(id: usize, must_include: f64) -> CaseResult {
        CaseResult {
            id: format!("c{id}"),
            intent: "order".into(),
            must_include: Some(must_include),
            ..Default::default()
        }
    }

    #[test]
    fn percentile_interpolates_as_numpy() {
        // numpy.percentile([1, 2, 3, 4], [2.5, 50, 97.5]) = [1.075, 2.5, 3.925]
        let v = [1.0, 2.0, 3.0, 4.0];
        assert!((percentile(&v, 2.5) - 1.075).abs() < 1e-12);
        assert!((percentile(&v, 50.0) - 2.5).abs() < 1e-12);
        assert!((percentile(&v, 97.5) - 3.925).abs() < 1e-12);
    }

    #[test]
    fn binary_metric_interval_matches_the_normal_approximation() {
        // 200 cases, 60 covered: p = 0.3, standard error sqrt(p(1-p)/n) = 0.0324, so the
        // 95% interval is about 0.3 +- 0.0635. The bootstrap agrees within resampling noise.
        let cases: Vec<CaseResult> = (0..200).map(|i| case(i, if i % 10 < 3 { 1.0 } else { 0.0 })).collect();
        let ci = interval(&cases, "must_include").unwrap();
        assert!((ci.value - 0.3).abs() < 1e-12);
        assert!((ci.low - (0.3 - 0.0635)).abs() < 0.01, "{ci:?}");
        assert!((ci.high - (0.3 + 0.0635)).abs() < 0.01, "{ci:?}");
    }

    #[test]
    fn paired_difference_cancels_case_difficulty() {
        // b is a plus 0.1 on every case: the paired difference is exactly 0.1 on every
        // draw, although either model's own interval is wide.
        let a: Vec<CaseResult> = (0..50).map(|i| case(i, (i % 7) as f64 / 10.0)).collect();
        let b: Vec<CaseResult> =
            a.iter().map(|c| case(c.id[1..].parse().unwrap(), c.must_include.unwrap() + 0.1)).collect();
        let d = paired_difference(&a, &b, "must_include").unwrap();
        assert!((d.value - 0.1).abs() < 1e-9 && (d.low - 0.1).abs() < 1e-9 && (d.high - 0.1).abs() < 1e-9, "{d:?}");
        assert!(d.above_zero());
        let own = interval(&a, "must_include").unwrap();
        assert!(own.high - own.low > 0.1, "{own:?}");
        // Reversed order of b's cases: still matched by id.
        let mut rev = b.clone();
        rev.reverse();
        assert_eq!(paired_difference(&a, &rev, "must_include").unwrap(), d);
    }

    #[test]
    fn undefined_metric_has_no_interval() {
        let cases: Vec<CaseResult> = (0..10).map(|i| case(i, 1.0)).collect();
        assert!(interval(&cases, "tool_call_accuracy").is_none());
        assert!(paired_difference(&cases, &[], "must_include").is_none());
    }
}
