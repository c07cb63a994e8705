//! Chat datasets on disk, read and checked row by row.
//!
//! JSONL (`.jsonl`, `.json`), one conversation per line, OpenAI style:
//!
//! ```text
//! {"messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "Còn size M không?"},
//!   {"role": "assistant", "content": "", "tool_calls": [{"type": "function",
//!     "function": {"name": "check_stock", "arguments": {"size": "M"}}}]},
//!   {"role": "tool", "content": "{\"còn\": 3}"}, {"role": "assistant", "content": "Dạ còn 3 cái ạ"}],
//!  "tools": [{"type": "function", "function": {"name": "check_stock", "parameters": {...}}}]}
//! ```
//!
//! CSV (`.csv`) with a header naming `instruction` and `response` (and
//! optionally `system`): each row becomes `[system], user, assistant`.
//!
//! A bad row (bad JSON, missing or empty messages, unknown role, message without
//! content, no assistant turn...) is reported with its `file:line` and skipped;
//! the caller decides whether any bad row fails the run.

use std::path::Path;

use polars::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::{Error, Result};

/// The roles a message may have.
pub const ROLES: [&str; 4] = ["system", "user", "assistant", "tool"];

/// One conversation read from a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRecord {
    /// The messages, OpenAI style.
    pub messages: Vec<Value>,
    /// The tool schemas offered in this conversation, if any.
    pub tools: Option<Vec<Value>>,
    /// Where the row is, as `file:line`.
    pub source: String,
}

/// Why a row was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BadRowKind {
    /// Not JSON, not UTF-8, or not an object.
    BadJson,
    /// `messages`/`tools`/`tool_calls` of the wrong shape.
    BadShape,
    /// A role other than system, user, assistant, tool.
    UnknownRole,
    /// A message with no (or empty) content.
    NoContent,
    /// No assistant message to train on, or an assistant message first.
    NoAssistant,
    /// The chat template failed on the row.
    Template,
    /// More tokens than `--max-len`.
    TooLong,
}

/// A rejected row: where it is and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRow {
    /// `file:line`.
    pub source: String,
    /// The kind of problem, for counting.
    pub kind: BadRowKind,
    /// What is wrong, for the user.
    pub reason: String,
}

impl std::fmt::Display for BadRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.source, self.reason)
    }
}

/// The rows of one or more dataset files.
#[derive(Debug, Default)]
pub struct ChatRows {
    /// Rows read (non-blank JSONL lines, CSV data rows).
    pub rows_in: usize,
    /// The rows that passed the checks, in file order.
    pub records: Vec<ChatRecord>,
    /// The rows that did not.
    pub bad: Vec<BadRow>,
}

impl ChatRows {
    fn push(&mut self, source: String, row: Checked) {
        self.rows_in += 1;
        match row {
            Ok((messages, tools)) => self.records.push(ChatRecord { messages, tools, source }),
            Err((kind, reason)) => self.bad.push(BadRow { source, kind, reason }),
        }
    }
}

/// A row's messages and tools, or why it is bad.
type Checked = std::result::Result<(Vec<Value>, Option<Vec<Value>>), (BadRowKind, String)>;

/// Reads a chat dataset, choosing the format by extension (`.csv`, else JSONL).
pub fn read_chats(path: &Path) -> Result<ChatRows> {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
        read_chat_csv(path)
    } else {
        read_chat_jsonl(path)
    }
}

/// Reads a JSONL chat dataset; blank lines are ignored.
pub fn read_chat_jsonl(path: &Path) -> Result<ChatRows> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut rows = ChatRows::default();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let row = std::str::from_utf8(line)
            .map_err(|e| (BadRowKind::BadJson, format!("not UTF-8: {e}")))
            .and_then(|s| serde_json::from_str(s).map_err(|e| (BadRowKind::BadJson, format!("not valid JSON: {e}"))))
            .and_then(|v| check_row(&v));
        rows.push(format!("{}:{}", path.display(), i + 1), row);
    }
    Ok(rows)
}

