//! Importing real chat logs (`stylevn synth --import logs.jsonl --anonymize`):
//! OpenAI chat JSONL (or the server's exchange log, [`crate::data::exchange_log`]) in, the same rows out with PII masked in every message,
//! schema-checked, exact and near duplicates dropped, the store's tool schemas
//! attached where a row has none.

use std::path::Path;

use serde_json::{json, Value};

use super::{dialogue_text, SynthSummary};
use crate::data::dedup::{Deduper, Verdict};
use crate::data::exchange_log::{export_chats, is_exchange_log};
use crate::data::pii::{mask, Masked};
use crate::tokenize::chat_dataset::check_messages;
use crate::{Error, Result};

/// The rows kept and what was done to them.
#[derive(Debug, Default)]
pub struct Imported {
    /// Kept rows (`{"messages", "tools", "intent": "imported"}`).
    pub rows: Vec<Value>,
    /// Counts: written, duplicates, rejected by reason.
    pub summary: SynthSummary,
    /// PII replaced.
    pub masked: Masked,
}

/// Reads `path` (chat JSONL), masks PII when `anonymize`, checks and deduplicates;
/// rows that carry no tools get the store's `schemas`.
pub fn import_logs(path: &Path, anonymize: bool, near_dup_threshold: f64, schemas: &[Value]) -> Result<Imported> {
    // The server's exchange log (SQLite) is read as the chat JSONL it exports.
    let text = if is_exchange_log(path) {
        export_chats(path)?
    } else {
        std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?
    };
    let mut out = Imported::default();
    let mut dedup = Deduper::new(near_dup_threshold);
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let Ok(mut row) = serde_json::from_str::<Value>(line) else {
            out.summary.reject("bad_json");
            continue;
        };
        let Some(messages) = row.get_mut("messages").and_then(Value::as_array_mut) else {
            out.summary.reject("no_messages");
            continue;
        };
        if anonymize {
            for m in messages.iter_mut() {
                if let Some(content) = m.get("content").and_then(Value::as_str) {
                    let (masked, counts) = mask(content);
                    out.masked.add(counts);
                    m["content"] = json!(masked);
                }
            }
        }
        if let Err((kind, _)) = check_messages(messages) {
            let reason = serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(String::from));
            out.summary.reject(&reason.unwrap_or_else(|| format!("{kind:?}")));
            continue;
        }
        let messages = messages.clone();
        match dedup.insert(&dialogue_text(&messages)) {
            Verdict::Exact => out.summary.exact_duplicates += 1,
            Verdict::Near => out.summary.near_duplicates += 1,
            Verdict::New => {
                let tools = row.get("tools").filter(|t| t.is_array()).cloned().unwrap_or_else(|| json!(schemas));
                let tool_call = messages.iter().any(|m| m.get("tool_calls").is_some_and(|t| !t.is_null()));
                out.summary.count("imported", tool_call, false);
                out.rows.push(json!({"messages": messages, "tools": tools, "intent": "imported"}));
            }
        }
    }
    Ok(out)
}
