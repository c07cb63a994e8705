//! `stylevn synth`: chat JSONL from the store, offline (templates) or through an
//! OpenAI-compatible teacher, or imported from real logs with PII masked (see
//! `stylevn::data::synth`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use stylevn::data::db::{load_store, open_db};
use stylevn::data::synth::import::import_logs;
use stylevn::data::synth::teacher::{run_teacher, TeacherOptions};
use stylevn::data::synth::{generate_offline_excluding, write_jsonl, Holdout, OfflineOptions, SynthSummary};
use stylevn::data::tools::ToolBox;

use crate::config;

/// Flags of `stylevn synth`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  stylevn synth --offline --db data/stylevn.db --n 2000 --seed 7 --out data/synth.jsonl\n  \
                  stylevn synth --teacher-url http://127.0.0.1:8000/v1 --teacher-model qwen2.5-7b --n 500 --out data/teacher.jsonl\n  \
                  stylevn synth --import logs.jsonl --anonymize --out data/imported.jsonl"
)]
pub struct Args {
    /// Generate from templates and the store, with no model.
    #[arg(long, conflicts_with_all = ["teacher_url", "import"])]
    offline: bool,
    /// Base URL of an OpenAI-compatible API (OpenAI, vLLM, `stylevn serve`), e.g. http://127.0.0.1:8000/v1.
    #[arg(long, value_name = "URL", requires = "teacher_model", conflicts_with = "import")]
    teacher_url: Option<String>,
    /// Model name for the teacher.
    #[arg(long, value_name = "NAME")]
    teacher_model: Option<String>,
    /// Environment variable holding the teacher's API key (never printed).
    #[arg(long, value_name = "VAR", default_value = "OPENAI_API_KEY")]
    api_key_env: String,
    /// Import chat logs (JSONL) instead of generating.
    #[arg(long = "import", value_name = "FILE")]
    import: Option<PathBuf>,
    /// With --import: mask phone numbers, emails and addresses.
    #[arg(long, requires = "import")]
    anonymize: bool,
    /// Store database [config; default data/stylevn.db].
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,
    /// Conversations to write [config; default 2000].
    #[arg(long, value_name = "N")]
    n: Option<usize>,
    /// Random seed [config; default 7].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Near-duplicate threshold, estimated Jaccard in (0, 1] [config; default 0.85].
    #[arg(long, value_name = "F")]
    near_dup_threshold: Option<f64>,
    /// Golden evaluation set whose questions no offline conversation may contain
    /// [config; default evals/golden.jsonl when present; "" disables]
    #[arg(long, value_name = "FILE")]
    holdout: Option<PathBuf>,
    /// Teacher requests in flight [config; default 4].
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,
    /// Teacher retries per request [config; default 5].
    #[arg(long, value_name = "N")]
    max_retries: Option<u32>,
    /// First retry delay in ms, doubled each retry [config; default 500].
    #[arg(long, value_name = "MS")]
    backoff_ms: Option<u64>,
    /// Teacher request timeout in seconds [config; default 60].
    #[arg(long, value_name = "S")]
    timeout_s: Option<u64>,
    /// Teacher temperature [config; default 0.8].
    #[arg(long, value_name = "T")]
    temperature: Option<f64>,
    /// Output JSONL (written atomically).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Config file [default: configs/synth.toml when present].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// `configs/synth.toml`: defaults for the flags of the same names.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    db: Option<PathBuf>,
    n: Option<usize>,
    seed: Option<u64>,
    near_dup_threshold: Option<f64>,
    holdout: Option<PathBuf>,
    concurrency: Option<usize>,
    max_retries: Option<u32>,
    backoff_ms: Option<u64>,
    timeout_s: Option<u64>,
    temperature: Option<f64>,
}

fn bar(n: usize, hidden: bool, what: &str) -> ProgressBar {
    let bar = if hidden { ProgressBar::hidden() } else { ProgressBar::new(n as u64) };
    bar.set_style(
        ProgressStyle::with_template(&format!("synth {what} [{{bar:30}}] {{pos}}/{{len}} {{elapsed}} {{msg}}"))
            .expect("valid progress template"),
    );
    bar
}

