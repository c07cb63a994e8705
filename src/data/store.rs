//! The store's data model and its loading from the shipped files in `data/`:
//! `catalog.csv`, `stock.csv`, `orders.csv`, `order_items.csv`, `promotions.csv`,
//! `size_charts.csv` and `policies/*.md`.
//!
//! Loading checks what the tools rely on and names `file:line: field` on any
//! violation: unique keys, integers where integers belong, every stock row and order
//! item referencing a catalog SKU with one of its sizes and colours, every order's
//! `total_vnd` equal to the sum of `qty * price_vnd` over its items. Multi-valued
//! catalog fields (`sizes`, `colors`) are `|`-separated.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::product::Product;
use crate::{Error, Result};

/// The order statuses the store uses (issue 6), in lifecycle order.
pub const ORDER_STATUSES: [&str; 5] = ["Đang chuẩn bị", "Đang giao", "Đã giao", "Đã hủy", "Đang hoàn trả"];

/// Units in stock of one SKU in one size and colour (`stock.csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct StockRow {
    /// Product SKU.
    pub sku: String,
    /// Size.
    pub size: String,
    /// Colour.
    pub color: String,
    /// Units in stock.
    pub qty: i64,
}

/// One customer order (`orders.csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// Order id, in the shop's own format (`#100234`, `SO-2026-0042`, ...).
    pub order_id: String,
    /// Customer's (invented) name.
    pub customer_name: String,
    /// Customer's (invented) phone number.
    pub customer_phone: String,
    /// Delivery city or province.
    pub city: String,
    /// One of [`ORDER_STATUSES`].
    pub status: String,
    /// Expected (or actual, once delivered) delivery date `YYYY-MM-DD`; empty when cancelled.
    pub eta: String,
    /// Carrier; empty when cancelled.
    pub carrier: String,
    /// Carrier tracking code; empty before hand-over and when cancelled.
    pub tracking_code: String,
    /// Payment method (COD, bank transfer, e-wallet).
    pub payment_method: String,
    /// Order total in VND (sum of its items).
    pub total_vnd: i64,
    /// Creation time `YYYY-MM-DD HH:MM`.
    pub created_at: String,
}

/// One line of an order (`order_items.csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    /// Order id.
    pub order_id: String,
    /// Product SKU.
    pub sku: String,
    /// Size.
    pub size: String,
    /// Colour.
    pub color: String,
    /// Units ordered.
    pub qty: i64,
    /// Unit price in VND.
    pub price_vnd: i64,
}

/// A promotion code (`promotions.csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct Promotion {
    /// The code the customer types, e.g. `HELLOSUMMER`.
    pub code: String,
    /// What it gives, in Vietnamese.
    pub description: String,
    /// Discount in percent.
    pub discount_pct: i64,
    /// Minimum order value in VND.
    pub min_order_vnd: i64,
    /// First valid day `YYYY-MM-DD`.
    pub valid_from: String,
    /// Last valid day `YYYY-MM-DD`.
    pub valid_to: String,
}

/// One size of a category's size chart (`size_charts.csv`). Measurements are
/// ranges `a-b` as written in the chart; empty where they do not apply.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeChartRow {
    /// Category, e.g. `áo thun`.
    pub category: String,
    /// Size.
    pub size: String,
    /// Chest in cm.
    pub chest_cm: String,
    /// Waist in cm.
    pub waist_cm: String,
    /// Hip in cm.
    pub hip_cm: String,
    /// Height in cm.
    pub height_cm: String,
    /// Weight in kg.
    pub weight_kg: String,
    /// Foot length in cm (shoes).
    pub foot_length_cm: String,
}

/// A policy document (`policies/<topic>.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// File stem, e.g. `doi-tra`.
    pub topic: String,
    /// The first `# ` heading.
    pub title: String,
    /// The whole Markdown text.
    pub text: String,
}

/// The whole store, as loaded from `data/` or from the SQLite database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Store {
    /// Catalog, in file order.
    pub products: Vec<Product>,
    /// Stock rows.
    pub stock: Vec<StockRow>,
    /// Orders.
    pub orders: Vec<Order>,
    /// Order lines.
    pub order_items: Vec<OrderItem>,
    /// Promotions.
    pub promotions: Vec<Promotion>,
    /// Size charts.
    pub size_charts: Vec<SizeChartRow>,
    /// Policies, sorted by topic.
    pub policies: Vec<Policy>,
}

