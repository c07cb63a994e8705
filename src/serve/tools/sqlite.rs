//! [`ToolBackend`] over the store's SQLite database: a read-only connection
//! (`query_only` on top), bound parameters only (the queries live in
//! [`crate::data::tools::ToolBox`]), and the privacy rule for orders.
//!
//! Orders: an order id alone gives status, ETA and carrier; the items, total and
//! tracking code also need the last 4 digits of the phone number the order was
//! placed with (a full number works too). A phone that does not match gets the
//! same answer as no phone, so guessing reveals nothing more.

use std::path::Path;
use std::sync::Mutex;

use futures::future::BoxFuture;
use serde_json::{json, Value};

use super::{normalize_phone, ToolBackend};
use crate::data::db::open_db;
use crate::data::tools::ToolBox;
use crate::{Error, Result};

/// What a summary-only order answer says is needed for the details.
pub const DETAILS_NEED: &str =
    "Cần 4 số cuối số điện thoại đặt hàng để xem chi tiết đơn (sản phẩm, tổng tiền, mã vận đơn).";

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
        if name != "get_order_status" {
            return tools.call(name, args);
        }
        let Some(id) = args.get("order_id").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(json!({"error": "cần order_id"}));
        };
        let Some((owner, summary)) = tools.order_summary(id)? else {
            return Ok(json!({"found": false, "message": "Không tìm thấy đơn hàng với mã này."}));
        };
        let given = args.get("phone").and_then(Value::as_str).map(normalize_phone).unwrap_or_default();
        let owner_digits = normalize_phone(&owner);
        let matches = given.len() >= 4 && owner_digits.ends_with(&given[given.len() - 4..]) && {
            // A full number must be the whole number, not just end the same way.
            given.len() == 4 || given == owner_digits
        };
        if matches {
            return tools.call("get_order_status", &json!({"order_id": id, "phone": owner}));
        }
        let mut v = summary;
        v["details"] = json!(DETAILS_NEED);
        Ok(v)
    }
}

impl ToolBackend for SqliteTools {
    fn call<'a>(&'a self, name: &'a str, args: &'a Value) -> BoxFuture<'a, Result<Value>> {
        Box::pin(async move { self.call_now(name, args) })
    }
}
