//! `stylevn synth --teacher-url`: against a mock OpenAI server on 127.0.0.1 that
//! answers some calls with 429 and 500 and some with unusable rewrites, the output
//! is complete, deduplicated, grounded, and resumable after the command is killed;
//! the API key is sent but never printed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stylevn::data::db::init_db;
use stylevn::data::grounding::ungrounded;
use stylevn::tokenize::chat_dataset::check_messages;

const KEY: &str = "sk-test-not-for-printing-1234";

#[derive(Default)]
struct Log {
    requests: usize,
    statuses: HashMap<u16, usize>,
    auth: Vec<String>,
    /// Prompts answered with a good rewrite, and how many times.
    good: HashMap<String, usize>,
}

/// A mock `/v1/chat/completions`: request k (1-based) gets a 429 when k % 4 == 1,
/// a 500 when k % 7 == 3, an answer that is not JSON when k % 11 == 5, an English
/// rewrite when k % 13 == 6, and otherwise a polite Vietnamese rewrite.
fn mock_server(delay: Duration) -> (String, Arc<Mutex<Log>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Log::default()));
    let shared = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let log = shared.clone();
            std::thread::spawn(move || serve(stream, &log, delay));
        }
    });
    (url, log)
}

fn serve(stream: TcpStream, log: &Mutex<Log>, delay: Duration) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        headers.push(line.trim_end().to_string());
    }
    let header = |name: &str| {
        headers.iter().find_map(|h| {
            h.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string())
        })
    };
    let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    let request: Value = serde_json::from_slice(&body).unwrap();
    let k = {
        let mut l = log.lock().unwrap();
        l.requests += 1;
        l.auth.push(header("authorization").unwrap_or_default());
        l.requests
    };
    std::thread::sleep(delay);
    let prompt = request["messages"][1]["content"].as_str().unwrap().to_string();
    let (status, reply) = if k % 4 == 1 {
        (429, json!({"error": {"message": "rate limited", "type": "rate_limit_error", "param": null, "code": null}}))
    } else if k % 7 == 3 {
        (500, json!("upstream exploded"))
    } else {
        let content = if k % 11 == 5 {
            "Xin lỗi, tôi không làm được.".to_string()
        } else {
            let task: Value = serde_json::from_str(&prompt).unwrap();
            let turns: Vec<Value> = task["turns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    let c = t["content"].as_str().unwrap();
                    let c = if k % 13 == 6 {
                        "Sure, here is the answer you asked for.".to_string()
                    } else if t["role"] == "assistant" {
                        format!("Dạ vâng, {}", c.strip_prefix("Dạ ").unwrap_or(c))
                    } else {
                        format!("{c} nha")
                    };
                    json!({"role": t["role"], "content": c})
                })
                .collect();
            if k % 13 != 6 {
                *log.lock().unwrap().good.entry(prompt.clone()).or_default() += 1;
            }
            json!({"turns": turns}).to_string()
        };
        (
            200,
            json!({"id": format!("c{k}"), "object": "chat.completion", "created": 0, "model": request["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}),
        )
    };
    *log.lock().unwrap().statuses.entry(status).or_default() += 1;
    let body = if reply.is_string() { reply.as_str().unwrap().to_string() } else { reply.to_string() };
    let reason = match status {
        200 => "OK",
        429 => "Too Many Requests",
        _ => "Internal Server Error",
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn build_db(dir: &Path) -> PathBuf {
    let db = dir.join("stylevn.db");
    init_db(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data"), &db).unwrap();
    db
}

fn teacher_cmd(url: &str, db: &Path, out: &Path, n: usize) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stylevn"));
    cmd.args(["synth", "--teacher-url", url, "--teacher-model", "mock-teacher", "--db", db.to_str().unwrap()])
        .args(["--n", &n.to_string(), "--seed", "3", "--concurrency", "3", "--backoff-ms", "5", "--max-retries", "8"])
        .args(["--out", out.to_str().unwrap(), "--json"])
        .env("OPENAI_API_KEY", KEY);
    cmd
}

fn check_output(out: &Path, n: usize) -> Vec<Value> {
    let rows: Vec<Value> =
        std::fs::read_to_string(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), n);
    let mut seen = std::collections::HashSet::new();
    for row in &rows {
        let messages = row["messages"].as_array().unwrap();
        check_messages(messages).unwrap();
        assert!(ungrounded(messages).is_empty(), "{row}");
        assert!(seen.insert(messages.iter().map(|m| m.to_string()).collect::<String>()), "duplicate row");
        let last = messages.last().unwrap()["content"].as_str().unwrap();
        assert!(last.starts_with("Dạ vâng, "), "the teacher's rewrite is kept: {last}");
        assert_eq!(row["source"], "teacher");
    }
    assert!(!stylevn::data::synth::teacher::journal_path(out).exists(), "journal removed after a complete run");
    rows
}

#[test]
fn teacher_mode_survives_errors_and_rate_limits_and_counts_rejections() {
    let tmp = tempfile::tempdir().unwrap();
    let db = build_db(tmp.path());
    let (url, log) = mock_server(Duration::ZERO);
    let out = tmp.path().join("teacher.jsonl");
    let run = teacher_cmd(&url, &db, &out, 25).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "{stderr}");
    assert!(!stdout.contains(KEY) && !stderr.contains(KEY), "the API key is never printed");
    check_output(&out, 25);
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["written"], 25);
    assert!(summary["rejected"]["bad_json"].as_u64().unwrap_or(0) > 0, "{summary}");
    assert!(summary["rejected"]["not_vietnamese"].as_u64().unwrap_or(0) > 0, "{summary}");
    let log = log.lock().unwrap();
    assert!(log.statuses[&429] > 0 && log.statuses[&500] > 0, "{:?}", log.statuses);
    assert!(log.auth.iter().all(|a| a == &format!("Bearer {KEY}")), "the key is sent as a bearer token");
}

#[test]
fn teacher_mode_resumes_after_kill_without_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let db = build_db(tmp.path());
    let (url, log) = mock_server(Duration::from_millis(60));
    let out = tmp.path().join("teacher.jsonl");
    let journal = stylevn::data::synth::teacher::journal_path(&out);
    let mut child = teacher_cmd(&url, &db, &out, 30).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    let lines = |p: &Path| std::fs::read_to_string(p).map(|t| t.lines().count()).unwrap_or(0);
    while lines(&journal) < 8 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress in the journal");
        assert!(child.try_wait().unwrap().is_none(), "finished before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.exists(), "no partial output file");
    let journalled = lines(&journal);
    assert!(journalled >= 8);
    let good_before: usize = log.lock().unwrap().good.values().sum();

    let run = teacher_cmd(&url, &db, &out, 30).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    check_output(&out, 30);
    let log = log.lock().unwrap();
    // Tasks finished before the kill are not asked again; only those in flight at the kill may be.
    let repeated: usize = log.good.values().filter(|&&c| c > 1).count();
    assert!(repeated <= 3, "{repeated} tasks asked twice (concurrency is 3)");
    let good_total: usize = log.good.values().sum();
    assert!(good_total - good_before < 30 + 20, "the resumed run redid the finished work");
}
