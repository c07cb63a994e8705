//! Reading the store's catalog (CSV through polars, JSON array or JSONL) and its
//! policy / FAQ Markdown files.
//!
//! A catalog row maps to a [`Product`] through [`ColumnMap`] (the `[columns]` table of
//! `configs/catalog.toml`): `sku`, `name` and `price_vnd` are required; `category`,
//! `sizes`, `colors` (lists split on `,`, `;` or `|`), `stock`, `description` and `url`
//! are optional. Prices are read as Vietnamese write them: `450000`, `450.000`,
//! `450,000đ`, `450.000 VND`. Rows with a missing SKU or an unparseable price are
//! returned as [`BadRow`]s (file:line); a duplicate SKU is an error naming both rows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::product::Product;
use crate::{Error, Result};

/// Catalog column names, by field (`configs/catalog.toml` `[columns]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColumnMap {
    /// Stock-keeping unit, unique per row (required).
    pub sku: String,
    /// Product name (required).
    pub name: String,
    /// Price in dong (required).
    pub price_vnd: String,
    /// Category ("Áo khoác nữ").
    pub category: String,
    /// Available sizes, a list.
    pub sizes: String,
    /// Available colours, a list.
    pub colors: String,
    /// Units in stock.
    pub stock: String,
    /// Free-text description.
    pub description: String,
    /// Material ("cotton 100%").
    pub material: String,
    /// Product page.
    pub url: String,
}

impl Default for ColumnMap {
    fn default() -> Self {
        ColumnMap {
            sku: "sku".into(),
            name: "name".into(),
            price_vnd: "price_vnd".into(),
            category: "category".into(),
            sizes: "sizes".into(),
            colors: "colors".into(),
            stock: "stock".into(),
            description: "description".into(),
            material: "material".into(),
            url: "url".into(),
        }
    }
}

/// A row that could not be read: where and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BadRow {
    /// The catalog file.
    pub path: PathBuf,
    /// 1-based line of the row.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for BadRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
    }
}

/// The readable products and the bad rows of a catalog.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    /// Products in file order.
    pub products: Vec<Product>,
    /// Rows skipped, with the reason.
    pub bad: Vec<BadRow>,
}

/// Raw text fields of one row, by field name, with the row's line.
type RawRow = (usize, HashMap<&'static str, String>);

/// Reads a catalog file: `.csv`, `.json` (an array of objects) or `.jsonl`.
pub fn read_catalog(path: &Path, columns: &ColumnMap) -> Result<Catalog> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    let rows = match ext.as_str() {
        "csv" => read_csv_rows(path, columns)?,
        "json" | "jsonl" | "ndjson" => read_json_rows(path, columns, ext != "json")?,
        _ => {
            return Err(Error::bad_input(path, None, "unknown catalog format: use .csv, .json (array) or .jsonl"));
        }
    };
    let mut catalog = Catalog::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (line, fields) in rows {
        match product_from(path, line, &fields) {
            Ok(p) => {
                if let Some(first) = seen.insert(p.sku.clone(), line) {
                    return Err(Error::bad_input(
                        path,
                        Some(line),
                        format!("duplicate SKU {:?}: also on line {first}; SKUs must be unique", p.sku),
                    ));
                }
                catalog.products.push(p);
            }
            Err(message) => catalog.bad.push(BadRow { path: path.to_path_buf(), line, message }),
        }
    }
    Ok(catalog)
}

const FIELDS: [&str; 10] =
    ["sku", "name", "price_vnd", "category", "sizes", "colors", "stock", "description", "material", "url"];

fn column_of<'a>(columns: &'a ColumnMap, field: &str) -> &'a str {
    match field {
        "sku" => &columns.sku,
        "name" => &columns.name,
        "price_vnd" => &columns.price_vnd,
        "category" => &columns.category,
        "sizes" => &columns.sizes,
        "colors" => &columns.colors,
        "stock" => &columns.stock,
        "description" => &columns.description,
        "material" => &columns.material,
        _ => &columns.url,
    }
}

