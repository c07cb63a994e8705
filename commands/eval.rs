//! `stylevn eval`: the CI gate. The main run sends the golden set to an
//! OpenAI-compatible endpoint and writes `report.json`, `report.md` and PNG plots,
//! exiting non-zero when a threshold is missed; `stylevn eval score` scores a
//! predictions file offline. (`stylevn eval perplexity` joins them as another
//! subcommand.)

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use stylevn::eval::plots::write_plots;
use stylevn::eval::report::deltas_markdown;
use stylevn::eval::{
    compare, load_golden, run_cases, sample_by_intent, score_pairs, ChatClient, Endpoint, EvalConfig, Judge, LoadShape,
    Report, ReportMeta, RunOptions,
};

use crate::config::{self, config_flags};

/// Evaluate a model behind an OpenAI-compatible endpoint on the golden set: faithfulness,
/// hallucination, tool calls, refusals, ROUGE/chrF and latency; non-zero exit when a
/// threshold is missed.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<EvalCommand>,
    // Boxed: the run's many flags would make `Command` a large enum variant.
    #[command(flatten)]
    run: Box<RunArgs>,
}

#[derive(clap::Subcommand)]
enum EvalCommand {
    /// Score an existing predictions file (JSONL: prediction, reference, optional contexts)
    /// with ROUGE, chrF and grounding; needs no endpoint.
    Score(ScoreArgs),
    /// Token-level perplexity of a local model (full precision or AWQ) on held-out text.
    Perplexity(crate::eval_perplexity::PerplexityArgs),
}

#[derive(clap::Args)]
struct ScoreArgs {
    /// The predictions file.
    #[arg(long = "in")]
    input: PathBuf,
    /// Print per-pair and mean scores as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    settings: Settings,
    /// Run only N cases: every intent gets its share in turn, spread over its cases.
    #[arg(long)]
    limit: Option<usize>,
    /// An earlier report.json: print (and record in report.md) what changed.
    #[arg(long)]
    compare: Option<PathBuf>,
    /// Print the summary, gate and deltas as one JSON object.
    #[arg(long)]
    json: bool,
    /// Config file (default: configs/eval.toml when present). Every flag above overrides its field.
    #[arg(long)]
    config: Option<PathBuf>,
}

config_flags! {
    /// `EvalConfig`'s fields.
    struct Settings for EvalConfig {
        /// Base URL of the OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1.
        endpoint: String,
        /// Model id to request.
        model: String,
        /// The golden set.
        set: PathBuf,
        /// Output directory for report.json, report.md and plots.
        out: PathBuf,
        /// Requests in flight (with --request-rate: the cap, 0 = none).
        concurrency: usize,
        /// Poisson arrivals at this many requests/s instead of a fixed concurrency.
        request_rate: f64,
        /// Judge endpoint for faithfulness (any OpenAI-compatible URL); "" = no judge.
        judge_url: String,
        /// Judge model id.
        judge_model: String,
        /// Attempts per judge call.
        judge_max_attempts: usize,
        /// First judge retry delay in ms, doubled each retry.
        judge_backoff_ms: u64,
        /// Environment variable holding the endpoint's API key.
        api_key_env: String,
        /// Environment variable holding the judge's API key.
        judge_api_key_env: String,
        /// max_tokens per request.
        max_tokens: u32,
        /// Sampling temperature.
        temperature: f64,
        /// Request seed (and Poisson arrival seed).
        seed: u64,
        /// Per-request timeout in seconds.
        timeout_s: u64,
        /// System prompt put first in cases that have none ("" = none).
        system_prompt: String,
        /// JSON file with the OpenAI `tools` array offered on every request ("" = none).
        tools: String,
        /// Send each case's contexts before its last question under this heading, as `stylevn serve`
        /// adds what its retrieval finds: for a model served without retrieval ("" = contexts not
        /// sent).
        #[arg(value_name = "TEXT")]
        context_heading: String,
        /// A phrase that marks a refusal; repeat for several (replaces the config's list).
        #[arg(value_name = "TEXT")]
        refusal_markers: Vec<String>,
        /// Fail below this mean faithfulness. [config: thresholds.min_faithfulness]
        min_faithfulness => thresholds.min_faithfulness: f64,
        /// Fail above this hallucination rate. [config: thresholds.max_hallucination]
        max_hallucination => thresholds.max_hallucination: f64,
        /// Fail above this p95 TTFT in ms. [config: thresholds.max_ttft_p95_ms]
        max_ttft_p95_ms => thresholds.max_ttft_p95_ms: f64,
        /// Fail below this tool-call accuracy. [config: thresholds.min_tool_call_accuracy]
        min_tool_call_accuracy => thresholds.min_tool_call_accuracy: f64,
        /// Fail below this refusal precision. [config: thresholds.min_refusal_precision]
        min_refusal_precision => thresholds.min_refusal_precision: f64,
        /// Fail below this refusal recall. [config: thresholds.min_refusal_recall]
        min_refusal_recall => thresholds.min_refusal_recall: f64,
        /// Fail below this must_include coverage. [config: thresholds.min_must_include]
        min_must_include => thresholds.min_must_include: f64,
        /// Fail below this mean ROUGE-L F. [config: thresholds.min_rouge_l]
        min_rouge_l => thresholds.min_rouge_l: f64,
        /// Fail above this share of failed requests. [config: thresholds.max_error_rate]
        max_error_rate => thresholds.max_error_rate: f64,
    }
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    match args.command {
        Some(EvalCommand::Score(s)) => exec_score(s),
        Some(EvalCommand::Perplexity(p)) => crate::eval_perplexity::exec(p),
        None => exec_run(*args.run),
    }
}

