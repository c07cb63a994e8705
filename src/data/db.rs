//! The SQLite store the tools query: built from `data/` by [`init_db`] (what
//! `stylevn db init` runs) and read back whole by [`load_store`].
//!
//! Schema (issue 6; extra columns and the `policies` and `meta` tables are ours):
//! ```sql
//! products(sku PRIMARY KEY, name, category, price_vnd INTEGER, sizes, colors, description, material, url)
//! stock(sku, size, color, qty INTEGER)
//! orders(order_id PRIMARY KEY, customer_phone, status, eta, carrier, tracking_code, total_vnd INTEGER,
//!        created_at, customer_name, city, payment_method)
//! order_items(order_id, sku, size, color, qty, price_vnd)
//! promotions(code PRIMARY KEY, description, discount_pct, min_order_vnd, valid_from, valid_to)
//! size_charts(category, size, chest_cm, waist_cm, hip_cm, height_cm, weight_kg, foot_length_cm)
//! policies(topic PRIMARY KEY, title, text)
//! meta(key PRIMARY KEY, value)          -- store_today: the date the data describes
//! ```
//! `sizes` and `colors` are `|`-separated. Empty CSV fields (eta, carrier and
//! tracking code of cancelled orders) are stored as empty strings.

use std::path::Path;

use rusqlite::{params, Connection, OpenFlags};

use super::product::Product;
use super::store::{Order, OrderItem, Policy, Promotion, SizeChartRow, StockRow, Store};
use super::STORE_TODAY;
use crate::{Error, Result};

const SCHEMA: &str = "
PRAGMA foreign_keys = ON;
CREATE TABLE products(sku TEXT PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL,
    price_vnd INTEGER NOT NULL, sizes TEXT NOT NULL, colors TEXT NOT NULL, description TEXT NOT NULL,
    material TEXT NOT NULL, url TEXT NOT NULL);
CREATE TABLE stock(sku TEXT NOT NULL REFERENCES products(sku), size TEXT NOT NULL, color TEXT NOT NULL,
    qty INTEGER NOT NULL, PRIMARY KEY(sku, size, color));
CREATE TABLE orders(order_id TEXT PRIMARY KEY, customer_phone TEXT NOT NULL, status TEXT NOT NULL,
    eta TEXT NOT NULL, carrier TEXT NOT NULL, tracking_code TEXT NOT NULL, total_vnd INTEGER NOT NULL,
    created_at TEXT NOT NULL, customer_name TEXT NOT NULL, city TEXT NOT NULL, payment_method TEXT NOT NULL);
CREATE INDEX orders_by_phone ON orders(customer_phone);
CREATE TABLE order_items(order_id TEXT NOT NULL REFERENCES orders(order_id),
    sku TEXT NOT NULL REFERENCES products(sku), size TEXT NOT NULL, color TEXT NOT NULL,
    qty INTEGER NOT NULL, price_vnd INTEGER NOT NULL);
CREATE INDEX order_items_by_order ON order_items(order_id);
CREATE TABLE promotions(code TEXT PRIMARY KEY, description TEXT NOT NULL, discount_pct INTEGER NOT NULL,
    min_order_vnd INTEGER NOT NULL, valid_from TEXT NOT NULL, valid_to TEXT NOT NULL);
CREATE TABLE size_charts(category TEXT NOT NULL, size TEXT NOT NULL, chest_cm TEXT NOT NULL,
    waist_cm TEXT NOT NULL, hip_cm TEXT NOT NULL, height_cm TEXT NOT NULL, weight_kg TEXT NOT NULL,
    foot_length_cm TEXT NOT NULL, PRIMARY KEY(category, size));
CREATE TABLE policies(topic TEXT PRIMARY KEY, title TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// Row counts of a built database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DbSummary {
    /// Catalog products.
    pub products: usize,
    /// Stock rows.
    pub stock: usize,
    /// Orders.
    pub orders: usize,
    /// Order lines.
    pub order_items: usize,
    /// Promotions.
    pub promotions: usize,
    /// Size chart rows.
    pub size_charts: usize,
    /// Policy documents.
    pub policies: usize,
}

