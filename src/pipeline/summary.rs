//! `runs/<name>/summary.md`: what ran and how long each stage took, the training
//! loss curve, the golden-set scores of the base, fine-tuned and quantized models
//! side by side, model sizes, and the command that serves the result.

use std::fmt::Write as _;
use std::path::Path;

use super::config::PipelineConfig;
use super::runner::StageOutcome;
use super::stages::run_dir;
use crate::eval::bootstrap::{self, Interval, RESAMPLES};
use crate::eval::report::headline;
use crate::eval::CaseResult;
use crate::Result;

/// Metrics of the before/after table, in order, with their labels.
const METRICS: [(&str, &str); 10] = [
    ("tool_call_accuracy", "tool-call accuracy"),
    ("tool_name_accuracy", "right tool, arguments aside"),
    ("must_include", "must-include coverage"),
    ("grounding", "grounding (deterministic faithfulness)"),
    ("faithfulness", "faithfulness (judge)"),
    ("hallucination_rate", "hallucination rate"),
    ("refusal_precision", "refusal precision"),
    ("refusal_recall", "refusal recall"),
    ("rougeL", "ROUGE-L"),
    ("ttft_p95_ms", "p95 TTFT ms"),
];

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                dir_bytes(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Intents whose first case (in the set's order) the summary shows each model's answer to.
const EXAMPLE_INTENTS: [&str; 3] = ["order_status", "stock", "policy"];

fn fmt_interval(i: Interval) -> String {
    format!("{:.3} [{:.3}, {:.3}]", i.value, i.low, i.high)
}

/// The example cases: the first follow-up (a case whose answer restates a tool result or
/// passages, so it has a reference) of each of [`EXAMPLE_INTENTS`], else its first case.
fn examples(cases: &[CaseResult]) -> Vec<&CaseResult> {
    EXAMPLE_INTENTS
        .iter()
        .filter_map(|intent| {
            let of: Vec<&CaseResult> = cases.iter().filter(|c| c.intent == *intent).collect();
            of.iter().find(|c| !c.reference.is_empty()).or(of.first()).copied()
        })
        .collect()
}

/// What a model said on a case, on one line: its text, or its tool calls.
fn said(case: &CaseResult) -> String {
    if let Some(e) = &case.error {
        return format!("(error: {e})");
    }
    let text = case.answer.trim().replace('\n', " ");
    let calls = case.tool_calls.iter().map(|c| format!("`{}({})`", c.name, c.arguments));
    let parts: Vec<String> = (!text.is_empty()).then_some(text).into_iter().chain(calls).collect();
    if parts.is_empty() {
        "(empty)".into()
    } else {
        parts.join(" ")
    }
}

/// The command that serves the pipeline's final model as the store assistant.
pub fn serve_command(cfg: &PipelineConfig) -> Vec<String> {
    let run = run_dir(cfg);
    let model = run.join(cfg.quant_method.name());
    vec![
        "serve".into(),
        "--model".into(),
        model.display().to_string(),
        "--db".into(),
        cfg.db.clone(),
        "--index".into(),
        run.join("index").display().to_string(),
        "--host".into(),
        cfg.host.clone(),
        "--port".into(),
        cfg.port.to_string(),
    ]
}

/// The golden-set section: each model's scores with 95% bootstrap intervals, the paired
/// differences, and the example answers, from the three `runs/<name>/eval/*/report.json`.
fn golden_section(run: &Path, quant_method: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "\n## Golden set: base vs fine-tuned vs quantized\n");
    let which = ["base", "tuned", "quantized"];
    let reports: Vec<Option<serde_json::Value>> =
        which.iter().map(|w| read_json(&run.join("eval").join(w).join("report.json"))).collect();
    let cases: Vec<Option<Vec<CaseResult>>> =
        reports.iter().map(|r| r.as_ref().and_then(|r| serde_json::from_value(r.get("cases")?.clone()).ok())).collect();
    if let Some(n) = cases[1].as_ref().map(Vec::len) {
        let _ = writeln!(
            md,
            "{n} golden cases, greedy, through `stylevn serve` and `stylevn eval`; the store's tools offered, \
             each case's contexts before its question as retrieval would put them. Brackets: 95% bootstrap \
             interval over cases ({RESAMPLES} resamples, seeded); the differences are paired (the same cases \
             drawn for both models), so a difference whose interval excludes 0 is more than the luck of the \
             draw. Hallucination rate and TTFT: lower is better.\n"
        );
    }
    let quant = quant_method.to_uppercase();
    let _ = writeln!(
        md,
        "| metric | base | fine-tuned | {quant} | fine-tuned - base | {quant} - fine-tuned |\n|---|---:|---:|---:|---:|---:|"
    );
    let heads: Vec<_> = reports.iter().map(|r| r.as_ref().map(headline)).collect();
    for (key, label) in METRICS {
        // TTFT is a distribution's percentile, not a mean over cases: no interval.
        let resampled = key != "ttft_p95_ms";
        let mut cells: Vec<String> = (0..3)
            .map(|i| {
                let ci = cases[i].as_ref().filter(|_| resampled).and_then(|c| bootstrap::interval(c, key));
                let plain = heads[i].as_ref().and_then(|h| h.get(key)).map(|(v, _)| format!("{v:.3}"));
                ci.map(fmt_interval).or(plain).unwrap_or_else(|| "n/a".into())
            })
            .collect();
        for (a, b) in [(0, 1), (1, 2)] {
            let d = match (&cases[a], &cases[b]) {
                (Some(x), Some(y)) if resampled => bootstrap::paired_difference(x, y, key),
                _ => None,
            };
            cells.push(d.map_or("".into(), |d| format!("{:+.3} [{:+.3}, {:+.3}]", d.value, d.low, d.high)));
        }
        let _ = writeln!(md, "| {label} | {} |", cells.join(" | "));
    }
    if let [Some(base), Some(tuned), Some(quantized)] = &cases[..] {
        let _ = writeln!(md, "\n## What the models answer\n");
        for case in examples(tuned) {
            let answer = |set: &[CaseResult]| set.iter().find(|c| c.id == case.id).map_or("n/a".into(), said);
            let _ = writeln!(md, "**{}** ({}): {}\n", case.id, case.intent, case.question.replace('\n', " "));
            let _ = writeln!(md, "- base: {}", answer(base));
            let _ = writeln!(md, "- fine-tuned: {}", answer(tuned));
            let _ = writeln!(md, "- {quant}: {}\n", answer(quantized));
        }
    }
    md
}

/// The summary's Markdown.
pub fn summary_markdown(cfg: &PipelineConfig, outcomes: &[StageOutcome]) -> String {
    let run = run_dir(cfg);
    let mut md = String::new();
    let _ = writeln!(md, "# Pipeline run `{}`\n", cfg.name);
    let total: f64 = outcomes.iter().filter(|o| o.status != "up to date").map(|o| o.seconds).fold(0.0, |a, b| a + b);
    let _ = writeln!(md, "Base model `{}`; this invocation spent {:.0} s.\n", cfg.base, total);
    let _ = writeln!(md, "| stage | status | seconds |\n|---|---|---:|");
    for o in outcomes {
        let _ = writeln!(md, "| {} | {} | {:.1} |", o.name, o.status, o.seconds);
    }

    let _ = writeln!(md, "\n## Training\n");
    let metrics = std::fs::read_to_string(run.join("adapter").join("metrics.jsonl")).unwrap_or_default();
    let evals: Vec<(u64, f64)> = metrics
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v.get("step")?.as_u64()?, v.get("eval_loss")?.as_f64()?)))
        .collect();
    if let (Some(first), Some(last)) = (evals.first(), evals.last()) {
        let drop = 100.0 * (1.0 - last.1 / first.1);
        let _ = writeln!(
            md,
            "Eval loss {:.4} at step {} -> {:.4} at step {} ({drop:.1}% lower).\n",
            first.1, first.0, last.1, last.0
        );
        let _ = writeln!(md, "| step | eval loss |\n|---:|---:|");
        for (step, loss) in &evals {
            let _ = writeln!(md, "| {step} | {loss:.4} |");
        }
        let _ = writeln!(md, "\n![loss](adapter/loss.png)");
    } else {
        let _ = writeln!(md, "No eval loss recorded.");
    }

    md.push_str(&golden_section(&run, cfg.quant_method.name()));

    let _ = writeln!(md, "\n## Model sizes\n\n| model | MB on disk |\n|---|---:|");
    let sizes = [
        ("base", Path::new(&cfg.base).to_path_buf()),
        ("merged", run.join("merged")),
        (cfg.quant_method.name(), run.join(cfg.quant_method.name())),
        ("adapter", run.join("adapter").join("adapter_model.safetensors")),
    ];
    for (name, path) in sizes {
        let bytes =
            if path.is_file() { std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) } else { dir_bytes(&path) };
        let _ = writeln!(md, "| {name} | {:.1} |", bytes as f64 / 1e6);
    }
    let _ = writeln!(md, "\n## Serve it\n\n```bash\nstylevn {}\n```", serve_command(cfg).join(" "));
    md
}

