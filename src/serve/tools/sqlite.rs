//! [`ToolBackend`] over the store's SQLite database: a read-only connection
//! (`query_only` on top), bound parameters only (the queries live in
//! [`crate::data::tools::ToolBox`], which also holds the privacy rule for orders,
//! so training data and the server get the same tool results).

use std::path::Path;
use std::sync::Mutex;

use futures::future::BoxFuture;
use serde_json::Value;

use super::ToolBackend;
use crate::data::db::open_db;
use crate::data::tools::ToolBox;
use crate::{Error, Result};

/// Tools over the store database.
pub struct SqliteTools {
    tools: Mutex<ToolBox>,
}

impl SqliteTools {
    /// Opens `db` read-only; promotions are judged as of the store's date.
    pub fn open(db: &Path) -> Result<Self> {
        let conn = open_db(db)?;
        conn.pragma_update(None, "query_only", true).map_err(|e| Error::msg(format!("{}: {e}", db.display())))?;
        Ok(SqliteTools { tools: Mutex::new(ToolBox::at_store_date(conn)?) })
    }

    /// Runs one call synchronously (the queries take microseconds).
    pub fn call_now(&self, name: &str, args: &Value) -> Result<Value> {
        let tools = self.tools.lock().map_err(|_| Error::msg("tool database lock poisoned"))?;
        tools.call(name, args)
    }
}

impl ToolBackend for SqliteTools {
    fn call<'a>(&'a self, name: &'a str, args: &'a Value) -> BoxFuture<'a, Result<Value>> {
        Box::pin(async move { self.call_now(name, args) })
    }
}
