//! Teacher mode (`stylevn synth --teacher-url URL --teacher-model NAME`): an
//! OpenAI-compatible endpoint rewrites the store-grounded conversations of offline
//! mode in new words.
//!
//! Each task is offline conversation `k` (same seed, same conversation). The
//! teacher receives its customer and assistant turns with the tool results as the
//! facts, and answers with the same turns reworded:
//! ```json
//! request  (user message): {"facts": [...tool results...], "turns": [{"role": "user", "content": "..."}, ...]}
//! response (message content): {"turns": [{"role": "user", "content": "..."}, ...]}
//! ```
//! Tool calls and results stay as the database gave them. A rewrite is kept only
//! if it parses, has the same turns, passes the chat schema check, reads as
//! Vietnamese, states no fact outside its evidence, keeps every order status, and
//! is not a duplicate; otherwise it is counted under its rejection reason.
//!
//! Requests run `concurrency` at a time; 429s, 5xx, transport errors and timeouts
//! are retried with exponential backoff. Every finished task is appended to a
//! journal (`OUT.journal.jsonl`) and flushed, so a killed run resumes where it
//! stopped; the output file is written atomically from the journal at the end and
//! the journal removed. The API key is sent as a bearer token and never logged.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_openai::error::OpenAIError;
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};

use super::{dialogue_text, generate_offline, write_jsonl, Example, OfflineOptions, SynthSummary};
use crate::conversation::{CallError, OpenAiClient};
use crate::data::dedup::{Deduper, Verdict};
use crate::data::grounding::ungrounded;
use crate::data::passages::{split_context, with_context, CONTEXT_HEADING};
use crate::data::store::{Store, ORDER_STATUSES};
use crate::data::tools::ToolBox;
use crate::tokenize::chat_dataset::check_messages;
use crate::{Error, Result};

/// The teacher's instructions.
pub const TEACHER_PROMPT: &str = "Bạn viết lại hội thoại chăm sóc khách hàng của cửa hàng thời trang StyleVN. \
Giữ nguyên số lượt và vai của từng lượt. Viết lại lời khách bằng cách diễn đạt khác (có thể thân mật, không dấu, \
viết tắt). Viết lại lời trợ lý lễ phép, tự nhiên (dạ/ạ, xưng em). Giữ NGUYÊN mọi con số, giá tiền, ngày tháng, mã đơn, \
mã sản phẩm, mã khuyến mãi, mã vận đơn và trạng thái đơn hàng; không thêm thông tin nào ngoài \"facts\". \
Trả về đúng một đối tượng JSON {\"turns\": [{\"role\": ..., \"content\": ...}]}.";

/// Settings of a teacher run.
#[derive(Debug, Clone)]
pub struct TeacherOptions {
    /// Base URL of the OpenAI-compatible API (…/v1).
    pub url: String,
    /// Model name sent in each request.
    pub model: String,
    /// API key (bearer token); never printed.
    pub api_key: Option<String>,
    /// Conversations wanted in the output.
    pub n: usize,
    /// Seed of the underlying offline conversations.
    pub seed: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Retries per request after the first try.
    pub max_retries: u32,
    /// Delay before the first retry; doubled each time.
    pub backoff: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Sampling temperature.
    pub temperature: f64,
    /// Near-duplicate threshold (estimated Jaccard).
    pub near_dup_threshold: f64,
}

/// The journal beside `out`.
pub fn journal_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".journal.jsonl");
    out.with_file_name(name)
}

/// The outcome of one task, as journalled.
enum Outcome {
    Accepted(Value),
    Rejected(String),
}

/// The turns a teacher rewrites: customer and assistant messages with text.
fn rewritable(messages: &[Value]) -> Vec<usize> {
    (0..messages.len())
        .filter(|&i| {
            matches!(messages[i]["role"].as_str(), Some("user" | "assistant"))
                && messages[i]["content"].as_str().is_some_and(|c| !c.is_empty())
        })
        .collect()
}