/// Parses a `|`-separated list field.
pub fn split_list(field: &str) -> Vec<String> {
    field.split('|').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// One CSV row with its file and line, for `file:line: field` errors.
struct Row<'a> {
    path: &'a Path,
    line: usize,
    headers: &'a HashMap<String, usize>,
    record: csv::StringRecord,
}

impl Row<'_> {
    fn err(&self, field: &str, msg: impl std::fmt::Display) -> Error {
        Error::bad_input(self.path, Some(self.line), format!("field `{field}`: {msg}"))
    }

    fn text(&self, field: &str) -> Result<String> {
        let i = self.headers.get(field).ok_or_else(|| self.err(field, "column missing from the header"))?;
        Ok(self.record.get(*i).unwrap_or("").trim().to_string())
    }

    fn required(&self, field: &str) -> Result<String> {
        let v = self.text(field)?;
        if v.is_empty() {
            return Err(self.err(field, "must not be empty"));
        }
        Ok(v)
    }

    fn int(&self, field: &str) -> Result<i64> {
        let v = self.required(field)?;
        v.parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| self.err(field, format!("{v:?} is not a whole number ≥ 0")))
    }
}

/// Reads a CSV file with a header row; each row comes with its 1-based line number.
fn read_rows(path: &Path, mut each: impl FnMut(&Row) -> Result<()>) -> Result<()> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(path).map_err(|e| csv_error(path, e))?;
    let headers: HashMap<String, usize> = reader
        .headers()
        .map_err(|e| csv_error(path, e))?
        .iter()
        .enumerate()
        .map(|(i, h)| (h.trim().to_string(), i))
        .collect();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
        each(&Row { path, line, headers: &headers, record })?;
    }
    Ok(())
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    let line = e.position().map(|p| p.line() as usize);
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(path, io),
        kind => Error::bad_input(path, line, format!("malformed CSV: {kind:?}")),
    }
}

