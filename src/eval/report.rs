//! The evaluation report: aggregates of the per-case results, thresholds (the CI
//! gate), `report.json`, `report.md`, and deltas against an earlier report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::checks::{mean_defined, ratio, BinaryCounts};
use super::faithfulness::{Faithfulness, JudgeStats};
use super::latency::{summarize, LatencySummary, LoadShape};
use super::runner::CaseResult;
use crate::atomic::write_atomic;
use crate::Result;

/// Quality over all cases.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QualitySummary {
    /// Cases run.
    pub cases: usize,
    /// Requests that failed.
    pub errors: usize,
    /// errors / cases.
    pub error_rate: f64,
    /// Mean judge faithfulness over judged answers.
    pub faithfulness: Option<f64>,
    /// Answers the judge scored.
    pub faithfulness_scored: usize,
    /// Answers the judge failed on after retries (not scored).
    pub faithfulness_failed: usize,
    /// Share of text answers with any unsupported fact.
    pub hallucination_rate: Option<f64>,
    /// Mean deterministic grounding over answers that state facts.
    pub grounding: Option<f64>,
    /// Refusal decisions against `must_refuse`.
    pub refusals: BinaryCounts,
    /// Refusals that were required / refusals.
    pub refusal_precision: Option<f64>,
    /// Required refusals that happened / required refusals.
    pub refusal_recall: Option<f64>,
    /// Tool turns with the right call / tool turns.
    pub tool_call_accuracy: Option<f64>,
    /// Tool turns where the expected tool was called, arguments aside / tool turns.
    #[serde(default)]
    pub tool_name_accuracy: Option<f64>,
    /// Cases expecting a tool call.
    pub tool_cases: usize,
    /// Text turns where a tool was called instead.
    pub spurious_tool_calls: usize,
    /// Mean `must_include` coverage.
    pub must_include: Option<f64>,
    /// Mean ROUGE-1 F.
    pub rouge1: Option<f64>,
    /// Mean ROUGE-2 F.
    pub rouge2: Option<f64>,
    /// Mean ROUGE-L F.
    #[serde(rename = "rougeL")]
    pub rouge_l: Option<f64>,
    /// Mean ROUGE-Lsum F.
    #[serde(rename = "rougeLsum")]
    pub rouge_lsum: Option<f64>,
    /// Mean chrF (0-1).
    pub chrf: Option<f64>,
    /// Judge call counters, when a judge was used.
    pub judge: Option<JudgeStats>,
}

/// Quality of one intent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IntentSummary {
    /// Cases of this intent.
    pub cases: usize,
    /// Mean `must_include` coverage.
    pub must_include: Option<f64>,
    /// Mean judge faithfulness.
    pub faithfulness: Option<f64>,
    /// Mean grounding.
    pub grounding: Option<f64>,
    /// Mean ROUGE-L F.
    #[serde(rename = "rougeL")]
    pub rouge_l: Option<f64>,
    /// Tool-call accuracy.
    pub tool_call_accuracy: Option<f64>,
    /// Hallucination rate.
    pub hallucination_rate: Option<f64>,
}

/// Aggregates `results` (a judge's counters included when one ran).
pub fn summarize_quality(results: &[CaseResult], judge: Option<JudgeStats>) -> QualitySummary {
    summarize_quality_of(&results.iter().collect::<Vec<_>>(), judge)
}

/// [`summarize_quality`] of borrowed results (a bootstrap draw, which repeats cases).
pub fn summarize_quality_of(results: &[&CaseResult], judge: Option<JudgeStats>) -> QualitySummary {
    let ok: Vec<&CaseResult> = results.iter().copied().filter(|r| r.error.is_none()).collect();
    let mut refusals = BinaryCounts::default();
    for r in &ok {
        refusals.add(r.refused, r.must_refuse);
    }
    let f = |get: fn(&CaseResult) -> Option<f64>| mean_defined(ok.iter().map(|r| get(r)));
    let tool: Vec<bool> = ok.iter().filter_map(|r| r.tool_correct).collect();
    let tool_name: Vec<bool> = ok.iter().filter_map(|r| r.tool_name_correct).collect();
    let halluc: Vec<bool> = ok.iter().filter_map(|r| r.hallucinated).collect();
    QualitySummary {
        cases: results.len(),
        errors: results.len() - ok.len(),
        error_rate: ratio(results.len() - ok.len(), results.len()).unwrap_or(0.0),
        faithfulness: f(|r| r.faithfulness.as_ref().and_then(Faithfulness::score)),
        faithfulness_scored: ok.iter().filter(|r| matches!(r.faithfulness, Some(Faithfulness::Scored { .. }))).count(),
        faithfulness_failed: ok.iter().filter(|r| matches!(r.faithfulness, Some(Faithfulness::Failed { .. }))).count(),
        hallucination_rate: ratio(halluc.iter().filter(|h| **h).count(), halluc.len()),
        grounding: f(|r| r.grounding.as_ref().and_then(|g| g.score)),
        refusal_precision: refusals.precision(),
        refusal_recall: refusals.recall(),
        refusals,
        tool_call_accuracy: ratio(tool.iter().filter(|t| **t).count(), tool.len()),
        tool_name_accuracy: ratio(tool_name.iter().filter(|t| **t).count(), tool_name.len()),
        tool_cases: tool.len(),
        spurious_tool_calls: ok.iter().filter(|r| r.spurious_tool_call).count(),
        must_include: f(|r| r.must_include),
        rouge1: f(|r| r.rouge.map(|s| s.rouge1.fmeasure)),
        rouge2: f(|r| r.rouge.map(|s| s.rouge2.fmeasure)),
        rouge_l: f(|r| r.rouge.map(|s| s.rouge_l.fmeasure)),
        rouge_lsum: f(|r| r.rouge.map(|s| s.rouge_lsum.fmeasure)),
        chrf: f(|r| r.chrf),
        judge,
    }
}