fn read_csv_rows(path: &Path, columns: &ColumnMap) -> Result<Vec<RawRow>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let lines: Vec<usize> =
        crate::csv_lines::csv_records(&bytes).into_iter().filter(|(_, blank)| !blank).map(|(start, _)| start).collect();
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0)) // every column as text; we parse and report ourselves
        .into_reader_with_file_handle(std::io::Cursor::new(bytes))
        .finish()
        .map_err(|e| Error::bad_input(path, None, format!("not a readable CSV: {e}")))?;
    let mut cols: Vec<(&'static str, Vec<Option<String>>)> = Vec::new();
    for field in FIELDS {
        let name = column_of(columns, field);
        match df.column(name) {
            Ok(col) => {
                let s = col.str().map_err(|e| Error::bad_input(path, Some(1), format!("column `{name}`: {e}")))?;
                cols.push((field, s.iter().map(|v| v.map(str::to_string)).collect()));
            }
            Err(_) if matches!(field, "sku" | "name" | "price_vnd") => {
                return Err(Error::bad_input(
                    path,
                    Some(1),
                    format!(
                        "no `{name}` column (the {field} field); fix the header or [columns] in configs/catalog.toml"
                    ),
                ));
            }
            Err(_) => {}
        }
    }
    let counts_agree = lines.len() == df.height() + 1;
    Ok((0..df.height())
        .map(|k| {
            let line = if counts_agree { lines[k + 1] } else { k + 2 };
            let fields = cols.iter().filter_map(|(f, v)| v[k].clone().map(|s| (*f, s))).collect();
            (line, fields)
        })
        .collect())
}

fn read_json_rows(path: &Path, columns: &ColumnMap, lines: bool) -> Result<Vec<RawRow>> {
    let objects: Vec<(usize, Value)> = if lines {
        crate::jsonl::read_jsonl(path, |e| format!("not JSON: {e}"))?
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| Error::bad_input(path, Some(e.line()), e.to_string()))?;
        let Value::Array(items) = v else {
            return Err(Error::bad_input(path, None, "a .json catalog must be an array of objects (or use .jsonl)"));
        };
        items.into_iter().enumerate().map(|(i, v)| (i + 1, v)).collect()
    };
    objects
        .into_iter()
        .map(|(line, v)| {
            let Value::Object(obj) = v else {
                return Err(Error::bad_input(path, Some(line), "a catalog row must be a JSON object"));
            };
            let fields = FIELDS
                .iter()
                .filter_map(|&f| {
                    let s = match obj.get(column_of(columns, f))? {
                        Value::Null => return None,
                        Value::String(s) => s.clone(),
                        Value::Array(items) => items.iter().map(json_text).collect::<Vec<_>>().join(", "),
                        other => other.to_string(),
                    };
                    Some((f, s))
                })
                .collect();
            Ok((line, fields))
        })
        .collect()
}

fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn product_from(path: &Path, line: usize, f: &HashMap<&'static str, String>) -> std::result::Result<Product, String> {
    let text = |k: &str| f.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
    let sku = text("sku");
    if sku.is_empty() {
        return Err("missing SKU".into());
    }
    let raw_price = text("price_vnd");
    let price_vnd = parse_price_vnd(&raw_price).ok_or_else(|| format!("SKU {sku}: unparseable price {raw_price:?}"))?;
    let stock = match text("stock") {
        s if s.is_empty() => None,
        s => Some(s.parse::<i64>().map_err(|_| format!("SKU {sku}: stock {s:?} is not a whole number"))?),
    };
    let list = |k: &str| -> Vec<String> {
        text(k).split([',', ';', '|']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
    };
    Ok(Product {
        source: format!("{}:{line}", path.display()),
        name: text("name"),
        category: text("category"),
        price_vnd,
        sizes: list("sizes"),
        colors: list("colors"),
        stock,
        description: text("description"),
        material: text("material"),
        url: text("url"),
        sku,
    })
}

/// Parses a price in dong: digits with `.`/`,`/space thousands separators and an
/// optional `đ`, `₫`, `d`, `vnd`, `vnđ` suffix; "450k" means 450,000. `None` if not a price.
pub fn parse_price_vnd(raw: &str) -> Option<u64> {
    let s = raw.trim().to_lowercase();
    let s = ["vnđ", "vnd", "đồng", "dong", "₫", "đ", "d"]
        .iter()
        .fold(s, |s, suffix| s.strip_suffix(suffix).map(|r| r.trim_end().to_string()).unwrap_or(s));
    let (s, mult) = match s.strip_suffix('k') {
        Some(r) => (r.trim_end().to_string(), 1000),
        None => (s, 1),
    };
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | ' ')) {
        return None;
    }
    // A decimal part (".0", ".00") from spreadsheets: dong have no fraction.
    let s = match s.rsplit_once(['.', ',']) {
        Some((int, frac)) if frac.len() <= 2 && frac.chars().all(|c| c == '0') && mult == 1 => int.to_string(),
        _ => s,
    };
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    digits.parse::<u64>().ok().map(|v| v * mult)
}