fn sql_err(path: &Path, e: rusqlite::Error) -> Error {
    Error::msg(format!("{}: sqlite: {e}", path.display()))
}

/// Builds the SQLite store at `db` from the files in `data_dir`: the whole database
/// is written to a temporary file beside `db` and renamed over it, so re-running is
/// idempotent and a failure leaves the previous database untouched.
pub fn init_db(data_dir: &Path, db: &Path) -> Result<DbSummary> {
    let store = Store::load_dir(data_dir)?;
    let dir = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = tempfile::Builder::new().prefix(".stylevn-db-").tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
    {
        let mut conn = Connection::open(tmp.path()).map_err(|e| sql_err(db, e))?;
        write_store(&mut conn, &store).map_err(|e| sql_err(db, e))?;
        conn.close().map_err(|(_, e)| sql_err(db, e))?;
    }
    crate::atomic::set_mode(tmp.path(), 0o644)?;
    tmp.persist(db).map_err(|e| Error::io(db, e.error))?;
    Ok(summary(&store))
}

/// The row counts of `store`.
pub fn summary(store: &Store) -> DbSummary {
    DbSummary {
        products: store.products.len(),
        stock: store.stock.len(),
        orders: store.orders.len(),
        order_items: store.order_items.len(),
        promotions: store.promotions.len(),
        size_charts: store.size_charts.len(),
        policies: store.policies.len(),
    }
}

