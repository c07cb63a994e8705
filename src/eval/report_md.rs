//! `report.md`: the report a person reads in a PR: the gate, quality and latency
//! tables, scores per intent, the worst cases with their answers, and the plots.

use std::fmt::Write as _;

use super::report::{deltas_markdown, Delta, Report};
use super::runner::CaseResult;

/// How many worst cases the report lists.
pub const WORST_CASES: usize = 10;

fn opt(v: Option<f64>) -> String {
    v.map_or("n/a".to_string(), |v| format!("{v:.4}"))
}

/// How bad a case is, for ordering: failed requests first, then hallucinations, wrong
/// tools, missed refusals, then low coverage and faithfulness.
fn badness(r: &CaseResult) -> f64 {
    let mut b = 0.0;
    if r.error.is_some() {
        b += 10.0;
    }
    if r.hallucinated == Some(true) {
        b += 4.0;
    }
    if r.tool_correct == Some(false) {
        b += 3.0;
    }
    if r.must_refuse != r.refused {
        b += 3.0;
    }
    b += 1.0 - r.must_include.unwrap_or(1.0);
    b += 1.0 - r.faithfulness.as_ref().and_then(|f| f.score()).unwrap_or(1.0);
    b
}

/// Renders the report as Markdown.
pub fn markdown(report: &Report, compare: Option<&[Delta]>) -> String {
    let (m, q, l) = (&report.meta, &report.quality, &report.latency);
    let mut s = String::new();
    let _ = writeln!(s, "# Evaluation: `{}`\n", m.model);
    let _ = writeln!(
        s,
        "Endpoint `{}`, set `{}` ({} cases), judge {}, load {:?}, max_tokens {}, temperature {}; stylevn {}.\n",
        m.endpoint,
        m.set,
        q.cases,
        m.judge_model.as_deref().map_or("none".to_string(), |j| format!("`{j}`")),
        m.load,
        m.max_tokens,
        m.temperature,
        m.stylevn_version
    );
    let verdict = if report.passed() { "PASSED" } else { "FAILED" };
    let _ = writeln!(s, "## Gate: {verdict}\n\n| threshold | limit | value | |\n|---|---:|---:|---|");
    for t in &report.thresholds {
        let _ =
            writeln!(s, "| {} | {} | {} | {} |", t.name, t.limit, opt(t.value), if t.passed { "ok" } else { "MISSED" });
    }
    if let Some(deltas) = compare {
        let _ = writeln!(s, "\n## Change against the previous report\n\n{}", deltas_markdown(deltas));
    }
    let _ = writeln!(s, "\n## Quality\n\n| metric | value |\n|---|---:|");
    let rows = [
        ("faithfulness (judge)", opt(q.faithfulness)),
        ("answers judged / judge failed", format!("{} / {}", q.faithfulness_scored, q.faithfulness_failed)),
        ("hallucination rate", opt(q.hallucination_rate)),
        ("grounding (deterministic)", opt(q.grounding)),
        ("tool-call accuracy", format!("{} ({} cases)", opt(q.tool_call_accuracy), q.tool_cases)),
        ("right tool, arguments aside", opt(q.tool_name_accuracy)),
        ("spurious tool calls", q.spurious_tool_calls.to_string()),
        ("refusal precision", opt(q.refusal_precision)),
        ("refusal recall", opt(q.refusal_recall)),
        ("must_include coverage", opt(q.must_include)),
        (
            "ROUGE-1 / 2 / L / Lsum",
            format!("{} / {} / {} / {}", opt(q.rouge1), opt(q.rouge2), opt(q.rouge_l), opt(q.rouge_lsum)),
        ),
        ("chrF", opt(q.chrf)),
        ("failed requests", format!("{} ({:.2}%)", q.errors, q.error_rate * 100.0)),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    if let Some(j) = &q.judge {
        let _ = writeln!(
            s,
            "\nJudge calls: {} ({} retries, {} transport errors, {} malformed outputs, {} answers unjudged).",
            j.calls, j.retries, j.transport_errors, j.malformed, j.failed_answers
        );
    }
    let _ = writeln!(
        s,
        "\n## Latency (ms)\n\n{} completed, {} failed in {:.2} s: {:.3} requests/s, {:.1} output tokens/s, {:.1} total tokens/s.\n",
        l.completed, l.failed, l.duration_s, l.request_throughput, l.output_token_throughput, l.total_token_throughput
    );
    let _ = writeln!(s, "| metric | mean | median | p95 | p99 | max |\n|---|---:|---:|---:|---:|---:|");
    for (name, d) in [("TTFT", &l.ttft_ms), ("TPOT", &l.tpot_ms), ("ITL", &l.itl_ms), ("E2E", &l.e2e_ms)] {
        let _ =
            writeln!(s, "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |", d.mean, d.median, d.p95, d.p99, d.max);
    }
    let _ = writeln!(s, "\n![latency](latency.png)\n\n## Per intent\n");
    let _ = writeln!(s, "| intent | cases | must_include | faithfulness | grounding | ROUGE-L | tool acc. | halluc. |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for (intent, i) in &report.per_intent {
        let _ = writeln!(
            s,
            "| {intent} | {} | {} | {} | {} | {} | {} | {} |",
            i.cases,
            opt(i.must_include),
            opt(i.faithfulness),
            opt(i.grounding),
            opt(i.rouge_l),
            opt(i.tool_call_accuracy),
            opt(i.hallucination_rate)
        );
    }
    let _ = writeln!(s, "\n![per intent](intents.png)\n\n## Worst cases\n");
    let mut worst: Vec<&CaseResult> = report.cases.iter().filter(|r| badness(r) > 0.0).collect();
    worst.sort_by(|a, b| badness(b).total_cmp(&badness(a)).then(a.id.cmp(&b.id)));
    for r in worst.into_iter().take(WORST_CASES) {
        let _ = writeln!(s, "### `{}` ({})\n", r.id, r.intent);
        let _ = writeln!(s, "- question: {}", one_line(&r.question));
        if let Some(e) = &r.error {
            let _ = writeln!(s, "- error: {}", one_line(e));
        }
        let _ = writeln!(s, "- answer: {}", one_line(&r.answer));
        for c in &r.tool_calls {
            let _ = writeln!(s, "- tool call: `{}({})`", c.name, c.arguments);
        }
        let _ = writeln!(s, "- reference: {}", one_line(&r.reference));
        let mut problems = Vec::new();
        if r.hallucinated == Some(true) {
            let ungrounded = r.grounding.as_ref().map(|g| g.ungrounded.join(", ")).unwrap_or_default();
            problems
                .push(format!("hallucination (ungrounded: [{ungrounded}], forbidden: [{}])", r.forbidden.join(", ")));
        }
        if r.tool_correct == Some(false) {
            problems.push("wrong or missing tool call".into());
        }
        if r.must_refuse && !r.refused {
            problems.push("should have refused".into());
        }
        if !r.must_refuse && r.refused {
            problems.push("refused needlessly".into());
        }
        if !r.missing.is_empty() {
            problems.push(format!("missing: {}", r.missing.join(", ")));
        }
        if let Some(f) = &r.faithfulness {
            problems.push(format!("faithfulness: {}", serde_json::to_string(f).unwrap_or_default()));
        }
        let _ = writeln!(s, "- problems: {}\n", problems.join("; "));
    }
    s
}

fn one_line(text: &str) -> String {
    let t = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.chars().count() > 300 {
        format!("{}...", t.chars().take(300).collect::<String>())
    } else if t.is_empty() {
        "(empty)".into()
    } else {
        t
    }
}