fn request_body(example: &Example, opts: &TeacherOptions) -> Value {
    // The facts the answers may use: passages retrieved before a question, tool results.
    // The teacher rewrites the questions without their passages; they are put back.
    let mut facts: Vec<Value> = Vec::new();
    let mut turns: Vec<Value> = Vec::new();
    for i in rewritable(&example.messages) {
        let (passages, text) = split_context(example.messages[i]["content"].as_str().unwrap_or_default());
        facts.extend(passages.into_iter().map(|p| json!(p)));
        turns.push(json!({"role": example.messages[i]["role"], "content": text}));
    }
    facts.extend(example.messages.iter().filter(|m| m["role"] == "tool").map(|m| m["content"].clone()));
    json!({
        "temperature": opts.temperature,
        "messages": [
            {"role": "system", "content": TEACHER_PROMPT},
            {"role": "user", "content": json!({"facts": facts, "turns": turns}).to_string()},
        ],
    })
}

/// Whether an error is worth retrying: rate limits, server errors, transport errors.
fn retryable(e: &OpenAIError) -> bool {
    match e {
        OpenAIError::ApiError(r) => r.status_code.as_u16() == 429 || r.status_code.is_server_error(),
        OpenAIError::Reqwest(_) => true,
        OpenAIError::JSONDeserialize(..) => true,
        _ => false,
    }
}

/// Sends one request with retries; `Err` carries the rejection reason.
async fn ask(client: &OpenAiClient, body: Value, opts: &TeacherOptions) -> std::result::Result<String, String> {
    let mut delay = opts.backoff;
    for attempt in 0..=opts.max_retries {
        let reason = match client.complete(body.clone()).await {
            Ok(v) => {
                return v["choices"][0]["message"]["content"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| "no_content".into())
            }
            Err(CallError::Failed(e)) if retryable(&e) => match &e {
                OpenAIError::ApiError(r) if r.status_code.as_u16() == 429 => "rate_limited",
                OpenAIError::ApiError(_) => "server_error",
                _ => "transport_error",
            },
            Err(CallError::Failed(_)) => return Err("request_error".into()),
            Err(CallError::TimedOut(_)) => "timeout",
        };
        if attempt == opts.max_retries {
            return Err(format!("{reason}_after_retries"));
        }
        tokio::time::sleep(delay).await;
        delay = delay.saturating_mul(2);
    }
    Err("unreachable".into())
}

/// Vietnamese enough: letters with Vietnamese diacritics or common Vietnamese words.
fn looks_vietnamese(text: &str) -> bool {
    const MARKS: &str = "ăâđêôơưàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ";
    let lower = text.to_lowercase();
    let words = ["khong", "duoc", "cho", "minh", "shop", "don", "hang", "em", "anh", "chi", "ban", "size", "gia"];
    lower.chars().any(|c| MARKS.contains(c)) || lower.split_whitespace().filter(|w| words.contains(w)).count() >= 2
}

/// Checks a teacher's reply and builds the rewritten conversation.
pub fn accept_rewrite(example: &Example, reply: &str) -> std::result::Result<Vec<Value>, &'static str> {
    let trimmed = reply.trim().trim_start_matches("```json").trim_start_matches("```").trim_end_matches("```");
    let parsed: Value = serde_json::from_str(trimmed.trim()).map_err(|_| "bad_json")?;
    let turns = parsed["turns"].as_array().ok_or("bad_json")?;
    let slots = rewritable(&example.messages);
    if turns.len() != slots.len() {
        return Err("wrong_turns");
    }
    let mut messages = example.messages.clone();
    for (slot, turn) in slots.iter().zip(turns) {
        let content = turn["content"].as_str().filter(|c| !c.trim().is_empty()).ok_or("wrong_turns")?;
        if turn["role"] != messages[*slot]["role"] {
            return Err("wrong_turns");
        }
        let (passages, _) = split_context(messages[*slot]["content"].as_str().unwrap_or_default());
        messages[*slot]["content"] = json!(with_context(content, CONTEXT_HEADING, &passages));
    }
    check_messages(&messages).map_err(|_| "schema")?;
    for slot in &slots {
        if !looks_vietnamese(split_context(messages[*slot]["content"].as_str().unwrap_or("")).1) {
            return Err("not_vietnamese");
        }
    }
    if !ungrounded(&messages).is_empty() {
        return Err("ungrounded_fact");
    }
    // Every status the original assistant stated must survive the rewrite.
    let said = |ms: &[Value], status: &str| {
        ms.iter()
            .filter(|m| m["role"] == "assistant")
            .any(|m| m["content"].as_str().unwrap_or("").to_lowercase().contains(&status.to_lowercase()))
    };
    if ORDER_STATUSES.iter().any(|s| said(&example.messages, s) && !said(&messages, s)) {
        return Err("status_changed");
    }
    Ok(messages)
}