fn write_store(conn: &mut Connection, s: &Store) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    let tx = conn.transaction()?;
    {
        let mut st = tx.prepare("INSERT INTO products VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")?;
        for p in &s.products {
            let (sizes, colors) = (p.sizes.join("|"), p.colors.join("|"));
            st.execute(params![
                p.sku,
                p.name,
                p.category,
                p.price_vnd,
                sizes,
                colors,
                p.description,
                p.material,
                p.url
            ])?;
        }
        let mut st = tx.prepare("INSERT INTO stock VALUES (?1, ?2, ?3, ?4)")?;
        for r in &s.stock {
            st.execute(params![r.sku, r.size, r.color, r.qty])?;
        }
        let mut st = tx.prepare("INSERT INTO orders VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")?;
        for o in &s.orders {
            st.execute(params![
                o.order_id,
                o.customer_phone,
                o.status,
                o.eta,
                o.carrier,
                o.tracking_code,
                o.total_vnd,
                o.created_at,
                o.customer_name,
                o.city,
                o.payment_method
            ])?;
        }
        let mut st = tx.prepare("INSERT INTO order_items VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
        for i in &s.order_items {
            st.execute(params![i.order_id, i.sku, i.size, i.color, i.qty, i.price_vnd])?;
        }
        let mut st = tx.prepare("INSERT INTO promotions VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
        for p in &s.promotions {
            st.execute(params![p.code, p.description, p.discount_pct, p.min_order_vnd, p.valid_from, p.valid_to])?;
        }
        let mut st = tx.prepare("INSERT INTO size_charts VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?;
        for r in &s.size_charts {
            st.execute(params![
                r.category,
                r.size,
                r.chest_cm,
                r.waist_cm,
                r.hip_cm,
                r.height_cm,
                r.weight_kg,
                r.foot_length_cm
            ])?;
        }
        let mut st = tx.prepare("INSERT INTO policies VALUES (?1, ?2, ?3)")?;
        for p in &s.policies {
            st.execute(params![p.topic, p.title, p.text])?;
        }
        tx.execute("INSERT INTO meta VALUES ('store_today', ?1)", params![STORE_TODAY])?;
    }
    tx.commit()
}

/// Opens the store database read-only; a missing file is an error that says how
/// to build it.
pub fn open_db(db: &Path) -> Result<Connection> {
    if !db.is_file() {
        let msg = "no such database; build it with `stylevn db init --data data --db <this path>`";
        return Err(Error::bad_input(db, None, msg));
    }
    Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| sql_err(db, e))
}

/// Reads the whole store back from an open database.
pub fn load_store(conn: &Connection) -> rusqlite::Result<Store> {
    fn all<T>(
        conn: &Connection,
        sql: &str,
        f: impl FnMut(&rusqlite::Row) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Vec<T>> {
        conn.prepare(sql)?.query_map([], f)?.collect()
    }
    let list = |s: String| super::store::split_list(&s);
    Ok(Store {
        products: all(conn, "SELECT sku, name, category, price_vnd, sizes, colors, material, description, url FROM products ORDER BY rowid", |r| {
            Ok(Product {
                source: String::new(),
                sku: r.get(0)?,
                name: r.get(1)?,
                category: r.get(2)?,
                price_vnd: r.get(3)?,
                sizes: list(r.get(4)?),
                colors: list(r.get(5)?),
                stock: None,
                material: r.get(6)?,
                description: r.get(7)?,
                url: r.get(8)?,
            })
        })?,
        stock: all(conn, "SELECT sku, size, color, qty FROM stock ORDER BY rowid", |r| {
            Ok(StockRow { sku: r.get(0)?, size: r.get(1)?, color: r.get(2)?, qty: r.get(3)? })
        })?,
        orders: all(
            conn,
            "SELECT order_id, customer_name, customer_phone, city, status, eta, carrier, tracking_code, \
             payment_method, total_vnd, created_at FROM orders ORDER BY rowid",
            |r| {
                Ok(Order {
                    order_id: r.get(0)?,
                    customer_name: r.get(1)?,
                    customer_phone: r.get(2)?,
                    city: r.get(3)?,
                    status: r.get(4)?,
                    eta: r.get(5)?,
                    carrier: r.get(6)?,
                    tracking_code: r.get(7)?,
                    payment_method: r.get(8)?,
                    total_vnd: r.get(9)?,
                    created_at: r.get(10)?,
                })
            },
        )?,
        order_items: all(conn, "SELECT order_id, sku, size, color, qty, price_vnd FROM order_items ORDER BY rowid", |r| {
            Ok(OrderItem {
                order_id: r.get(0)?,
                sku: r.get(1)?,
                size: r.get(2)?,
                color: r.get(3)?,
                qty: r.get(4)?,
                price_vnd: r.get(5)?,
            })
        })?,
        promotions: all(
            conn,
            "SELECT code, description, discount_pct, min_order_vnd, valid_from, valid_to FROM promotions ORDER BY rowid",
            |r| {
                Ok(Promotion {
                    code: r.get(0)?,
                    description: r.get(1)?,
                    discount_pct: r.get(2)?,
                    min_order_vnd: r.get(3)?,
                    valid_from: r.get(4)?,
                    valid_to: r.get(5)?,
                })
            },
        )?,
        size_charts: all(
            conn,
            "SELECT category, size, chest_cm, waist_cm, hip_cm, height_cm, weight_kg, foot_length_cm FROM size_charts ORDER BY rowid",
            |r| {
                Ok(SizeChartRow {
                    category: r.get(0)?,
                    size: r.get(1)?,
                    chest_cm: r.get(2)?,
                    waist_cm: r.get(3)?,
                    hip_cm: r.get(4)?,
                    height_cm: r.get(5)?,
                    weight_kg: r.get(6)?,
                    foot_length_cm: r.get(7)?,
                })
            },
        )?,
        policies: all(conn, "SELECT topic, title, text FROM policies ORDER BY topic", |r| {
            Ok(Policy { topic: r.get(0)?, title: r.get(1)?, text: r.get(2)? })
        })?,
    })
}

/// The date the store's data describes (`meta.store_today`), e.g. `2025-06-20`.
pub fn store_today(conn: &Connection) -> rusqlite::Result<String> {
    conn.query_row("SELECT value FROM meta WHERE key = 'store_today'", [], |r| r.get(0))
}
