//! The exchange log: every assistant turn (messages, tool calls, guardrail events,
//! errors) and customer feedback, in SQLite with WAL so a crash loses nothing
//! committed. Text is PII-masked ([`crate::data::pii::mask`]) before it is written
//! and user ids are salted SHA-256 hashes. [`export_chats`] turns the logged
//! conversations into chat JSONL rows for `stylevn synth --import` (the retraining
//! loop).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OpenFlags};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::pii::mask;
use crate::{Error, Result};

/// One assistant turn as logged.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    /// Response id (`chatcmpl-...`), the key feedback refers to.
    pub id: String,
    /// Channel: `api`, `web`, `zalo`.
    pub channel: String,
    /// The end user's id as the channel gives it (hashed before logging).
    pub user: Option<String>,
    /// The conversation as the model saw it, without the system prompt, ending with
    /// the delivered answer.
    pub messages: Vec<Value>,
    /// How the turn ended: `answered`, `fallback`, `cached`, `refused:<reason>`, `safe_reply`.
    pub outcome: String,
    /// Guardrail events (`ungrounded: ...`, `fallback_capped`, ...).
    pub events: Vec<String>,
    /// Errors met on the way (a model that failed), masked.
    pub error: Option<String>,
}

/// Thumbs up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rating {
    /// Helpful.
    Up,
    /// Not helpful.
    Down,
}

/// The SQLite exchange log.
pub struct ExchangeLog {
    conn: Mutex<Connection>,
    salt: String,
}

fn db_err(e: rusqlite::Error) -> Error {
    Error::msg(format!("exchange log: {e}"))
}

/// Masks PII in every string of a JSON value.
pub fn mask_json(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(mask(s).0),
        Value::Array(a) => Value::Array(a.iter().map(mask_json).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), mask_json(v))).collect()),
        other => other.clone(),
    }
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// SQLite files start with this header.
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

/// Whether `path` is an SQLite file (an exchange log) rather than JSONL.
pub fn is_exchange_log(path: &Path) -> bool {
    let mut head = [0u8; 16];
    std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head)).is_ok()
        && head == SQLITE_MAGIC
}

impl ExchangeLog {
    /// Opens (creating) the log at `path`, or an in-memory one when `None`.
    pub fn open(path: Option<&Path>, salt: &str) -> Result<Self> {
        let conn = match path {
            Some(p) => Connection::open(p).map_err(|e| Error::msg(format!("{}: {e}", p.display())))?,
            None => Connection::open_in_memory().map_err(db_err)?,
        };
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS exchanges (id TEXT PRIMARY KEY, ts INTEGER NOT NULL, user_hash TEXT,
                channel TEXT NOT NULL, messages TEXT NOT NULL, outcome TEXT NOT NULL, events TEXT NOT NULL, error TEXT);
             CREATE TABLE IF NOT EXISTS feedback (response_id TEXT NOT NULL, ts INTEGER NOT NULL,
                rating INTEGER NOT NULL, comment TEXT);",
        )
        .map_err(db_err)?;
        Ok(ExchangeLog { conn: Mutex::new(conn), salt: salt.to_string() })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| Error::msg("exchange log lock poisoned"))
    }

    /// The salted hash a user id is logged as.
    pub fn user_hash(&self, user: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.salt.as_bytes());
        h.update([0]);
        h.update(user.as_bytes());
        hex::encode(&h.finalize()[..16])
    }

    /// Writes one exchange, masked.
    pub fn record(&self, e: &Exchange) -> Result<()> {
        let messages = mask_json(&json!(e.messages)).to_string();
        let events = mask_json(&json!(e.events)).to_string();
        let error = e.error.as_deref().map(|t| mask(t).0);
        let user = e.user.as_deref().map(|u| self.user_hash(u));
        self.conn()?
            .execute(
                "INSERT OR REPLACE INTO exchanges VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![e.id, now_s(), user, e.channel, messages, e.outcome, events, error],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// Records feedback on response `id`; `false` when no such response was logged.
    pub fn feedback(&self, id: &str, rating: Rating, comment: Option<&str>) -> Result<bool> {
        let conn = self.conn()?;
        let known: i64 = conn
            .query_row("SELECT COUNT(*) FROM exchanges WHERE id = ?1", params![id], |r| r.get(0))
            .map_err(db_err)?;
        if known == 0 {
            return Ok(false);
        }
        let rating = if rating == Rating::Up { 1 } else { -1 };
        let comment = comment.map(|c| mask(c).0);
        conn.execute("INSERT INTO feedback VALUES (?1, ?2, ?3, ?4)", params![id, now_s(), rating, comment])
            .map_err(db_err)?;
        Ok(true)
    }

    /// Rows logged so far.
    pub fn len(&self) -> Result<usize> {
        self.conn()?
            .query_row("SELECT COUNT(*) FROM exchanges", [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .map_err(db_err)
    }

    /// Whether nothing is logged.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// The logged conversations worth training on, as chat JSONL lines
/// (`{"messages": [...]}`): answered turns (by the local model or the fallback)
/// with no thumbs-down. Refusals, safe replies and cache hits teach nothing new.
pub fn export_chats(path: &Path) -> Result<String> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
    let mut st = conn
        .prepare(
            "SELECT messages FROM exchanges e WHERE outcome IN ('answered', 'fallback')
             AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.response_id = e.id AND f.rating < 0) ORDER BY ts, rowid",
        )
        .map_err(db_err)?;
    let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(db_err)?;
    let mut out = String::new();
    for row in rows {
        let messages: Value = serde_json::from_str(&row.map_err(db_err)?)
            .map_err(|e| Error::msg(format!("{}: bad logged messages: {e}", path.display())))?;
        out.push_str(&json!({"messages": messages}).to_string());
        out.push('\n');
    }
    Ok(out)
}