fn exec_score(args: ScoreArgs) -> anyhow::Result<()> {
    let pairs = stylevn::eval::score::read_pairs(&args.input)?;
    let out = score_pairs(&pairs);
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        let m = &out.mean;
        let grounding = m.grounding.map_or("n/a".into(), |g| format!("{g:.4}"));
        println!(
            "scored {} pairs: rouge1 {:.4}, rouge2 {:.4}, rougeL {:.4}, rougeLsum {:.4}, chrf {:.4}, grounding {grounding}",
            out.count, m.rouge1, m.rouge2, m.rouge_l, m.rouge_lsum, m.chrf
        );
    }
    Ok(())
}

fn api_key(env_name: &str) -> Option<String> {
    (!env_name.is_empty()).then(|| std::env::var(env_name).ok()).flatten().filter(|k| !k.is_empty())
}

fn exec_run(a: RunArgs) -> anyhow::Result<()> {
    let cfg = config::resolve(a.config.as_deref(), "eval.toml", a.settings)?;
    if cfg.endpoint.is_empty() || cfg.model.is_empty() {
        bail!("give --endpoint URL and --model NAME (or set endpoint and model in configs/eval.toml)");
    }
    let load = if cfg.request_rate > 0.0 {
        LoadShape::Rate { per_s: cfg.request_rate, max_concurrency: cfg.concurrency }
    } else {
        LoadShape::Concurrency(cfg.concurrency.max(1))
    };
    let tools = if cfg.tools.trim().is_empty() {
        None
    } else {
        let tools_path = &cfg.tools;
        let text = std::fs::read_to_string(tools_path)
            .with_context(|| format!("reading tools file {tools_path} (pass --tools \"\" to offer no tools)"))?;
        let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{tools_path}: not JSON"))?;
        if !v.is_array() {
            bail!("{tools_path}: expected a JSON array of OpenAI tool definitions");
        }
        Some(v)
    };
    let old_report: Option<serde_json::Value> = match &a.compare {
        Some(p) => Some(
            serde_json::from_str(&std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
                .with_context(|| format!("{}: not a report.json", p.display()))?,
        ),
        None => None,
    };

    let mut cases = load_golden(&cfg.set)?;
    if let Some(n) = a.limit {
        cases = sample_by_intent(cases, n);
    }
    let timeout = Duration::from_secs(cfg.timeout_s.max(1));
    let non_empty = |s: &str| Some(s.to_string()).filter(|s| !s.trim().is_empty());
    let options = RunOptions {
        load,
        max_tokens: cfg.max_tokens,
        temperature: cfg.temperature,
        seed: cfg.seed,
        system_prompt: non_empty(&cfg.system_prompt),
        tools,
        context_heading: non_empty(&cfg.context_heading),
        refusal_markers: cfg.refusal_markers.clone(),
    };
    let (endpoint, model, out_dir) = (cfg.endpoint.clone(), cfg.model.clone(), &cfg.out);

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let client = ChatClient::new(Endpoint {
        base_url: endpoint.clone(),
        model: model.clone(),
        api_key: api_key(&cfg.api_key_env),
        timeout,
    });
    let judge = if cfg.judge_url.is_empty() {
        None
    } else {
        if cfg.judge_model.is_empty() {
            bail!("--judge-url needs --judge-model");
        }
        let c = ChatClient::new(Endpoint {
            base_url: cfg.judge_url.clone(),
            model: cfg.judge_model.clone(),
            api_key: api_key(&cfg.judge_api_key_env),
            timeout,
        });
        Some(Arc::new(Judge::new(c, cfg.judge_max_attempts, Duration::from_millis(cfg.judge_backoff_ms))))
    };

    let bar = ProgressBar::new(cases.len() as u64).with_style(
        ProgressStyle::with_template("{spinner} eval [{bar:30}] {pos}/{len} {elapsed} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let tick = bar.clone();
    let on_done = Arc::new(move |r: &stylevn::eval::CaseResult| {
        tick.set_message(r.id.clone());
        tick.inc(1);
    });
    let run = runtime.block_on(run_cases(Arc::new(client), judge.clone(), cases, &options, on_done));
    bar.finish_and_clear();

    let meta = ReportMeta {
        endpoint,
        model,
        set: cfg.set.display().to_string(),
        judge_model: judge.as_ref().map(|j| j.model().to_string()),
        load,
        max_tokens: options.max_tokens,
        temperature: options.temperature,
        stylevn_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let report = Report::build(meta, run.results, run.duration_s, judge.as_ref().map(|j| j.stats()), &cfg.thresholds);
    let deltas = old_report.as_ref().map(|old| compare(old, &serde_json::to_value(&report).unwrap_or_default()));
    report.write(out_dir, deltas.as_deref())?;
    write_plots(&report, out_dir)?;

    print_summary(&report, deltas.as_deref(), out_dir, a.json)?;
    let missed: Vec<String> = report
        .thresholds
        .iter()
        .filter(|t| !t.passed)
        .map(|t| {
            format!(
                "{} (limit {}, got {})",
                t.name,
                t.limit,
                t.value.map_or("not measured".into(), |v| format!("{v:.4}"))
            )
        })
        .collect();
    if !missed.is_empty() {
        bail!("{} threshold(s) missed: {}", missed.len(), missed.join("; "));
    }
    Ok(())
}

fn print_summary(
    report: &Report,
    deltas: Option<&[stylevn::eval::Delta]>,
    out_dir: &Path,
    json: bool,
) -> anyhow::Result<()> {
    let (q, l) = (&report.quality, &report.latency);
    if json {
        let v = serde_json::json!({
            "passed": report.passed(),
            "report": out_dir.join("report.json"),
            "quality": q,
            "latency": l,
            "thresholds": report.thresholds,
            "compare": deltas,
        });
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    if let Some(d) = deltas {
        println!("{}", deltas_markdown(d));
    }
    let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    println!(
        "eval {}: {} cases ({} failed), faithfulness {}, hallucination {}, tool calls {}, refusal P/R {}/{}, \
         must_include {}, ROUGE-L {}, chrF {}, TTFT p95 {:.0} ms; gate {}; report in {}",
        report.meta.model,
        q.cases,
        q.errors,
        f(q.faithfulness),
        f(q.hallucination_rate),
        f(q.tool_call_accuracy),
        f(q.refusal_precision),
        f(q.refusal_recall),
        f(q.must_include),
        f(q.rouge_l),
        f(q.chrf),
        l.ttft_ms.p95,
        if report.passed() { "PASSED" } else { "FAILED" },
        out_dir.display()
    );
    Ok(())
}