/// Reads a CSV dataset with columns `instruction`, `response` and optionally `system`.
pub fn read_chat_csv(path: &Path) -> Result<ChatRows> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let records = crate::csv_lines::csv_records(&bytes);
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0)) // every column as text
        .into_reader_with_file_handle(std::io::Cursor::new(bytes))
        .finish()
        .map_err(|e| Error::bad_input(path, None, format!("not a readable CSV: {e}")))?;
    let column = |name: &str| -> Result<Option<Vec<Option<String>>>> {
        let Ok(col) = df.column(name) else { return Ok(None) };
        let strings = col.str().map_err(|e| Error::bad_input(path, None, format!("column `{name}`: {e}")))?;
        Ok(Some(strings.iter().map(|s| s.map(str::to_string)).collect()))
    };
    let missing = |name: &str| {
        let msg = format!("no `{name}` column; the header must name instruction,response[,system]");
        Error::bad_input(path, Some(1), msg)
    };
    let instructions = column("instruction")?.ok_or_else(|| missing("instruction"))?;
    let responses = column("response")?.ok_or_else(|| missing("response"))?;
    let systems = column("system")?;
    // Data row k is record k + 1 (after the header); should polars count records
    // differently, fall back to one line per row.
    let counts_agree = records.len() == df.height() + 1;
    let record = |k: usize| if counts_agree { records[k + 1] } else { (k + 2, false) };

    let mut rows = ChatRows::default();
    for (k, (instruction, response)) in instructions.into_iter().zip(responses).enumerate() {
        let (line, blank) = record(k);
        if blank {
            continue;
        }
        let system = systems.as_ref().and_then(|s| s[k].clone()).filter(|s| !s.trim().is_empty());
        let mut messages = Vec::new();
        if let Some(system) = system {
            messages.push(serde_json::json!({"role": "system", "content": system}));
        }
        messages.push(serde_json::json!({"role": "user", "content": instruction.unwrap_or_default()}));
        messages.push(serde_json::json!({"role": "assistant", "content": response.unwrap_or_default()}));
        let row = check_messages(&messages).map(|()| (messages, None));
        rows.push(format!("{}:{line}", path.display()), row);
    }
    Ok(rows)
}

/// Checks one JSONL row and takes its messages and tools.
fn check_row(row: &Value) -> Checked {
    let shape = |msg: &str| (BadRowKind::BadShape, msg.to_string());
    let Some(obj) = row.as_object() else {
        return Err((BadRowKind::BadJson, "a row must be a JSON object".into()));
    };
    let messages = match obj.get("messages") {
        None | Some(Value::Null) => return Err(shape("no `messages`")),
        Some(Value::Array(m)) if m.is_empty() => return Err(shape("`messages` is empty")),
        Some(Value::Array(m)) => m.clone(),
        Some(_) => return Err(shape("`messages` must be a list")),
    };
    let tools = match obj.get("tools") {
        None | Some(Value::Null) => None,
        Some(Value::Array(t)) if t.iter().all(Value::is_object) => Some(t.clone()).filter(|t| !t.is_empty()),
        Some(_) => return Err(shape("`tools` must be a list of objects")),
    };
    check_messages(&messages)?;
    Ok((messages, tools))
}

/// Checks a conversation: known roles, content where needed, well-formed tool
/// calls, an assistant turn (and not as the first message).
pub fn check_messages(messages: &[Value]) -> std::result::Result<(), (BadRowKind, String)> {
    for (i, m) in messages.iter().enumerate() {
        let Some(m) = m.as_object() else {
            return Err((BadRowKind::BadShape, format!("messages[{i}] is not an object")));
        };
        let role = match m.get("role").and_then(Value::as_str) {
            Some(r) if ROLES.contains(&r) => r,
            Some(r) => {
                let msg = format!("messages[{i}]: unknown role {r:?} (expected system, user, assistant or tool)");
                return Err((BadRowKind::UnknownRole, msg));
            }
            None => return Err((BadRowKind::UnknownRole, format!("messages[{i}] has no string `role`"))),
        };
        let tool_calls = match m.get("tool_calls") {
            None | Some(Value::Null) => 0,
            Some(Value::Array(calls)) if role == "assistant" => {
                check_tool_calls(calls).map_err(|e| (BadRowKind::BadShape, format!("messages[{i}]: {e}")))?
            }
            Some(_) => return Err((BadRowKind::BadShape, format!("messages[{i}] ({role}): bad `tool_calls`"))),
        };
        match m.get("content") {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            None | Some(Value::Null) | Some(Value::String(_)) if tool_calls > 0 => {}
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err((BadRowKind::NoContent, format!("messages[{i}] ({role}) has no content")))
            }
            Some(_) => {
                return Err((BadRowKind::BadShape, format!("messages[{i}] ({role}): `content` must be a string")))
            }
        }
    }
    match messages.iter().position(|m| m["role"] == "assistant") {
        None => Err((BadRowKind::NoAssistant, "no assistant turn to train on".into())),
        Some(0) => Err((BadRowKind::NoAssistant, "the first message is an assistant turn".into())),
        Some(_) => Ok(()),
    }
}

