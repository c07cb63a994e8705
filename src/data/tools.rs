//! The assistant's tools: their OpenAI function schemas (the single definition
//! that `synth` writes into training data and `serve` offers to clients) and their
//! execution against the SQLite store.
//!
//! Wire format of one schema (OpenAI `tools` entry):
//! ```json
//! {"type": "function", "function": {"name": "get_order_status", "description": "...",
//!   "parameters": {"type": "object", "properties": {...}, "required": [...]}}}
//! ```
//! A call's result is a JSON object. Lookups that find nothing answer
//! `{"found": false, "message": ...}`; bad arguments answer `{"error": ...}`, so a
//! model's malformed call becomes a tool message, never a crash.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

use super::ids::{sized_categories, StoreIds};
use super::store::Store;
use crate::conversation::text::fold;
use crate::{Error, Result};

/// Tool names, in the order [`tool_schemas`] lists them.
pub const TOOL_NAMES: [&str; 6] =
    ["get_order_status", "get_stock", "search_products", "get_promotions", "get_size_chart", "get_policy"];

/// The store's own words that the tool schemas offer as choices, each list in the
/// order the store's files first give them: another shop's categories and policy
/// topics are its own, and a schema listing the demo's would steer a model (and a
/// server's guided decoding) to arguments the shop does not have.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ToolVocabulary {
    /// Product categories (`catalog.csv`), for `search_products`.
    pub categories: Vec<String>,
    /// Categories with a size chart (`size_charts.csv`), for `get_size_chart`.
    pub sized_categories: Vec<String>,
    /// Policy topics (file stems of `policies/*.md`), for `get_policy`.
    pub policy_topics: Vec<String>,
    /// What the store's order ids look like: its first order id with the digits
    /// replaced (`DH250004` -> `DH123456`), so the schema shows the shape without
    /// a real order; `None` for a store without orders.
    pub order_id_example: Option<String>,
    /// The store's first SKU (the catalog is public).
    pub sku_example: Option<String>,
}

/// `id` with its digits replaced by 1, 2, ... 9, 0, 1, ...: the shape of the id
/// without the id (`SO-2026-0042` -> `SO-1234-5678`).
pub fn id_shape(id: &str) -> String {
    let mut next = 0;
    id.chars()
        .map(|c| match c.is_ascii_digit() {
            true => {
                next += 1;
                char::from(b'0' + (next % 10) as u8)
            }
            false => c,
        })
        .collect()
}

impl ToolVocabulary {
    /// The vocabulary of `store`.
    pub fn from_store(store: &Store) -> Self {
        fn distinct<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
            let mut out: Vec<String> = Vec::new();
            for item in items.filter(|i| !i.is_empty()) {
                if !out.iter().any(|o| o == item) {
                    out.push(item.to_string());
                }
            }
            out
        }
        ToolVocabulary {
            categories: distinct(store.products.iter().map(|p| p.category.as_str())),
            sized_categories: sized_categories(store).into_iter().map(|c| c.name).collect(),
            policy_topics: distinct(store.policies.iter().map(|p| p.topic.as_str())),
            order_id_example: store.orders.first().map(|o| id_shape(&o.order_id)),
            sku_example: store.products.first().map(|p| p.sku.clone()),
        }
    }
}

/// Largest number of products `search_products` returns.
pub const SEARCH_LIMIT: usize = 3;

