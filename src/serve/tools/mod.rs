//! The assistant's tools as the server runs them. The schemas are the one
//! definition `synth` writes into training data ([`tool_schemas`]); a
//! [`ToolBackend`] executes calls: [`SqliteTools`] over the store database here,
//! or the shop's own HTTP API in production.

mod sqlite;

pub use crate::data::tools::{normalize_phone, recommend_size, tool_schemas, TOOL_NAMES};
pub use sqlite::SqliteTools;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::Result;

/// Runs the assistant's tools. A result is a JSON object; bad arguments and
/// lookups that find nothing are results too (`{"error": ..}`, `{"found": false, ..}`),
/// only an unknown tool or a broken backend is an `Err`.
pub trait ToolBackend: Send + Sync {
    /// Runs tool `name` with `args` (a JSON object).
    fn call<'a>(&'a self, name: &'a str, args: &'a Value) -> BoxFuture<'a, Result<Value>>;
}