/// Per-intent aggregates, by intent name.
pub fn summarize_intents(results: &[CaseResult]) -> BTreeMap<String, IntentSummary> {
    let mut groups: BTreeMap<String, Vec<CaseResult>> = BTreeMap::new();
    for r in results {
        groups.entry(r.intent.clone()).or_default().push(r.clone());
    }
    groups
        .into_iter()
        .map(|(intent, rs)| {
            let q = summarize_quality(&rs, None);
            let s = IntentSummary {
                cases: rs.len(),
                must_include: q.must_include,
                faithfulness: q.faithfulness,
                grounding: q.grounding,
                rouge_l: q.rouge_l,
                tool_call_accuracy: q.tool_call_accuracy,
                hallucination_rate: q.hallucination_rate,
            };
            (intent, s)
        })
        .collect()
}

/// The CI gate: each limit is optional; a metric that was not measured fails its limit.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Lowest acceptable mean faithfulness.
    pub min_faithfulness: Option<f64>,
    /// Highest acceptable hallucination rate.
    pub max_hallucination: Option<f64>,
    /// Highest acceptable p95 TTFT, milliseconds.
    pub max_ttft_p95_ms: Option<f64>,
    /// Lowest acceptable tool-call accuracy.
    pub min_tool_call_accuracy: Option<f64>,
    /// Lowest acceptable refusal precision.
    pub min_refusal_precision: Option<f64>,
    /// Lowest acceptable refusal recall.
    pub min_refusal_recall: Option<f64>,
    /// Lowest acceptable `must_include` coverage.
    pub min_must_include: Option<f64>,
    /// Lowest acceptable mean ROUGE-L F.
    pub min_rouge_l: Option<f64>,
    /// Highest acceptable share of failed requests.
    pub max_error_rate: Option<f64>,
}

/// One threshold's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdCheck {
    /// The threshold's name (`min_faithfulness`, ...).
    pub name: String,
    /// Its limit.
    pub limit: f64,
    /// The measured value (`None`: not measured).
    pub value: Option<f64>,
    /// Whether the value is within the limit.
    pub passed: bool,
}

impl Thresholds {
    /// Checks every set limit against the summaries.
    pub fn check(&self, q: &QualitySummary, l: &LatencySummary) -> Vec<ThresholdCheck> {
        let ttft = (l.ttft_ms.count > 0).then_some(l.ttft_ms.p95);
        let rows: [(&str, Option<f64>, Option<f64>, bool); 9] = [
            ("min_faithfulness", self.min_faithfulness, q.faithfulness, true),
            ("max_hallucination", self.max_hallucination, q.hallucination_rate, false),
            ("max_ttft_p95_ms", self.max_ttft_p95_ms, ttft, false),
            ("min_tool_call_accuracy", self.min_tool_call_accuracy, q.tool_call_accuracy, true),
            ("min_refusal_precision", self.min_refusal_precision, q.refusal_precision, true),
            ("min_refusal_recall", self.min_refusal_recall, q.refusal_recall, true),
            ("min_must_include", self.min_must_include, q.must_include, true),
            ("min_rouge_l", self.min_rouge_l, q.rouge_l, true),
            ("max_error_rate", self.max_error_rate, Some(q.error_rate), false),
        ];
        rows.into_iter()
            .filter_map(|(name, limit, value, is_min)| {
                let limit = limit?;
                let passed = value.is_some_and(|v| if is_min { v >= limit } else { v <= limit });
                Some(ThresholdCheck { name: name.into(), limit, value, passed })
            })
            .collect()
    }
}

/// What was evaluated, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportMeta {
    /// The endpoint's base URL.
    pub endpoint: String,
    /// The model id.
    pub model: String,
    /// The golden set's path.
    pub set: String,
    /// The judge's model id, when one ran.
    pub judge_model: Option<String>,
    /// Concurrency or rate.
    pub load: LoadShape,
    /// `max_tokens` per request.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f64,
    /// stylevn's version.
    pub stylevn_version: String,
}

