//! `stylevn pipeline`: every stage of the lifecycle in order with one progress
//! display, skipping up-to-date stages, then (unless `--no-serve`) the assistant
//! serving the result on localhost.

use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use stylevn::pipeline::{plan, run_dir, run_stages, serve_command, write_summary, Event, PipelineConfig};
use stylevn::quant::QuantMethod;

use crate::config::{self, config_flags};

/// Flags of `stylevn pipeline`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  stylevn pipeline --config configs/pipeline.toml\n\n\
Outputs go to runs/<name>/ (stage logs in runs/<name>/logs/, summary in runs/<name>/summary.md).\n\
Kill it at any point and run it again: finished stages are skipped and train resumes.")]
pub struct Args {
    /// Config file [default: configs/pipeline.toml when present].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
    /// Run only these stages (comma list: db,synth,train,merge,quantize,embed,eval-base,eval-tuned,eval-quantized).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Re-run every stage even when up to date.
    #[arg(long)]
    force: bool,
    /// Stop after the summary instead of serving the result.
    #[arg(long)]
    no_serve: bool,
    /// Print the stage outcomes as JSON.
    #[arg(long)]
    json: bool,
}

config_flags! {
    /// `PipelineConfig`'s fields.
    struct Settings for PipelineConfig {
        /// Run name (outputs under runs/<name>/).
        name: String,
        /// Base model to fine-tune.
        base: String,
        /// The store's data directory (CSVs and policies/).
        data_dir: String,
        /// The store database the db stage writes.
        db: String,
        /// Conversations the synth stage writes.
        synth_n: usize,
        /// The training config (the pipeline sets its data and output).
        train_config: String,
        /// Quantization method.
        quant_method: QuantMethod,
        /// The catalog config (the pipeline sets the index path).
        catalog_config: String,
        /// The eval config (the pipeline sets endpoint, model and output).
        eval_config: String,
        /// Golden cases per evaluated model, 0 for all.
        eval_limit: usize,
        /// max_tokens of each eval request.
        eval_max_tokens: u32,
        /// Address the evaluation servers and the final server listen on.
        host: String,
        /// Port of the final server (evaluation servers use the next ones).
        port: u16,
        /// Seconds to wait for a server's /health before failing the stage.
        server_start_timeout_s: u64,
        /// Leave the assistant serving when every stage is done (see also --no-serve).
        #[arg(value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        serve_at_end: bool,
    }
}

/// Runs `stylevn pipeline`.
pub fn exec(args: Args) -> anyhow::Result<()> {
    let cfg = config::resolve(args.config.as_deref(), "pipeline.toml", args.settings)?;
    let mut stages = plan(&cfg);
    if !args.only.is_empty() {
        if let Some(bad) = args.only.iter().find(|o| !stages.iter().any(|s| s.name == o.as_str())) {
            anyhow::bail!("--only {bad}: no such stage");
        }
        stages.retain(|s| args.only.iter().any(|o| o == s.name));
    }
    let exe = std::env::current_exe()?;
    let bar = ProgressBar::new(stages.len() as u64);
    bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:20} {pos}/{len} stages  {msg}")?);
    bar.enable_steady_tick(Duration::from_millis(200));
    let log_dir = run_dir(&cfg).join("logs");
    let outcomes = run_stages(&cfg, &stages, &exe, args.force, &mut |event| match event {
        Event::Start { name, resumed } => {
            let how = if resumed { "resuming" } else { "running" };
            bar.set_message(format!("{how} {name} (log: {}/{name}.log)", log_dir.display()));
        }
        Event::Done(o) => {
            bar.println(format!("{:>15}  {:<10}  {:>7.1} s", o.name, o.status, o.seconds));
            bar.inc(1);
        }
    });
    bar.finish_and_clear();
    let outcomes = outcomes?;
    write_summary(&cfg, &outcomes)?;
    let ran = outcomes.iter().filter(|o| o.status != "up to date").count();
    let seconds: f64 = outcomes.iter().filter(|o| o.status != "up to date").map(|o| o.seconds).fold(0.0, |a, b| a + b);
    if args.json {
        println!("{}", serde_json::json!({"stages": outcomes, "summary": run_dir(&cfg).join("summary.md")}));
    } else {
        println!(
            "pipeline {}: {ran} stages ran, {} up to date, {seconds:.0} s; summary in {}",
            cfg.name,
            outcomes.len() - ran,
            run_dir(&cfg).join("summary.md").display()
        );
    }
    if cfg.serve_at_end && !args.no_serve {
        let serve = serve_command(&cfg);
        eprintln!("serving the assistant: stylevn {} (Ctrl-C stops it)", serve.join(" "));
        let status = std::process::Command::new(&exe).args(&serve).status()?;
        anyhow::ensure!(status.success(), "stylevn serve exited with {status}");
    }
    Ok(())
}
