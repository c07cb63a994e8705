//! Runs the stages in order, skipping the up-to-date ones and resuming an
//! interrupted train, each as a child `stylevn` process whose output goes to
//! `runs/<name>/logs/<stage>.log`.
//!
//! A stage first records the key it starts with (`stages/<stage>.started`), and
//! only a stage that finished gets its stamp (`stages/<stage>.json`). After a kill,
//! a re-run skips the stamped stages and restarts the others; a stage that declares
//! a resume marker (train's checkpoint) continues when its key is unchanged.
//! Children get SIGTERM when the pipeline dies, so no server outlives it.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use super::config::PipelineConfig;
use super::stages::{eval_server_args, run_dir, Stage, StageKind};
use super::stamp::{file_digest, read_stamp, stage_key, write_stamp, Stamp};
use crate::{Error, Result};

/// What happened to one stage.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StageOutcome {
    /// Stage name.
    pub name: String,
    /// `ran`, `resumed` or `up to date`.
    pub status: String,
    /// Seconds it took (for an up-to-date stage: when it last ran).
    pub seconds: f64,
}

/// Progress events for the command's display.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// A stage starts (`resumed`: continuing an interrupted run).
    Start {
        /// Stage name.
        name: &'a str,
        /// Whether it continues an interrupted run.
        resumed: bool,
    },
    /// A stage finished or was skipped.
    Done(&'a StageOutcome),
}

/// Runs `stages` with the `stylevn` executable `exe`; `force` re-runs everything.
pub fn run_stages(
    cfg: &PipelineConfig,
    stages: &[Stage],
    exe: &Path,
    force: bool,
    on_event: &mut dyn FnMut(Event),
) -> Result<Vec<StageOutcome>> {
    let run = run_dir(cfg);
    let (stamps, logs) = (run.join("stages"), run.join("logs"));
    for dir in [&stamps, &logs] {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tool = format!("stylevn {}", file_digest(exe)?);
    let mut outcomes = Vec::with_capacity(stages.len());
    for stage in stages {
        let mut args = stage_args(stage);
        args.push(tool.clone());
        let key = stage_key(&args, &stage.inputs)?;
        let (stamp_path, started_path) =
            (stamps.join(format!("{}.json", stage.name)), stamps.join(format!("{}.started", stage.name)));
        let outputs_exist = stage.outputs.iter().all(|o| o.exists());
        if let Some(stamp) = read_stamp(&stamp_path).filter(|s| !force && s.key == key && outputs_exist) {
            let outcome = StageOutcome { name: stage.name.into(), status: "up to date".into(), seconds: stamp.seconds };
            on_event(Event::Done(&outcome));
            outcomes.push(outcome);
            continue;
        }
        let same_start = std::fs::read_to_string(&started_path).is_ok_and(|k| k.trim() == key);
        let resume = match &stage.resume {
            Some((arg, marker)) if same_start && !force && marker.exists() => Some(arg.clone()),
            _ => None,
        };
        if resume.is_none() {
            if let Some(dir) = &stage.out_dir {
                if dir.exists() {
                    std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                }
            }
        }
        crate::atomic::write_atomic(&started_path, key.as_bytes())?;
        on_event(Event::Start { name: stage.name, resumed: resume.is_some() });
        let started = Instant::now();
        let log = logs.join(format!("{}.log", stage.name));
        match &stage.kind {
            StageKind::Command(args) => {
                let mut args = args.clone();
                args.extend(resume.clone());
                run_child(exe, &args, &log)?;
            }
            StageKind::Eval { model, served_name, port, eval_args } => {
                run_eval(cfg, exe, stage, model, served_name, *port, eval_args, &logs)?;
            }
        }
        if let Some(missing) = stage.outputs.iter().find(|o| !o.exists()) {
            return Err(Error::msg(format!(
                "stage {}: finished without writing {} (log: {})",
                stage.name,
                missing.display(),
                log.display()
            )));
        }
        let seconds = started.elapsed().as_secs_f64();
        write_stamp(&stamp_path, &Stamp { key, seconds })?;
        let _ = std::fs::remove_file(&started_path);
        let status = if resume.is_some() { "resumed" } else { "ran" };
        let outcome = StageOutcome { name: stage.name.into(), status: status.into(), seconds };
        on_event(Event::Done(&outcome));
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The command line that identifies a stage (its key's arguments).
fn stage_args(stage: &Stage) -> Vec<String> {
    match &stage.kind {
        StageKind::Command(args) => args.clone(),
        StageKind::Eval { model, served_name, eval_args, .. } => {
            let mut all = vec![model.clone(), served_name.clone()];
            all.extend(eval_args.iter().cloned());
            all
        }
    }
}

/// A `stylevn` child with stdout and stderr appended to `log`, stopped by SIGTERM
/// if this process dies.
fn spawn(exe: &Path, args: &[String], log: &Path) -> Result<Child> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| Error::io(log, e))?;
    let err = file.try_clone().map_err(|e| Error::io(log, e))?;
    let mut cmd = Command::new(exe);
    cmd.args(args).stdin(Stdio::null()).stdout(file).stderr(err);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; the closure touches no other state.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
    cmd.spawn().map_err(|e| Error::msg(format!("starting {} {}: {e}", exe.display(), args.join(" "))))
}

fn run_child(exe: &Path, args: &[String], log: &Path) -> Result<()> {
    let status = spawn(exe, args, log)?.wait().map_err(|e| Error::msg(e.to_string()))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::msg(format!("`stylevn {}` failed ({status}); see {}", args[0], log.display())))
    }
}

/// Serves `model`, waits for `/health`, runs `stylevn eval` against it and stops
/// the server. Eval exits non-zero when a quality gate is missed; that is a result
/// (in the report), not a failure, so the stage succeeds when it wrote a report.
#[allow(clippy::too_many_arguments)]
fn run_eval(
    cfg: &PipelineConfig,
    exe: &Path,
    stage: &Stage,
    model: &str,
    served_name: &str,
    port: u16,
    eval_args: &[String],
    logs: &Path,
) -> Result<()> {
    let server_log = logs.join(format!("{}-server.log", stage.name));
    let mut server = spawn(exe, &eval_server_args(cfg, model, served_name, port), &server_log)?;
    let result = (|| {
        wait_healthy(&cfg.host, port, Duration::from_secs(cfg.server_start_timeout_s), &mut server, &server_log)?;
        let started = SystemTime::now();
        let log = logs.join(format!("{}.log", stage.name));
        let status = spawn(exe, eval_args, &log)?.wait().map_err(|e| Error::msg(e.to_string()))?;
        let report = stage.outputs.first().cloned().unwrap_or_default();
        let fresh = std::fs::metadata(&report).and_then(|m| m.modified()).is_ok_and(|t| t >= started);
        if fresh {
            Ok(())
        } else {
            Err(Error::msg(format!("`stylevn eval` wrote no report ({status}); see {}", log.display())))
        }
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}

/// Polls `GET /health` until it answers 200, the server exits, or `timeout` passes.
fn wait_healthy(host: &str, port: u16, timeout: Duration, server: &mut Child, log: &Path) -> Result<()> {
    use std::io::{Read, Write};
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = server.try_wait() {
            return Err(Error::msg(format!("server exited ({status}) before it was ready; see {}", log.display())));
        }
        if let Ok(mut stream) = TcpStream::connect((host, port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let request = format!("GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut answer).is_ok()
                && answer.starts_with("HTTP/1.1 200")
            {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(Error::msg(format!("server on {host}:{port} not healthy after {timeout:?}; see {}", log.display())))
}
