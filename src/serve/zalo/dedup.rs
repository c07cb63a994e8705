//! Message ids already handled, in SQLite so a restart during Zalo's hours of
//! retries does not answer a message twice. Ids older than the TTL are forgotten.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection};

use crate::{Error, Result};

/// The set of handled message ids.
pub struct SeenIds {
    conn: Mutex<Connection>,
    ttl: Duration,
}

fn db_err(e: rusqlite::Error) -> Error {
    Error::msg(format!("Zalo message ids: {e}"))
}

impl SeenIds {
    /// Opens (creating) the set at `path`, in memory when `None`.
    pub fn open(path: Option<&Path>, ttl: Duration) -> Result<Self> {
        let conn = match path {
            Some(p) => Connection::open(p).map_err(|e| Error::msg(format!("{}: {e}", p.display())))?,
            None => Connection::open_in_memory().map_err(db_err)?,
        };
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS seen (msg_id TEXT PRIMARY KEY, ts INTEGER NOT NULL);",
        )
        .map_err(db_err)?;
        Ok(SeenIds { conn: Mutex::new(conn), ttl })
    }

    /// Records `msg_id`; `true` when it had not been seen within the TTL.
    pub fn first_delivery(&self, msg_id: &str) -> Result<bool> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let conn = self.conn.lock().map_err(|_| Error::msg("Zalo message ids lock poisoned"))?;
        conn.execute("DELETE FROM seen WHERE ts < ?1", params![now - self.ttl.as_secs() as i64]).map_err(db_err)?;
        let inserted =
            conn.execute("INSERT OR IGNORE INTO seen VALUES (?1, ?2)", params![msg_id, now]).map_err(db_err)?;
        Ok(inserted == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_survive_a_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("seen.db");
        let a = SeenIds::open(Some(&path), Duration::from_secs(3600)).unwrap();
        assert!(a.first_delivery("m1").unwrap());
        assert!(!a.first_delivery("m1").unwrap());
        drop(a);
        let b = SeenIds::open(Some(&path), Duration::from_secs(3600)).unwrap();
        assert!(!b.first_delivery("m1").unwrap());
        assert!(b.first_delivery("m2").unwrap());
    }
}
