//! The assistant's tools as the server runs them. The schemas are the one
//! definition `synth` writes into training data ([`tool_schemas`], with the store's
//! own categories and topics); a
//! [`ToolBackend`] executes calls: [`SqliteTools`] over the store database here,
//! or the shop's own HTTP API in production.

mod sqlite;

pub use crate::data::tools::{normalize_phone, recommend_size, tool_schemas, TOOL_NAMES};
pub use sqlite::SqliteTools;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::data::ids::StoreIds;
use crate::Result;

/// Runs the assistant's tools. A result is a JSON object; bad arguments and
/// lookups that find nothing are results too (`{"error": ..}`, `{"found": false, ..}`),
/// only an unknown tool or a broken backend is an `Err`.
pub trait ToolBackend: Send + Sync {
    /// Runs tool `name` with `args` (a JSON object).
    fn call<'a>(&'a self, name: &'a str, args: &'a Value) -> BoxFuture<'a, Result<Value>>;

    /// The OpenAI `tools` entries offered to the model: [`tool_schemas`] with the
    /// store's own choices.
    fn schemas(&self) -> &[Value];

    /// The store's ids, when the backend knows them: the assistant routes a turn
    /// that names one of them. A backend that does not (a shop's API) leaves order
    /// ids to the configured id patterns and everything else to the model.
    fn store_ids(&self) -> Option<Arc<StoreIds>> {
        None
    }
}
