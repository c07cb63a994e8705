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
use serde::Deserialize;
use stylevn::eval::checks::DEFAULT_REFUSAL_MARKERS;
use stylevn::eval::plots::write_plots;
use stylevn::eval::report::deltas_markdown;
use stylevn::eval::{
    compare, load_golden, run_cases, sample_by_intent, score_pairs, ChatClient, Endpoint, Judge, LoadShape, Report,
    ReportMeta, RunOptions, Thresholds,
};

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
    /// Base URL of the OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1. [config: endpoint]
    #[arg(long)]
    endpoint: Option<String>,
    /// Model id to request. [config: model]
    #[arg(long)]
    model: Option<String>,
    /// The golden set. [config: set, default evals/golden.jsonl]
    #[arg(long)]
    set: Option<PathBuf>,
    /// Output directory for report.json, report.md and plots. [config: out, default report]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Requests in flight (with --request-rate: the cap, 0 = none). [config: concurrency, default 4]
    #[arg(long)]
    concurrency: Option<usize>,
    /// Poisson arrivals at this many requests/s instead of a fixed concurrency. [config: request_rate]
    #[arg(long)]
    request_rate: Option<f64>,
    /// Judge endpoint for faithfulness (any OpenAI-compatible URL); none = no judge. [config: judge_url]
    #[arg(long)]
    judge_url: Option<String>,
    /// Judge model id. [config: judge_model]
    #[arg(long)]
    judge_model: Option<String>,
    /// Environment variable holding the endpoint's API key. [config: api_key_env, default OPENAI_API_KEY]
    #[arg(long)]
    api_key_env: Option<String>,
    /// Environment variable holding the judge's API key. [config: judge_api_key_env]
    #[arg(long)]
    judge_api_key_env: Option<String>,
    /// max_tokens per request. [config: max_tokens, default 256]
    #[arg(long)]
    max_tokens: Option<u32>,
    /// Sampling temperature. [config: temperature, default 0]
    #[arg(long)]
    temperature: Option<f64>,
    /// Request seed (and Poisson arrival seed). [config: seed, default 0]
    #[arg(long)]
    seed: Option<u64>,
    /// Per-request timeout in seconds. [config: timeout_s, default 300]
    #[arg(long)]
    timeout_s: Option<u64>,
    /// Run only N cases: every intent gets its share in turn, spread over its cases.
    #[arg(long)]
    limit: Option<usize>,
    /// System prompt put first in cases that have none ("" = none). [config: system_prompt]
    #[arg(long)]
    system_prompt: Option<String>,
    /// JSON file with the OpenAI `tools` array offered on every request ("" = none). [config: tools]
    #[arg(long)]
    tools: Option<String>,
    /// Send each case's contexts before its last question under this heading, as `stylevn serve`
    /// adds what its retrieval finds: for a model served without retrieval ("" = contexts not
    /// sent). [config: context_heading]
    #[arg(long, value_name = "TEXT")]
    context_heading: Option<String>,
    /// Fail below this mean faithfulness. [config: thresholds.min_faithfulness]
    #[arg(long)]
    min_faithfulness: Option<f64>,
    /// Fail above this hallucination rate. [config: thresholds.max_hallucination]
    #[arg(long)]
    max_hallucination: Option<f64>,
    /// Fail above this p95 TTFT in ms. [config: thresholds.max_ttft_p95_ms]
    #[arg(long)]
    max_ttft_p95_ms: Option<f64>,
    /// Fail below this tool-call accuracy. [config: thresholds.min_tool_call_accuracy]
    #[arg(long)]
    min_tool_call_accuracy: Option<f64>,
    /// Fail below this refusal precision. [config: thresholds.min_refusal_precision]
    #[arg(long)]
    min_refusal_precision: Option<f64>,
    /// Fail below this refusal recall. [config: thresholds.min_refusal_recall]
    #[arg(long)]
    min_refusal_recall: Option<f64>,
    /// Fail below this must_include coverage. [config: thresholds.min_must_include]
    #[arg(long)]
    min_must_include: Option<f64>,
    /// Fail below this mean ROUGE-L F. [config: thresholds.min_rouge_l]
    #[arg(long)]
    min_rouge_l: Option<f64>,
    /// Fail above this share of failed requests. [config: thresholds.max_error_rate]
    #[arg(long)]
    max_error_rate: Option<f64>,
    /// An earlier report.json: print (and record in report.md) what changed.
    #[arg(long)]
    compare: Option<PathBuf>,
    /// Print the summary, gate and deltas as one JSON object.
    #[arg(long)]
    json: bool,
    /// Config file (default: configs/eval.toml when present).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// `configs/eval.toml`.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    endpoint: String,
    model: String,
    set: PathBuf,
    out: PathBuf,
    concurrency: usize,
    request_rate: f64,
    max_tokens: u32,
    temperature: f64,
    seed: u64,
    timeout_s: u64,
    judge_url: String,
    judge_model: String,
    judge_max_attempts: usize,
    judge_backoff_ms: u64,
    api_key_env: String,
    judge_api_key_env: String,
    system_prompt: String,
    tools: String,
    context_heading: String,
    refusal_markers: Vec<String>,
    thresholds: Thresholds,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            endpoint: String::new(),
            model: String::new(),
            set: "evals/golden.jsonl".into(),
            out: "report".into(),
            concurrency: 4,
            request_rate: 0.0,
            max_tokens: 256,
            temperature: 0.0,
            seed: 0,
            timeout_s: 300,
            judge_url: String::new(),
            judge_model: String::new(),
            judge_max_attempts: 3,
            judge_backoff_ms: 500,
            api_key_env: "OPENAI_API_KEY".into(),
            judge_api_key_env: "OPENAI_API_KEY".into(),
            system_prompt: String::new(),
            tools: String::new(),
            context_heading: String::new(),
            refusal_markers: DEFAULT_REFUSAL_MARKERS.iter().map(|s| s.to_string()).collect(),
            thresholds: Thresholds::default(),
        }
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