fn print_summary(s: &SynthSummary, out: &std::path::Path, secs: f64, json: bool) -> anyhow::Result<()> {
    if json {
        let mut v = serde_json::to_value(s)?;
        v["out"] = serde_json::json!(out);
        v["seconds"] = serde_json::json!(secs);
        println!("{v}");
    } else {
        let intents: Vec<String> = s.per_intent.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "{}: {} conversations ({} with tool calls, {} refusals) in {secs:.1}s; dropped {} exact + {} near duplicates; rejected {:?}; per intent: {}",
            out.display(),
            s.written,
            s.with_tool_calls,
            s.refusals,
            s.exact_duplicates,
            s.near_duplicates,
            s.rejected,
            intents.join(", ")
        );
    }
    Ok(())
}

/// Runs `stylevn synth`.
pub fn exec(args: Args) -> anyhow::Result<()> {
    let cfg: Config = config::load(args.config.as_deref(), "synth.toml")?;
    let started = Instant::now();
    let n = args.n.or(cfg.n).unwrap_or(2000);
    let seed = args.seed.or(cfg.seed).unwrap_or(7);
    let threshold = args.near_dup_threshold.or(cfg.near_dup_threshold).unwrap_or(0.85);
    if !(threshold > 0.0 && threshold <= 1.0) {
        bail!("--near-dup-threshold must be in (0, 1], got {threshold}");
    }
    if let Some(logs) = &args.import {
        let imported = import_logs(logs, args.anonymize, threshold)?;
        write_jsonl(&args.out, imported.rows)?;
        if !args.json {
            let m = imported.masked;
            eprintln!("masked {} phones, {} emails, {} addresses", m.phones, m.emails, m.addresses);
        }
        return print_summary(&imported.summary, &args.out, started.elapsed().as_secs_f64(), args.json);
    }
    let db = args.db.or(cfg.db).unwrap_or_else(|| PathBuf::from("data/stylevn.db"));
    let conn = open_db(&db)?;
    let store = load_store(&conn).with_context(|| format!("reading {}", db.display()))?;
    let tools = ToolBox::at_store_date(conn)?;

    let summary = if let Some(url) = args.teacher_url {
        let api_key = std::env::var(&args.api_key_env).ok().filter(|k| !k.is_empty());
        let opts = TeacherOptions {
            url,
            model: args.teacher_model.expect("clap requires --teacher-model"),
            api_key,
            n,
            seed,
            concurrency: args.concurrency.or(cfg.concurrency).unwrap_or(4).max(1),
            max_retries: args.max_retries.or(cfg.max_retries).unwrap_or(5),
            backoff: Duration::from_millis(args.backoff_ms.or(cfg.backoff_ms).unwrap_or(500)),
            timeout: Duration::from_secs(args.timeout_s.or(cfg.timeout_s).unwrap_or(60)),
            temperature: args.temperature.or(cfg.temperature).unwrap_or(0.8),
            near_dup_threshold: threshold,
        };
        let pb = bar(n, args.json, "teacher");
        let s = run_teacher(&tools, &store, &opts, &args.out, |accepted, finished| {
            pb.set_position(accepted as u64);
            pb.set_message(format!("{finished} tasks done"));
        })?;
        pb.finish_and_clear();
        s
    } else if args.offline {
        let pb = bar(n, args.json, "offline");
        let opts = OfflineOptions { n, seed, near_dup_threshold: threshold };
        let holdout_path = args
            .holdout
            .or(cfg.holdout)
            .or_else(|| Some(PathBuf::from("evals/golden.jsonl")).filter(|p| p.is_file()))
            .filter(|p| !p.as_os_str().is_empty());
        let holdout = match &holdout_path {
            Some(p) => Holdout::from_golden(p)?,
            None => Holdout::default(),
        };
        let (examples, s) = generate_offline_excluding(&tools, &store, opts, &holdout, |k| pb.set_position(k as u64))?;
        write_jsonl(&args.out, examples.iter().map(|e| e.to_json()))?;
        pb.finish_and_clear();
        s
    } else {
        bail!("say how to generate: --offline, --teacher-url URL --teacher-model NAME, or --import FILE");
    };
    print_summary(&summary, &args.out, started.elapsed().as_secs_f64(), args.json)
}