/// Reads the journal: task index -> accepted row or rejection reason. A torn last
/// line (killed mid-write) is ignored.
fn read_journal(path: &Path) -> Result<BTreeMap<usize, Outcome>> {
    let mut done = BTreeMap::new();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(e) => return Err(Error::io(path, e)),
    };
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        let Some(task) = v["task"].as_u64() else { continue };
        let outcome = match v["rejected"].as_str() {
            Some(r) => Outcome::Rejected(r.to_string()),
            None => Outcome::Accepted(v["row"].clone()),
        };
        done.insert(task as usize, outcome);
    }
    Ok(done)
}

/// Runs teacher mode into `out`; `progress` receives (accepted, tasks finished).
pub fn run_teacher(
    tools: &ToolBox,
    store: &Store,
    opts: &TeacherOptions,
    out: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<SynthSummary> {
    // Enough tasks for n accepted rows after rejections; each is the offline conversation of that index.
    let max_tasks = opts.n * 2 + 8;
    let offline = OfflineOptions { n: max_tasks, seed: opts.seed, near_dup_threshold: opts.near_dup_threshold };
    let (examples, _) = generate_offline(tools, store, offline, |_| {})?;
    let journal = journal_path(out);
    let mut done = read_journal(&journal)?;

    // Dedup state from what the journal already holds, in task order.
    let mut dedup = Deduper::new(opts.near_dup_threshold);
    let mut accepted = 0;
    for outcome in done.values() {
        if let Outcome::Accepted(row) = outcome {
            dedup.insert(&dialogue_text(row["messages"].as_array().map(Vec::as_slice).unwrap_or(&[])));
            accepted += 1;
        }
    }
    let mut journal_file =
        std::fs::OpenOptions::new().create(true).append(true).open(&journal).map_err(|e| Error::io(&journal, e))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::msg(format!("tokio runtime: {e}")))?;
    let client = OpenAiClient::new(&opts.url, &opts.model, opts.api_key.as_deref(), opts.timeout);
    let schemas = tools.schemas();
    progress(accepted, done.len());

    let mut failed: BTreeMap<String, usize> = BTreeMap::new();
    let todo: Vec<usize> = (0..max_tasks).filter(|k| !done.contains_key(k)).collect();
    // Replies are handled as they arrive: checked, deduplicated, journalled and
    // flushed one by one, so a kill loses at most the requests in flight. Once n
    // rows are accepted the stream is dropped, cancelling what is still in flight.
    runtime.block_on(async {
        let mut replies = stream::iter(todo.iter().map(|&k| {
            let body = request_body(&examples[k], opts);
            let client = &client;
            async move { (k, ask(client, body, opts).await) }
        }))
        .buffer_unordered(opts.concurrency.max(1));
        while accepted < opts.n {
            let Some((k, reply)) = replies.next().await else { break };
            // Failed requests (after their retries) are not journalled: a re-run retries them.
            let reply = match reply {
                Ok(r) => r,
                Err(reason) => {
                    *failed.entry(reason).or_default() += 1;
                    continue;
                }
            };
            let outcome = match accept_rewrite(&examples[k], &reply) {
                Err(reason) => Outcome::Rejected(reason.to_string()),
                Ok(messages) => match dedup.insert(&dialogue_text(&messages)) {
                    Verdict::Exact => Outcome::Rejected("exact_duplicate".into()),
                    Verdict::Near => Outcome::Rejected("near_duplicate".into()),
                    Verdict::New => {
                        accepted += 1;
                        Outcome::Accepted(json!({"messages": messages, "tools": schemas,
                            "intent": examples[k].intent.name(), "source": "teacher"}))
                    }
                },
            };
            let line = match &outcome {
                Outcome::Accepted(row) => json!({"task": k, "row": row}),
                Outcome::Rejected(r) => json!({"task": k, "rejected": r}),
            };
            writeln!(journal_file, "{line}").and_then(|_| journal_file.flush()).map_err(|e| Error::io(&journal, e))?;
            done.insert(k, outcome);
            progress(accepted, done.len());
        }
        Ok::<(), Error>(())
    })?;

    let mut summary = SynthSummary::default();
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    for outcome in done.values() {
        match outcome {
            Outcome::Accepted(row)
                if seen.insert(dialogue_text(row["messages"].as_array().map(Vec::as_slice).unwrap_or(&[]))) =>
            {
                let intent = row["intent"].as_str().unwrap_or("");
                let tool_call = row["messages"].as_array().into_iter().flatten().any(|m| m.get("tool_calls").is_some());
                let refusal = super::Intent::from_name(intent).is_some_and(super::Intent::is_refusal);
                summary.count(intent, tool_call, refusal);
                rows.push(row.clone());
            }
            Outcome::Accepted(_) => summary.exact_duplicates += 1,
            Outcome::Rejected(r) if r == "exact_duplicate" => summary.exact_duplicates += 1,
            Outcome::Rejected(r) if r == "near_duplicate" => summary.near_duplicates += 1,
            Outcome::Rejected(r) => summary.reject(r),
        }
    }
    for (reason, count) in failed {
        *summary.rejected.entry(reason).or_default() += count;
    }
    if summary.written < opts.n {
        return Err(Error::msg(format!(
            "the teacher gave {} acceptable conversations of {} wanted after {max_tasks} tasks (rejected: {:?}); the journal {} keeps them, re-run to retry",
            summary.written,
            opts.n,
            summary.rejected,
            journal.display()
        )));
    }
    write_jsonl(out, rows)?;
    drop(journal_file);
    std::fs::remove_file(&journal).map_err(|e| Error::io(&journal, e))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synth::Intent;

    /// Passages retrieved before a question reach the teacher as facts, not as part of
    /// the customer's words, and are put back before the rewritten question.
    #[test]
    fn passages_are_facts_and_survive_the_rewrite() {
        let passages = ["Chân váy caro. Giá: 489.000đ"];
        let example = Example {
            intent: Intent::ProductFromContext,
            messages: vec![
                json!({"role": "system", "content": crate::data::SYSTEM_PROMPT}),
                json!({"role": "user", "content": with_context("váy caro giá sao shop", CONTEXT_HEADING, &passages)}),
                json!({"role": "assistant", "content": "Dạ chân váy caro giá 489.000đ ạ."}),
            ],
        };
        let opts = TeacherOptions {
            url: String::new(),
            model: "t".into(),
            api_key: None,
            n: 1,
            seed: 0,
            concurrency: 1,
            max_retries: 0,
            backoff: Duration::ZERO,
            timeout: Duration::from_secs(1),
            temperature: 0.0,
            near_dup_threshold: 0.85,
        };
        let body = request_body(&example, &opts);
        let sent: Value = serde_json::from_str(body["messages"][1]["content"].as_str().unwrap()).unwrap();
        assert_eq!(sent["facts"], json!(passages));
        assert_eq!(sent["turns"][0], json!({"role": "user", "content": "váy caro giá sao shop"}));

        let reply = json!({"turns": [
            {"role": "user", "content": "shop ơi váy caro bao nhiêu tiền ạ"},
            {"role": "assistant", "content": "Dạ mẫu chân váy caro bên em giá 489.000đ ạ."}]});
        let rewritten = accept_rewrite(&example, &reply.to_string()).unwrap();
        assert_eq!(
            rewritten[1]["content"],
            with_context("shop ơi váy caro bao nhiêu tiền ạ", CONTEXT_HEADING, &passages)
        );
        let wrong = reply.to_string().replace("489.000đ", "499.000đ");
        assert_eq!(accept_rewrite(&example, &wrong), Err("ungrounded_fact"));
    }
}