fn function(name: &str, description: &str, properties: Value, required: &[&str]) -> Value {
    json!({"type": "function", "function": {"name": name, "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required}}})
}

/// The OpenAI `tools` list every conversation and the server offer, with the
/// store's `vocabulary` as the choices. Descriptions are short English: every prompt
/// carries them, and Vietnamese costs small models' tokenizers three times the
/// tokens (SmolLM2: 1,270 tokens for the Vietnamese version, against the store's
/// 373-token system prompt).
pub fn tool_schemas(vocabulary: &ToolVocabulary) -> Vec<Value> {
    // An example anchors a small model on the store's format: without one, SmolLM2
    // fine-tuned on the demo wrote order ids as digit runs until its token limit.
    let example = |what: &str, e: &Option<String>| match e {
        Some(e) => format!("{what}, e.g. {e}"),
        None => what.to_string(),
    };
    vec![
        function(
            "get_order_status",
            "Order status, ETA and carrier by order id; items, total and tracking code need the phone's last 4 digits.",
            json!({
                "order_id": {"type": "string",
                    "description": example("the order id as the customer wrote it", &vocabulary.order_id_example)},
                "phone": {"type": "string", "description": "last 4 digits, only if the customer gave them"}
            }),
            &["order_id"],
        ),
        function(
            "get_stock",
            "Stock of a product by SKU, optionally one size and colour.",
            json!({
                "sku": {"type": "string", "description": example("the product code", &vocabulary.sku_example)},
                "size": {"type": "string"},
                "color": {"type": "string"}
            }),
            &["sku"],
        ),
        function(
            "search_products",
            "Search the catalog by keywords, category and maximum price.",
            json!({
                "query": {"type": "string"},
                "category": {"type": "string", "enum": vocabulary.categories},
                "max_price_vnd": {"type": "integer"}
            }),
            &["query"],
        ),
        function(
            "get_promotions",
            "Active promotion codes, or one code's terms.",
            json!({
                "code": {"type": "string"},
                "order_total_vnd": {"type": "integer"}
            }),
            &[],
        ),
        function(
            "get_size_chart",
            "Size chart of a category and the recommended size for a height and weight (shoes: foot length).",
            json!({
                "category": {"type": "string", "enum": vocabulary.sized_categories},
                "height_cm": {"type": "number"},
                "weight_kg": {"type": "number"},
                "foot_length_cm": {"type": "number"}
            }),
            &["category"],
        ),
        function(
            "get_policy",
            "The store's policy on a topic.",
            json!({"topic": {"type": "string", "enum": vocabulary.policy_topics}}),
            &["topic"],
        ),
    ]
}

/// Executes tool calls against an open store database. Ids in arguments are
/// resolved through the store's [`StoreIds`], so `so 2026 0042` finds `SO-2026-0042`.
pub struct ToolBox {
    conn: Connection,
    today: String,
    ids: StoreIds,
    vocabulary: ToolVocabulary,
}

fn bad_args(msg: impl Into<String>) -> Value {
    json!({"error": msg.into()})
}

/// Digits of a phone number with `+84`/`84` turned into a leading `0`.
pub fn normalize_phone(phone: &str) -> String {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    match digits.strip_prefix("84") {
        Some(rest) if digits.len() == 11 => format!("0{rest}"),
        _ => digits,
    }
}

/// Whether `given` proves ownership of an order placed with `owner`: its last 4
/// digits, or the whole number (a full number must be the whole number, not just
/// end the same way).
fn phone_matches(given: &str, owner: &str) -> bool {
    let (given, owner) = (normalize_phone(given), normalize_phone(owner));
    given.len() >= 4 && owner.ends_with(&given[given.len() - 4..]) && (given.len() == 4 || given == owner)
}

/// What `get_order_status` says when no order has the id.
pub const ORDER_NOT_FOUND: &str = "Không tìm thấy đơn hàng với mã này.";

/// What an order answer without a matching phone says is needed for the details.
pub const DETAILS_NEED: &str =
    "Cần 4 số cuối số điện thoại đặt hàng để xem chi tiết đơn (sản phẩm, tổng tiền, mã vận đơn).";

/// The items of a `get_order_status` result that has them, as answers list them:
/// `2 x Áo thun basic (size M, màu Trắng)`.
pub fn order_item_lines(result: &Value) -> Vec<String> {
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    result["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| format!("{} x {} (size {}, màu {})", i["qty"], text(i, "name"), text(i, "size"), text(i, "color")))
        .collect()
}

/// Parses an `a-b` range of a size chart.
fn range(text: &str) -> Option<(f64, f64)> {
    let (a, b) = text.split_once('-')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

impl ToolBox {
    /// Tools over `conn`; promotions are judged valid as of `today` (`YYYY-MM-DD`).
    pub fn new(conn: Connection, today: impl Into<String>) -> Result<Self> {
        let store = super::db::load_store(&conn).map_err(|e| Error::msg(format!("store database: {e}")))?;
        let (ids, vocabulary) = (StoreIds::from_store(&store), ToolVocabulary::from_store(&store));
        Ok(ToolBox { conn, today: today.into(), ids, vocabulary })
    }

    /// Tools over `conn` as of the store's own date (`meta.store_today`).
    pub fn at_store_date(conn: Connection) -> Result<Self> {
        let today = super::db::store_today(&conn).map_err(sql)?;
        ToolBox::new(conn, today)
    }

    /// The store's ids, read when the tools were opened.
    pub fn ids(&self) -> &StoreIds {
        &self.ids
    }

    /// The tool schemas with this store's choices ([`tool_schemas`]).
    pub fn schemas(&self) -> Vec<Value> {
        tool_schemas(&self.vocabulary)
    }

    /// The database the tools read.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The date promotions are judged against.
    pub fn today(&self) -> &str {
        &self.today
    }

    /// Runs tool `name` with `args` (a JSON object); an unknown tool is an error.
    pub fn call(&self, name: &str, args: &Value) -> Result<Value> {
        let s = |k: &str| args.get(k).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty());
        let n = |k: &str| args.get(k).and_then(Value::as_f64);
        let r = match name {
            "get_order_status" => match s("order_id") {
                Some(id) => self.order_status(id, s("phone")),
                None => Ok(bad_args("cần order_id")),
            },
            "get_stock" => match s("sku") {
                Some(sku) => self.stock(sku, s("size"), s("color")),
                None => Ok(bad_args("cần sku")),
            },
            "search_products" => match s("query") {
                Some(q) => self.search(q, s("category"), args.get("max_price_vnd").and_then(Value::as_i64)),
                None => Ok(bad_args("cần query")),
            },
            "get_promotions" => self.promotions(s("code"), args.get("order_total_vnd").and_then(Value::as_i64)),
            "get_size_chart" => match s("category") {
                Some(c) => self.size_chart(c, n("height_cm"), n("weight_kg"), n("foot_length_cm")),
                None => Ok(bad_args("cần category")),
            },
            "get_policy" => match s("topic") {
                Some(t) => self.policy(t),
                None => Ok(bad_args("cần topic")),
            },
            other => return Err(Error::msg(format!("unknown tool {other:?} (known: {})", TOOL_NAMES.join(", ")))),
        };
        r.map_err(sql)
    }

    /// An order by id. Anyone holding the id learns its status, ETA and carrier; the
    /// items, total and tracking code also need the last 4 digits of the phone number
    /// the order was placed with (or the whole number). A phone that does not match
    /// gets the same answer as no phone, so guessing reveals nothing more, and the
    /// phone itself never goes into a result.
    fn order_status(&self, order_id: &str, phone: Option<&str>) -> rusqlite::Result<Value> {
        let id = self.ids.order(order_id).map_or_else(|| order_id.to_uppercase(), String::from);
        let row = self
            .conn
            .query_row(
                "SELECT customer_phone, status, eta, carrier, tracking_code, total_vnd, created_at FROM orders WHERE order_id = ?1",
                params![id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        json!({"found": true, "order_id": id, "status": r.get::<_, String>(1)?,
                            "eta": r.get::<_, String>(2)?, "carrier": r.get::<_, String>(3)?}),
                        json!({"tracking_code": r.get::<_, String>(4)?, "total_vnd": r.get::<_, i64>(5)?,
                            "created_at": r.get::<_, String>(6)?}),
                    ))
                },
            )
            .optional()?;
        let Some((owner, mut v, details)) = row else {
            return Ok(json!({"found": false, "message": ORDER_NOT_FOUND}));
        };
        if !phone.is_some_and(|p| phone_matches(p, &owner)) {
            v["details"] = json!(DETAILS_NEED);
            return Ok(v);
        }
        for (k, x) in details.as_object().into_iter().flatten() {
            v[k] = x.clone();
        }
        let mut st = self.conn.prepare(
            "SELECT i.sku, p.name, i.size, i.color, i.qty, i.price_vnd FROM order_items i \
             JOIN products p ON p.sku = i.sku WHERE i.order_id = ?1 ORDER BY i.rowid",
        )?;
        let items: Vec<Value> = st
            .query_map(params![id], |r| {
                Ok(json!({"sku": r.get::<_, String>(0)?, "name": r.get::<_, String>(1)?, "size": r.get::<_, String>(2)?,
                    "color": r.get::<_, String>(3)?, "qty": r.get::<_, i64>(4)?, "price_vnd": r.get::<_, i64>(5)?}))
            })?
            .collect::<rusqlite::Result<_>>()?;
        v["items"] = Value::Array(items);
        Ok(v)
    }

    fn stock(&self, sku: &str, size: Option<&str>, color: Option<&str>) -> rusqlite::Result<Value> {
        let sku = self.ids.sku(sku).map_or_else(|| sku.to_uppercase(), String::from);
        let product = self
            .conn
            .query_row("SELECT name, price_vnd FROM products WHERE sku = ?1", params![sku], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()?;
        let Some((name, price_vnd)) = product else {
            return Ok(json!({"found": false, "message": format!("Không có sản phẩm mã {sku}.")}));
        };
        let mut st = self.conn.prepare("SELECT size, color, qty FROM stock WHERE sku = ?1 ORDER BY rowid")?;
        let rows: Vec<(String, String, i64)> =
            st.query_map(params![sku], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?;
        let variants: Vec<Value> = rows
            .iter()
            .filter(|(s, c, _)| {
                size.is_none_or(|want| s.eq_ignore_ascii_case(want)) && color.is_none_or(|want| fold(c) == fold(want))
            })
            .map(|(s, c, q)| json!({"size": s, "color": c, "qty": q}))
            .collect();
        Ok(json!({"found": true, "sku": sku, "name": name, "price_vnd": price_vnd, "variants": variants}))
    }

    fn search(&self, query: &str, category: Option<&str>, max_price: Option<i64>) -> rusqlite::Result<Value> {
        let words: Vec<String> = fold(query).split_whitespace().map(String::from).collect();
        let mut st =
            self.conn.prepare("SELECT sku, name, category, price_vnd, sizes, colors FROM products ORDER BY rowid")?;
        let mut scored: Vec<(usize, Value)> = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    json!({"sku": r.get::<_, String>(0)?, "name": r.get::<_, String>(1)?, "category": r.get::<_, String>(2)?,
                        "price_vnd": r.get::<_, i64>(3)?, "sizes": r.get::<_, String>(4)?, "colors": r.get::<_, String>(5)?}),
                ))
            })?
            .filter_map(|row| row.ok())
            .filter(|(_, cat, price, _)| category.is_none_or(|c| fold(c) == fold(cat)) && max_price.is_none_or(|m| *price <= m))
            .filter_map(|(name, _, _, v)| {
                let name_words: Vec<String> = fold(&name).split_whitespace().map(String::from).collect();
                let score = words.iter().filter(|w| name_words.contains(w)).count();
                (score > 0 || words.is_empty()).then_some((score, v))
            })
            .collect();
        scored.sort_by_key(|s| std::cmp::Reverse(s.0)); // stable: ties keep catalog order
        let products: Vec<Value> = scored.into_iter().take(SEARCH_LIMIT).map(|(_, v)| v).collect();
        Ok(json!({"found": !products.is_empty(), "products": products}))
    }

    fn promotions(&self, code: Option<&str>, total: Option<i64>) -> rusqlite::Result<Value> {
        let mut st = self.conn.prepare(
            "SELECT code, description, discount_pct, min_order_vnd, valid_from, valid_to FROM promotions ORDER BY rowid",
        )?;
        let all: Vec<(String, String, i64, i64, String, String)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let today = self.today.as_str();
        let describe = |p: &(String, String, i64, i64, String, String)| {
            let state = if today < p.4.as_str() {
                "chưa bắt đầu"
            } else if today > p.5.as_str() {
                "đã hết hạn"
            } else {
                "đang áp dụng"
            };
            let mut v = json!({"code": p.0, "description": p.1, "discount_pct": p.2, "min_order_vnd": p.3,
                "valid_from": p.4, "valid_to": p.5, "state": state});
            if let Some(t) = total {
                v["eligible"] = json!(state == "đang áp dụng" && t >= p.3);
            }
            v
        };
        if let Some(code) = code {
            let code = self.ids.promotion(code).map_or_else(|| code.to_uppercase(), String::from);
            return Ok(match all.iter().find(|p| p.0 == code) {
                Some(p) => json!({"found": true, "today": today, "promotion": describe(p)}),
                None => json!({"found": false, "today": today, "message": format!("Không có mã khuyến mãi {code}.")}),
            });
        }
        // The list keeps only what an answer needs: every entry is active.
        let active: Vec<Value> = all
            .iter()
            .filter(|p| p.4.as_str() <= today && today <= p.5.as_str())
            .map(|p| {
                let mut v = describe(p);
                if let Some(o) = v.as_object_mut() {
                    o.remove("state");
                    o.remove("valid_from");
                }
                v
            })
            .collect();
        Ok(json!({"today": today, "promotions": active}))
    }

    fn size_chart(
        &self,
        category: &str,
        height: Option<f64>,
        weight: Option<f64>,
        foot: Option<f64>,
    ) -> rusqlite::Result<Value> {
        let mut st = self.conn.prepare(
            "SELECT category, size, chest_cm, waist_cm, hip_cm, height_cm, weight_kg, foot_length_cm FROM size_charts ORDER BY rowid",
        )?;
        let rows: Vec<[String; 8]> = st
            .query_map([], |r| {
                let g = |k: usize| r.get::<_, String>(k);
                Ok([g(0)?, g(1)?, g(2)?, g(3)?, g(4)?, g(5)?, g(6)?, g(7)?])
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .filter(|r| fold(&r[0]) == fold(category))
            .collect();
        if rows.is_empty() {
            return Ok(json!({"found": false, "message": format!("Chưa có bảng size cho loại {category}.")}));
        }
        let recommended = recommend_size(&rows, height, weight, foot);
        let sizes: Vec<Value> = rows
            .iter()
            .map(|r| {
                let mut v = json!({"size": r[1]});
                for (k, x) in
                    ["chest_cm", "waist_cm", "hip_cm", "height_cm", "weight_kg", "foot_length_cm"].iter().zip(&r[2..])
                {
                    if !x.is_empty() {
                        v[*k] = json!(x);
                    }
                }
                v
            })
            .collect();
        let mut v = json!({"found": true, "category": rows[0][0], "sizes": sizes, "recommended_size": recommended});
        // Echo the measurements the recommendation used, so an answer can cite them.
        for (k, x) in [("height_cm", height), ("weight_kg", weight), ("foot_length_cm", foot)] {
            if let Some(x) = x {
                v[k] = if x.fract() == 0.0 { json!(x as i64) } else { json!(x) };
            }
        }
        Ok(v)
    }

    fn policy(&self, topic: &str) -> rusqlite::Result<Value> {
        let row = self
            .conn
            .query_row("SELECT title, text FROM policies WHERE topic = ?1", params![topic], |r| {
                Ok(json!({"found": true, "topic": topic, "title": r.get::<_, String>(0)?, "text": r.get::<_, String>(1)?}))
            })
            .optional()?;
        Ok(row.unwrap_or_else(|| json!({"found": false, "message": format!("Không có chính sách {topic}.")})))
    }
}

/// The size for a customer: shoes by foot length (the smallest size whose foot
/// length is at least the customer's); clothes by the rows whose weight and height
/// ranges contain the customer's, preferring weight and, when height and weight
/// point to different sizes, the larger one. `None` when nothing fits.
pub fn recommend_size(
    rows: &[[String; 8]],
    height: Option<f64>,
    weight: Option<f64>,
    foot: Option<f64>,
) -> Option<String> {
    if let Some(f) = foot {
        return rows.iter().find(|r| r[7].parse::<f64>().is_ok_and(|len| len >= f)).map(|r| r[1].clone());
    }
    let in_range = |text: &str, x: f64| range(text).is_some_and(|(a, b)| a <= x && x <= b);
    let by_weight = weight.and_then(|w| rows.iter().rposition(|r| in_range(&r[6], w)));
    let by_height = height.and_then(|h| rows.iter().rposition(|r| in_range(&r[5], h)));
    let pick = match (by_height, by_weight) {
        (Some(h), Some(w)) => Some(h.max(w)),
        (None, Some(w)) => Some(w),
        (Some(h), None) if weight.is_none() => Some(h),
        _ => None,
    };
    pick.map(|i| rows[i][1].clone())
}

fn sql(e: rusqlite::Error) -> Error {
    Error::msg(format!("store database: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_shape_keeps_the_format_and_hides_the_digits() {
        assert_eq!(id_shape("DH250004"), "DH123456");
        assert_eq!(id_shape("SO-2026-0042"), "SO-1234-5678");
        assert_eq!(id_shape("#100234"), "#123456");
        assert_eq!(id_shape("ABC"), "ABC");
    }
}
