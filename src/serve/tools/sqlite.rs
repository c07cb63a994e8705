//! [`ToolBackend`] over the store's SQLite database: a read-only connection
//! (`query_only` on top), bound parameters only (the queries live in
//! [`crate::data::tools::ToolBox`], which also holds the privacy rule for orders,
//! so training data and the server get the same tool results).

use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use serde_json::Value;

use super::ToolBackend;
use crate::data::db::open_db;
use crate::data::ids::StoreIds;
use crate::data::tools::ToolBox;
use crate::{Error, Result};

/// Tools over the store database.
pub struct SqliteTools {
    tools: Mutex<ToolBox>,
    ids: Arc<StoreIds>,
    schemas: Vec<Value>,
}

impl SqliteTools {
    /// Opens `db` read-only; promotions are judged as of the store's date.
    pub fn open(db: &Path) -> Result<Self> {
        let conn = open_db(db)?;
        conn.pragma_update(None, "query_only", true).map_err(|e| Error::msg(format!("{}: {e}", db.display())))?;
        let tools = ToolBox::at_store_date(conn)?;
        let (ids, schemas) = (Arc::new(tools.ids().clone()), tools.schemas());
        Ok(SqliteTools { tools: Mutex::new(tools), ids, schemas })
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

    fn schemas(&self) -> &[Value] {
        &self.schemas
    }

    fn store_ids(&self) -> Option<Arc<StoreIds>> {
        Some(self.ids.clone())
    }
}
