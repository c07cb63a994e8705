//! `stylevn synth`: chat JSONL from the store, offline (templates) or through an
//! OpenAI-compatible teacher, or imported from real logs with PII masked (see
//! `stylevn::data::synth`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use stylevn::data::db::{load_store, open_db};
use stylevn::data::synth::import::import_logs;
use stylevn::data::synth::teacher::run_teacher;
use stylevn::data::synth::{generate_offline_excluding, write_jsonl, Holdout, SynthConfig, SynthSummary};
use stylevn::data::tools::ToolBox;

use crate::config::{self, config_flags};

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
    /// Import chat logs (JSONL) instead of generating.
    #[arg(long = "import", value_name = "FILE")]
    import: Option<PathBuf>,
    /// With --import: mask phone numbers, emails and addresses.
    #[arg(long, requires = "import")]
    anonymize: bool,
    #[command(flatten)]
    settings: Settings,
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

config_flags! {
    /// `SynthConfig`'s fields.
    struct Settings for SynthConfig {
        /// Store database.
        #[arg(value_name = "FILE")]
        db: PathBuf,
        /// Conversations to write.
        #[arg(value_name = "N")]
        n: usize,
        /// Random seed.
        #[arg(value_name = "N")]
        seed: u64,
        /// Near-duplicate threshold, estimated Jaccard in (0, 1].
        #[arg(value_name = "F")]
        near_dup_threshold: f64,
        /// Golden evaluation set whose questions no offline conversation may contain
        /// [default: evals/golden.jsonl when present; "" disables].
        #[arg(value_name = "FILE")]
        holdout: PathBuf,
        /// Teacher requests in flight.
        #[arg(value_name = "N")]
        concurrency: usize,
        /// Teacher retries per request.
        #[arg(value_name = "N")]
        max_retries: u32,
        /// First retry delay in ms, doubled each retry.
        #[arg(value_name = "MS")]
        backoff_ms: u64,
        /// Teacher request timeout in seconds.
        #[arg(value_name = "S")]
        timeout_s: u64,
        /// Teacher temperature.
        #[arg(value_name = "T")]
        temperature: f64,
        /// Environment variable holding the teacher's API key (never printed).
        #[arg(value_name = "VAR")]
        api_key_env: String,
    }
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
    let cfg = config::resolve(args.config.as_deref(), "synth.toml", args.settings)?;
    let started = Instant::now();
    let (n, threshold) = (cfg.n, cfg.near_dup_threshold);
    if !(threshold > 0.0 && threshold <= 1.0) {
        bail!("--near-dup-threshold must be in (0, 1], got {threshold}");
    }
    let conn = open_db(&cfg.db)?;
    let store = load_store(&conn).with_context(|| format!("reading {}", cfg.db.display()))?;
    let tools = ToolBox::at_store_date(conn)?;
    if let Some(logs) = &args.import {
        let imported = import_logs(logs, args.anonymize, threshold, &tools.schemas())?;
        write_jsonl(&args.out, imported.rows)?;
        if !args.json {
            let m = imported.masked;
            eprintln!("masked {} phones, {} emails, {} addresses", m.phones, m.emails, m.addresses);
        }
        return print_summary(&imported.summary, &args.out, started.elapsed().as_secs_f64(), args.json);
    }

    let summary = if let Some(url) = args.teacher_url {
        let api_key = std::env::var(&cfg.api_key_env).ok().filter(|k| !k.is_empty());
        let model = args.teacher_model.expect("clap requires --teacher-model");
        let opts = cfg.teacher_options(url, model, api_key);
        let pb = bar(n, args.json, "teacher");
        let s = run_teacher(&tools, &store, &opts, &args.out, |accepted, finished| {
            pb.set_position(accepted as u64);
            pb.set_message(format!("{finished} tasks done"));
        })?;
        pb.finish_and_clear();
        s
    } else if args.offline {
        let pb = bar(n, args.json, "offline");
        let holdout_path = cfg.holdout_path();
        let holdout = match &holdout_path {
            Some(p) => Holdout::from_golden(p)?,
            None => Holdout::default(),
        };
        let (examples, s) =
            generate_offline_excluding(&tools, &store, cfg.offline_options(), &holdout, |k| pb.set_position(k as u64))?;
        let schemas = tools.schemas();
        write_jsonl(&args.out, examples.iter().map(|e| e.to_json(&schemas)))?;
        pb.finish_and_clear();
        s
    } else {
        bail!("say how to generate: --offline, --teacher-url URL --teacher-model NAME, or --import FILE");
    };
    print_summary(&summary, &args.out, started.elapsed().as_secs_f64(), args.json)
}