/// Reads a stock file (CSV with `sku` and `qty` columns, one row per variant) into
/// units in stock per SKU, summed over its rows.
pub fn read_stock(path: &Path) -> Result<HashMap<String, i64>> {
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .map_err(|e| Error::bad_input(path, None, format!("not a readable CSV: {e}")))?;
    let col = |name: &str| {
        df.column(name)
            .and_then(|c| c.str().cloned())
            .map_err(|_| Error::bad_input(path, Some(1), format!("no `{name}` column (a stock file has sku,qty)")))
    };
    let (skus, qtys) = (col("sku")?, col("qty")?);
    let mut stock: HashMap<String, i64> = HashMap::new();
    for (k, (sku, qty)) in skus.iter().zip(qtys.iter()).enumerate() {
        let (Some(sku), Some(qty)) = (sku, qty) else { continue };
        let qty: i64 = qty
            .trim()
            .parse()
            .map_err(|_| Error::bad_input(path, Some(k + 2), format!("qty {qty:?} is not a whole number")))?;
        *stock.entry(sku.trim().to_string()).or_default() += qty;
    }
    Ok(stock)
}

/// One section of a policy or FAQ Markdown file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicySection {
    /// `file-stem#heading-slug` (`doi-tra#dieu-kien-doi-tra`), stable across runs.
    pub id: String,
    /// The file.
    pub source: String,
    /// Headings from the file's top down to this section, joined with " > ".
    pub title: String,
    /// The section's text (heading line excluded).
    pub text: String,
}

/// Reads every `*.md` file under `dir` (sorted, non-recursive), one section per heading.
pub fn read_policies(dir: &Path) -> Result<Vec<PolicySection>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| Error::io(&f, e))?;
        out.extend(split_markdown(&f, &text));
    }
    Ok(out)
}

/// Splits Markdown by ATX headings (`#`..`######`, outside code fences).
pub fn split_markdown(path: &Path, text: &str) -> Vec<PolicySection> {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut sections = Vec::new();
    let mut trail: Vec<(usize, String)> = Vec::new();
    let mut body = String::new();
    let mut used: HashMap<String, usize> = HashMap::new();
    let mut in_fence = false;
    let mut flush = |trail: &[(usize, String)], body: &mut String| {
        let text = body.trim().to_string();
        body.clear();
        if text.is_empty() {
            return;
        }
        let title = trail.iter().map(|(_, h)| h.as_str()).collect::<Vec<_>>().join(" > ");
        let base = trail.last().map(|(_, h)| slug(h)).filter(|s| !s.is_empty()).unwrap_or_else(|| "intro".into());
        let n = used.entry(base.clone()).or_default();
        *n += 1;
        let anchor = if *n == 1 { base } else { format!("{base}-{n}") };
        sections.push(PolicySection {
            id: format!("{stem}#{anchor}"),
            source: path.display().to_string(),
            title,
            text,
        });
    };
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        let level = line.chars().take_while(|&c| c == '#').count();
        if !in_fence && (1..=6).contains(&level) && line[level..].starts_with(' ') {
            flush(&trail, &mut body);
            trail.retain(|(l, _)| *l < level);
            trail.push((level, line[level..].trim().trim_end_matches('#').trim().to_string()));
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    flush(&trail, &mut body);
    sections
}

/// A heading as a URL anchor: diacritics folded, lowercase, words joined by `-`.
pub fn slug(heading: &str) -> String {
    super::text::folded_syllables(heading).join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_as_vietnamese_write_them() {
        for (raw, want) in [
            ("450000", Some(450_000)),
            ("450.000", Some(450_000)),
            ("450,000đ", Some(450_000)),
            ("1.250.000 VND", Some(1_250_000)),
            ("450k", Some(450_000)),
            ("450000.0", Some(450_000)),
            ("₫ 12", None),
            ("", None),
            ("liên hệ", None),
            ("12a", None),
        ] {
            assert_eq!(parse_price_vnd(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn markdown_sections_by_heading_with_stable_ids() {
        let md = "# Đổi trả\nintro text\n## Điều kiện đổi trả\nTrong 7 ngày.\n```\n# not a heading\n```\n## Phí\nMiễn phí.\n";
        let s = split_markdown(Path::new("data/policies/doi-tra.md"), md);
        let ids: Vec<_> = s.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["doi-tra#doi-tra", "doi-tra#dieu-kien-doi-tra", "doi-tra#phi"]);
        assert_eq!(s[1].title, "Đổi trả > Điều kiện đổi trả");
        assert!(s[1].text.contains("# not a heading"));
    }
}