/// Checks `tool_calls` (`{"function": {"name", "arguments"}}` or `{"name", "arguments"}`;
/// arguments an object or a JSON string) and counts them.
fn check_tool_calls(calls: &[Value]) -> std::result::Result<usize, String> {
    for (j, call) in calls.iter().enumerate() {
        let f = call.get("function").unwrap_or(call);
        match f.get("name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => {}
            _ => return Err(format!("tool_calls[{j}] has no function name")),
        }
        match f.get("arguments") {
            None | Some(Value::Object(_)) | Some(Value::String(_)) => {}
            Some(_) => return Err(format!("tool_calls[{j}]: `arguments` must be an object or a JSON string")),
        }
    }
    Ok(calls.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn bad_jsonl_rows_are_reported_with_line_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let rows = [
            r#"{"messages": [{"role": "user", "content": "Chào"}, {"role": "assistant", "content": "Dạ"}]}"#,
            "",
            r#"{"messages": [{"role": "user", "content": "Chào"}"#,
            r#"{"messages": []}"#,
            r#"{"messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "y"}]}"#,
            r#"{"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "y"}]}"#,
            r#"{"messages": [{"role": "user", "content": "Chào"}]}"#,
            r#"{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}, {"role": "tool", "content": "{}"}, {"role": "assistant", "content": "b"}]}"#,
            r#"{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "tool_calls": [{"function": {"arguments": 3}}]}]}"#,
            "[1, 2]",
        ];
        let path = write(&dir, "chats.jsonl", &rows.join("\n"));
        let read = read_chat_jsonl(&path).unwrap();
        assert_eq!(read.rows_in, 9);
        assert_eq!(read.records.len(), 2);
        assert_eq!(read.records[1].source, format!("{}:8", path.display()));
        let bad: Vec<(usize, BadRowKind)> =
            read.bad.iter().map(|b| (b.source.rsplit(':').next().unwrap().parse().unwrap(), b.kind)).collect();
        use BadRowKind::*;
        assert_eq!(
            bad,
            [
                (3, BadJson),
                (4, BadShape),
                (5, UnknownRole),
                (6, NoContent),
                (7, NoAssistant),
                (9, BadShape),
                (10, BadJson)
            ]
        );
        assert!(read.bad[2].reason.contains("unknown role \"bot\""), "{}", read.bad[2]);
    }

    #[test]
    fn csv_rows_become_conversations_with_true_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let csv = "instruction,response,system\r\n\
                   Áo còn size M không?,\"Dạ còn ạ,\r\nsize M nhé\",Bạn là trợ lý\r\n\
                   \r\n\
                   Giá bao nhiêu?,,\r\n\
                     \r\n\
                   Ship mấy ngày?,2-3 ngày ạ,\r\n";
        let path = write(&dir, "chats.csv", csv);
        let read = read_chats(&path).unwrap();
        assert_eq!(read.rows_in, 3);
        assert_eq!(read.records.len(), 2);
        let first = &read.records[0];
        assert_eq!(first.messages.len(), 3);
        assert_eq!(first.messages[2]["content"], "Dạ còn ạ,\r\nsize M nhé");
        assert_eq!(read.records[1].messages.len(), 2, "empty system means no system message");
        assert_eq!(read.records[1].source, format!("{}:7", path.display()));
        assert_eq!(read.bad[0].source, format!("{}:5", path.display()));
        assert_eq!(read.bad[0].kind, BadRowKind::NoContent);
    }

    #[test]
    fn csv_without_required_columns_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "x.csv", "question,answer\na,b\n");
        let err = read_chats(&path).unwrap_err().to_string();
        assert!(err.contains("no `instruction` column"), "{err}");
    }
}
