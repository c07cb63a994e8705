//! Answer caches for turns that depend on no personal or live data (policy and FAQ
//! questions): exact match on the folded question, and semantic match (cosine of
//! question embeddings at or above a threshold). Entries live in SQLite, so they
//! survive restarts, under a *scope*: the hash of the prompt version, the index
//! generation and the policies. When the scope changes (new prompt, new index,
//! edited policy) every entry of an older scope is dropped.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::conversation::text::fold;
use crate::rag::encoders::cosine;
use crate::{Error, Result};

/// How a cached answer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheHit {
    /// The same question (folded).
    Exact,
    /// A question whose embedding is close enough.
    Semantic,
}

/// The persistent answer cache.
pub struct AnswerCache {
    conn: Mutex<Connection>,
    threshold: f32,
}

/// The scope of cached answers: hex SHA-256 of its parts.
pub fn scope(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

fn key(scope: &str, question: &str) -> String {
    self::scope(&[scope, &fold(question)])
}

fn db_err(e: rusqlite::Error) -> Error {
    Error::msg(format!("answer cache: {e}"))
}

fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_blob(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

impl AnswerCache {
    /// Opens (creating) the cache at `path`, or an in-memory one when `None`.
    pub fn open(path: Option<&Path>, threshold: f32) -> Result<Self> {
        let conn = match path {
            Some(p) => Connection::open(p).map_err(|e| Error::msg(format!("{}: {e}", p.display())))?,
            None => Connection::open_in_memory().map_err(db_err)?,
        };
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, scope TEXT NOT NULL, question TEXT NOT NULL,
                embedding BLOB, answer TEXT NOT NULL, created_at INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS answers_scope ON answers(scope);",
        )
        .map_err(db_err)?;
        Ok(AnswerCache { conn: Mutex::new(conn), threshold })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| Error::msg("answer cache lock poisoned"))
    }

    /// The answer cached for `question` in `scope`; `embedding` enables the semantic match.
    /// Entries of other scopes are dropped first.
    pub fn get(&self, scope: &str, question: &str, embedding: Option<&[f32]>) -> Result<Option<(String, CacheHit)>> {
        let conn = self.conn()?;
        conn.execute("DELETE FROM answers WHERE scope <> ?1", params![scope]).map_err(db_err)?;
        let exact: Option<String> = conn
            .query_row("SELECT answer FROM answers WHERE key = ?1", params![key(scope, question)], |r| r.get(0))
            .optional()
            .map_err(db_err)?;
        if let Some(a) = exact {
            return Ok(Some((a, CacheHit::Exact)));
        }
        let Some(q) = embedding else { return Ok(None) };
        let mut st = conn
            .prepare("SELECT embedding, answer FROM answers WHERE scope = ?1 AND embedding IS NOT NULL")
            .map_err(db_err)?;
        let rows =
            st.query_map(params![scope], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))).map_err(db_err)?;
        let mut best: Option<(f32, String)> = None;
        for row in rows {
            let (blob, answer) = row.map_err(db_err)?;
            let sim = cosine(q, &from_blob(&blob));
            if sim >= self.threshold && best.as_ref().is_none_or(|b| sim > b.0) {
                best = Some((sim, answer));
            }
        }
        Ok(best.map(|(_, a)| (a, CacheHit::Semantic)))
    }

    /// Stores `answer` for `question` in `scope`.
    pub fn put(&self, scope: &str, question: &str, embedding: Option<&[f32]>, answer: &str) -> Result<()> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        self.conn()?
            .execute(
                "INSERT OR REPLACE INTO answers VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![key(scope, question), scope, question, embedding.map(to_blob), answer, now],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// Entries stored now (all scopes).
    pub fn len(&self) -> Result<usize> {
        self.conn()?
            .query_row("SELECT COUNT(*) FROM answers", [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .map_err(db_err)
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_semantic_and_scope_change() {
        let c = AnswerCache::open(None, 0.9).unwrap();
        c.put("s1", "Đổi trả mấy ngày?", Some(&[1.0, 0.0]), "14 ngày ạ").unwrap();
        assert_eq!(c.get("s1", "doi tra  may ngay?", None).unwrap(), Some(("14 ngày ạ".into(), CacheHit::Exact)));
        assert_eq!(
            c.get("s1", "được đổi hàng trong bao lâu", Some(&[0.99, 0.1])).unwrap(),
            Some(("14 ngày ạ".into(), CacheHit::Semantic))
        );
        assert_eq!(c.get("s1", "phí ship?", Some(&[0.0, 1.0])).unwrap(), None);
        assert_eq!(c.get("s2", "Đổi trả mấy ngày?", None).unwrap(), None);
        assert!(c.is_empty().unwrap(), "a new scope drops the old entries");
    }
}