/// Writes the summary atomically to `runs/<name>/summary.md`.
pub fn write_summary(cfg: &PipelineConfig, outcomes: &[StageOutcome]) -> Result<()> {
    crate::atomic::write_atomic(&run_dir(cfg).join("summary.md"), summary_markdown(cfg, outcomes).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::ToolCall;

    fn case(id: &str, intent: &str, answer: &str, must_include: f64) -> CaseResult {
        CaseResult {
            id: id.into(),
            intent: intent.into(),
            question: format!("question {id}"),
            answer: answer.into(),
            must_include: Some(must_include),
            ..Default::default()
        }
    }

    /// The table holds each model's value with its interval and the paired differences;
    /// the examples show each model's answer (text or tool call) to the same case.
    #[test]
    fn golden_section_has_intervals_differences_and_examples() {
        let dir = tempfile::tempdir().unwrap();
        let cases = |answer: &str, hit: f64| -> Vec<CaseResult> {
            (0..40)
                .map(|i| case(&format!("stock-{i:03}"), "stock", answer, if i % 2 == 0 { hit } else { 0.0 }))
                .collect()
        };
        let mut tuned = cases("Dạ còn hàng ạ.", 1.0);
        tuned[0].answer.clear();
        tuned[0].tool_calls = vec![ToolCall::new("get_stock", serde_json::json!({"sku": "A1"}))];
        for (which, set) in
            [("base", cases("không biết", 0.0)), ("tuned", tuned), ("quantized", cases("Dạ còn ạ.", 1.0))]
        {
            let path = dir.path().join("eval").join(which);
            std::fs::create_dir_all(&path).unwrap();
            let report = serde_json::json!({"quality": {"must_include": 0.0}, "cases": set});
            std::fs::write(path.join("report.json"), report.to_string()).unwrap();
        }
        let md = golden_section(dir.path(), "awq");
        let row = md.lines().find(|l| l.starts_with("| must-include coverage")).unwrap();
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[2], "0.000 [0.000, 0.000]", "{row}");
        assert!(cells[3].starts_with("0.500 [0.3") && cells[4].starts_with("0.500 ["), "{row}");
        // Fine-tuned - base: +0.5 on every draw's covered half; AWQ - fine-tuned: 0 exactly.
        assert!(cells[5].starts_with("+0.500 [+0.3"), "{row}");
        assert_eq!(cells[6], "+0.000 [+0.000, +0.000]", "{row}");
        assert!(md.contains("**stock-000** (stock): question stock-000"), "{md}");
        assert!(md.contains("- fine-tuned: `get_stock({\"sku\":\"A1\"})`"), "{md}");
        assert!(md.contains("- base: không biết") && md.contains("- AWQ: Dạ còn ạ."), "{md}");
    }
}