/// The whole report (`report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What was evaluated.
    pub meta: ReportMeta,
    /// Quality aggregates.
    pub quality: QualitySummary,
    /// Latency aggregates.
    pub latency: LatencySummary,
    /// Quality per intent.
    pub per_intent: BTreeMap<String, IntentSummary>,
    /// The gate's outcome.
    pub thresholds: Vec<ThresholdCheck>,
    /// Every case.
    pub cases: Vec<CaseResult>,
}

impl Report {
    /// Builds the report from a run's results.
    pub fn build(
        meta: ReportMeta,
        results: Vec<CaseResult>,
        duration_s: f64,
        judge: Option<JudgeStats>,
        thresholds: &Thresholds,
    ) -> Self {
        let timings: Vec<_> = results.iter().filter_map(|r| r.timing.clone()).collect();
        let failed = results.iter().filter(|r| r.error.is_some()).count();
        let latency = summarize(&timings, failed, duration_s);
        let quality = summarize_quality(&results, judge);
        let checks = thresholds.check(&quality, &latency);
        Report { meta, per_intent: summarize_intents(&results), quality, latency, thresholds: checks, cases: results }
    }

    /// Whether every threshold passed.
    pub fn passed(&self) -> bool {
        self.thresholds.iter().all(|t| t.passed)
    }

    /// Writes `report.json` and `report.md` into `dir` (atomically).
    pub fn write(&self, dir: &Path, compare: Option<&[Delta]>) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| crate::Error::msg(e.to_string()))?;
        write_atomic(&dir.join("report.json"), &json)?;
        write_atomic(&dir.join("report.md"), super::report_md::markdown(self, compare).as_bytes())
    }
}

/// Headline metrics of a `report.json` (any version), by name, and whether higher is
/// better for each.
pub fn headline(report: &Value) -> BTreeMap<String, (f64, bool)> {
    const PATHS: &[(&str, &str, bool)] = &[
        ("faithfulness", "/quality/faithfulness", true),
        ("hallucination_rate", "/quality/hallucination_rate", false),
        ("grounding", "/quality/grounding", true),
        ("tool_call_accuracy", "/quality/tool_call_accuracy", true),
        ("tool_name_accuracy", "/quality/tool_name_accuracy", true),
        ("refusal_precision", "/quality/refusal_precision", true),
        ("refusal_recall", "/quality/refusal_recall", true),
        ("must_include", "/quality/must_include", true),
        ("rouge1", "/quality/rouge1", true),
        ("rouge2", "/quality/rouge2", true),
        ("rougeL", "/quality/rougeL", true),
        ("rougeLsum", "/quality/rougeLsum", true),
        ("chrf", "/quality/chrf", true),
        ("error_rate", "/quality/error_rate", false),
        ("ttft_p95_ms", "/latency/ttft_ms/p95", false),
        ("ttft_median_ms", "/latency/ttft_ms/median", false),
        ("tpot_median_ms", "/latency/tpot_ms/median", false),
        ("itl_p95_ms", "/latency/itl_ms/p95", false),
        ("e2e_p95_ms", "/latency/e2e_ms/p95", false),
        ("output_token_throughput", "/latency/output_token_throughput", true),
    ];
    PATHS
        .iter()
        .filter_map(|(name, path, hib)| Some((name.to_string(), (report.pointer(path)?.as_f64()?, *hib))))
        .collect()
}

/// One metric's change between two reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// Metric name.
    pub metric: String,
    /// Value in the old report.
    pub old: f64,
    /// Value in the new report.
    pub new: f64,
    /// new - old.
    pub delta: f64,
    /// Whether the change is an improvement (`None` when unchanged).
    pub improved: Option<bool>,
}

/// Deltas of every headline metric present in both reports.
pub fn compare(old: &Value, new: &Value) -> Vec<Delta> {
    let (o, n) = (headline(old), headline(new));
    n.into_iter()
        .filter_map(|(metric, (new, higher_is_better))| {
            let (old, _) = *o.get(&metric)?;
            let delta = new - old;
            let improved = (delta.abs() > 1e-12).then_some((delta > 0.0) == higher_is_better);
            Some(Delta { metric, old, new, delta, improved })
        })
        .collect()
}

/// Deltas as a Markdown table.
pub fn deltas_markdown(deltas: &[Delta]) -> String {
    let mut s = String::from("| metric | old | new | delta | |\n|---|---:|---:|---:|---|\n");
    for d in deltas {
        let mark = match d.improved {
            Some(true) => "better",
            Some(false) => "worse",
            None => "",
        };
        let _ = writeln!(s, "| {} | {:.4} | {:.4} | {:+.4} | {mark} |", d.metric, d.old, d.new, d.delta);
    }
    s
}