fn or_str(flag: Option<String>, cfg: String) -> String {
    flag.unwrap_or(cfg)
}

fn api_key(env_name: &str) -> Option<String> {
    (!env_name.is_empty()).then(|| std::env::var(env_name).ok()).flatten().filter(|k| !k.is_empty())
}

fn exec_run(a: RunArgs) -> anyhow::Result<()> {
    let cfg: Config = crate::config::load(a.config.as_deref(), "eval.toml")?;
    let endpoint = or_str(a.endpoint, cfg.endpoint);
    let model = or_str(a.model, cfg.model);
    if endpoint.is_empty() || model.is_empty() {
        bail!("give --endpoint URL and --model NAME (or set endpoint and model in configs/eval.toml)");
    }
    let set = a.set.unwrap_or(cfg.set);
    let out_dir = a.out.unwrap_or(cfg.out);
    let concurrency = a.concurrency.unwrap_or(cfg.concurrency);
    let rate = a.request_rate.unwrap_or(cfg.request_rate);
    let load = if rate > 0.0 {
        LoadShape::Rate { per_s: rate, max_concurrency: concurrency }
    } else {
        LoadShape::Concurrency(concurrency.max(1))
    };
    let t = &cfg.thresholds;
    let thresholds = Thresholds {
        min_faithfulness: a.min_faithfulness.or(t.min_faithfulness),
        max_hallucination: a.max_hallucination.or(t.max_hallucination),
        max_ttft_p95_ms: a.max_ttft_p95_ms.or(t.max_ttft_p95_ms),
        min_tool_call_accuracy: a.min_tool_call_accuracy.or(t.min_tool_call_accuracy),
        min_refusal_precision: a.min_refusal_precision.or(t.min_refusal_precision),
        min_refusal_recall: a.min_refusal_recall.or(t.min_refusal_recall),
        min_must_include: a.min_must_include.or(t.min_must_include),
        min_rouge_l: a.min_rouge_l.or(t.min_rouge_l),
        max_error_rate: a.max_error_rate.or(t.max_error_rate),
    };
    let tools_path = or_str(a.tools, cfg.tools);
    let tools = if tools_path.trim().is_empty() {
        None
    } else {
        let text = std::fs::read_to_string(&tools_path)
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

    let mut cases = load_golden(&set)?;
    if let Some(n) = a.limit {
        cases = sample_by_intent(cases, n);
    }
    let timeout = Duration::from_secs(a.timeout_s.unwrap_or(cfg.timeout_s).max(1));
    let options = RunOptions {
        load,
        max_tokens: a.max_tokens.unwrap_or(cfg.max_tokens),
        temperature: a.temperature.unwrap_or(cfg.temperature),
        seed: a.seed.unwrap_or(cfg.seed),
        system_prompt: Some(or_str(a.system_prompt, cfg.system_prompt)).filter(|s| !s.trim().is_empty()),
        tools,
        context_heading: Some(or_str(a.context_heading, cfg.context_heading)).filter(|s| !s.trim().is_empty()),
        refusal_markers: cfg.refusal_markers.clone(),
    };
    let judge_url = or_str(a.judge_url, cfg.judge_url);
    let judge_model = or_str(a.judge_model, cfg.judge_model);
    let api_key_env = or_str(a.api_key_env, cfg.api_key_env);
    let judge_key_env = or_str(a.judge_api_key_env, cfg.judge_api_key_env);

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let client = ChatClient::new(Endpoint {
        base_url: endpoint.clone(),
        model: model.clone(),
        api_key: api_key(&api_key_env),
        timeout,
    });
    let judge = if judge_url.is_empty() {
        None
    } else {
        if judge_model.is_empty() {
            bail!("--judge-url needs --judge-model");
        }
        let c = ChatClient::new(Endpoint {
            base_url: judge_url,
            model: judge_model.clone(),
            api_key: api_key(&judge_key_env),
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
        set: set.display().to_string(),
        judge_model: judge.as_ref().map(|j| j.model().to_string()),
        load,
        max_tokens: options.max_tokens,
        temperature: options.temperature,
        stylevn_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let report = Report::build(meta, run.results, run.duration_s, judge.as_ref().map(|j| j.stats()), &thresholds);
    let deltas = old_report.as_ref().map(|old| compare(old, &serde_json::to_value(&report).unwrap_or_default()));
    report.write(&out_dir, deltas.as_deref())?;
    write_plots(&report, &out_dir)?;

    print_summary(&report, deltas.as_deref(), &out_dir, a.json)?;
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