impl Store {
    /// Loads and checks the store from its directory of CSV and Markdown files.
    pub fn load_dir(dir: &Path) -> Result<Store> {
        let mut store = Store::default();
        let file = |name: &str| -> PathBuf { dir.join(name) };

        let catalog = file("catalog.csv");
        let mut skus: HashMap<String, usize> = HashMap::new();
        read_rows(&catalog, |r| {
            let p = Product {
                source: format!("{}:{}", r.path.display(), r.line),
                sku: r.required("sku")?,
                name: r.required("name")?,
                category: r.required("category")?,
                // `int` admits only whole numbers ≥ 0, so the cast is exact.
                price_vnd: r.int("price_vnd")? as u64,
                sizes: split_list(&r.required("sizes")?),
                colors: split_list(&r.required("colors")?),
                stock: None,
                material: r.text("material")?,
                description: r.text("description")?,
                url: r.text("url")?,
            };
            if skus.insert(p.sku.clone(), store.products.len()).is_some() {
                return Err(r.err("sku", format!("duplicate SKU {}", p.sku)));
            }
            store.products.push(p);
            Ok(())
        })?;
        let variant_check = |r: &Row, sku: &str, size: &str, color: &str| -> Result<()> {
            let Some(&i) = skus.get(sku) else {
                return Err(r.err("sku", format!("{sku} is not in catalog.csv")));
            };
            let p = &store.products[i];
            if !p.sizes.iter().any(|s| s == size) {
                return Err(r.err("size", format!("{sku} has no size {size:?} (sizes: {})", p.sizes.join("|"))));
            }
            if !p.colors.iter().any(|c| c == color) {
                return Err(r.err("color", format!("{sku} has no colour {color:?} (colors: {})", p.colors.join("|"))));
            }
            Ok(())
        };

        let stock_path = file("stock.csv");
        let mut stock_keys = HashSet::new();
        let mut stock = Vec::new();
        read_rows(&stock_path, |r| {
            let s = StockRow {
                sku: r.required("sku")?,
                size: r.required("size")?,
                color: r.required("color")?,
                qty: r.int("qty")?,
            };
            variant_check(r, &s.sku, &s.size, &s.color)?;
            if !stock_keys.insert((s.sku.clone(), s.size.clone(), s.color.clone())) {
                return Err(r.err("sku", format!("duplicate stock row {} {} {}", s.sku, s.size, s.color)));
            }
            stock.push(s);
            Ok(())
        })?;

        let orders_path = file("orders.csv");
        let mut order_lines: HashMap<String, (usize, usize)> = HashMap::new(); // id -> (index, line)
        let mut orders = Vec::new();
        read_rows(&orders_path, |r| {
            let o = Order {
                order_id: r.required("order_id")?,
                customer_name: r.required("customer_name")?,
                customer_phone: r.required("customer_phone")?,
                city: r.text("city")?,
                status: r.required("status")?,
                eta: r.text("eta")?,
                carrier: r.text("carrier")?,
                tracking_code: r.text("tracking_code")?,
                payment_method: r.text("payment_method")?,
                total_vnd: r.int("total_vnd")?,
                created_at: r.required("created_at")?,
            };
            if !ORDER_STATUSES.contains(&o.status.as_str()) {
                return Err(r.err("status", format!("{:?} is not one of {}", o.status, ORDER_STATUSES.join(", "))));
            }
            if order_lines.insert(o.order_id.clone(), (orders.len(), r.line)).is_some() {
                return Err(r.err("order_id", format!("duplicate order {}", o.order_id)));
            }
            orders.push(o);
            Ok(())
        })?;

        let items_path = file("order_items.csv");
        let mut sums: HashMap<String, i64> = HashMap::new();
        let mut items = Vec::new();
        read_rows(&items_path, |r| {
            let it = OrderItem {
                order_id: r.required("order_id")?,
                sku: r.required("sku")?,
                size: r.required("size")?,
                color: r.required("color")?,
                qty: r.int("qty")?,
                price_vnd: r.int("price_vnd")?,
            };
            if !order_lines.contains_key(&it.order_id) {
                return Err(r.err("order_id", format!("{} is not in orders.csv", it.order_id)));
            }
            variant_check(r, &it.sku, &it.size, &it.color)?;
            *sums.entry(it.order_id.clone()).or_default() += it.qty * it.price_vnd;
            items.push(it);
            Ok(())
        })?;
        for o in &orders {
            let sum = sums.get(&o.order_id).copied().unwrap_or(0);
            if sum != o.total_vnd {
                let line = order_lines[&o.order_id].1;
                let msg = format!("field `total_vnd`: {} is {} but its items sum to {sum}", o.order_id, o.total_vnd);
                return Err(Error::bad_input(&orders_path, Some(line), msg));
            }
        }
        store.stock = stock;
        store.orders = orders;
        store.order_items = items;

        let promos_path = file("promotions.csv");
        let mut codes = HashSet::new();
        read_rows(&promos_path, |r| {
            let p = Promotion {
                code: r.required("code")?,
                description: r.required("description")?,
                discount_pct: r.int("discount_pct")?,
                min_order_vnd: r.int("min_order_vnd")?,
                valid_from: r.required("valid_from")?,
                valid_to: r.required("valid_to")?,
            };
            if !(1..=100).contains(&p.discount_pct) {
                return Err(r.err("discount_pct", format!("{} is not a percentage in 1..=100", p.discount_pct)));
            }
            if !codes.insert(p.code.clone()) {
                return Err(r.err("code", format!("duplicate promotion code {}", p.code)));
            }
            store.promotions.push(p);
            Ok(())
        })?;

        read_rows(&file("size_charts.csv"), |r| {
            store.size_charts.push(SizeChartRow {
                category: r.required("category")?,
                size: r.required("size")?,
                chest_cm: r.text("chest_cm")?,
                waist_cm: r.text("waist_cm")?,
                hip_cm: r.text("hip_cm")?,
                height_cm: r.text("height_cm")?,
                weight_kg: r.text("weight_kg")?,
                foot_length_cm: r.text("foot_length_cm").unwrap_or_default(),
            });
            Ok(())
        })?;

        store.policies = load_policies(&dir.join("policies"))?;
        Ok(store)
    }

    /// The product with this SKU.
    pub fn product(&self, sku: &str) -> Option<&Product> {
        self.products.iter().find(|p| p.sku == sku)
    }

    /// The order with this id.
    pub fn order(&self, order_id: &str) -> Option<&Order> {
        self.orders.iter().find(|o| o.order_id == order_id)
    }
}

/// Reads every `*.md` file of `dir`, sorted by file name.
fn load_policies(dir: &Path) -> Result<Vec<Policy>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    paths.sort();
    let mut policies = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let title = text.lines().find_map(|l| l.strip_prefix("# ")).map(str::trim).unwrap_or("").to_string();
        if title.is_empty() {
            return Err(Error::bad_input(&path, Some(1), "a policy must start with a `# ` title"));
        }
        let topic = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        policies.push(Policy { topic, title, text });
    }
    if policies.is_empty() {
        return Err(Error::bad_input(dir, None, "no policies (*.md) found"));
    }
    Ok(policies)
}
