//! Deterministic grounding: the checkable facts in an answer (numbers and prices,
//! codes such as order ids, SKUs and tracking codes, dates, order statuses) and the
//! share of them that appear in the sources (retrieved contexts, tool results and the
//! customer's own words). Needs no judge, so CI can always run it.
//!
//! Facts are compared by meaning, not spelling: `249.000đ`, `249,000 VND` and `249k`
//! are one price; `23/06/2025`, `23/6` and `2025-06-23` are one date; `Đã hủy` and
//! `đã huỷ` are one status.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::vi_tokenize::normalize;

/// Order statuses of the store (`data/orders.csv`), each with its spellings
/// (old- and new-style tone placement). The first spelling is the canonical one.
pub const ORDER_STATUSES: &[&[&str]] =
    &[&["đang chuẩn bị"], &["đang giao"], &["đã giao"], &["đã hủy", "đã huỷ"], &["đang hoàn trả"], &["chờ xác nhận"]];

/// What kind of fact a [`Fact`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactKind {
    /// A number, price, quantity, percentage or measurement.
    Number,
    /// A calendar date.
    Date,
    /// A token mixing letters and digits: order id, SKU, tracking or discount code.
    Code,
    /// An order status.
    Status,
}

/// The comparable value of a fact.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FactKey {
    /// Value times 1000, rounded (so `1,5 triệu` and `1.500.000` agree).
    Number(i64),
    /// Day, month and year when given.
    Date(u32, u32, Option<u32>),
    /// Lowercase code.
    Code(String),
    /// Index into [`ORDER_STATUSES`].
    Status(usize),
}

/// One checkable fact found in a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    /// Its kind.
    pub kind: FactKind,
    /// The text as written (normalized).
    pub text: String,
    /// The value it is compared by.
    pub key: FactKey,
}

static ISO_DATE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b").unwrap());
static DMY_DATE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?\b").unwrap());
static HEIGHT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b(\d)m(\d{1,2})\b").unwrap());
static CODE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[a-z0-9]+").unwrap());
static MEASURE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\d+(k|tr|kg|cm|mm|m|g|đ|vnd|vnđ|h|p|ph|x|xl|xxl|s|l|ml)?$").unwrap());
static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\d+(?:[.,]\d+)*)(?:\s*(nghìn|ngàn|triệu|tr|k)\b)?").unwrap());

/// The facts in `text`, in order of kind (dates, codes, numbers, statuses).
pub fn extract_facts(text: &str) -> Vec<Fact> {
    let mut s = normalize(text);
    let mut facts = Vec::new();
    let blank =
        |s: &mut String, range: std::ops::Range<usize>| s.replace_range(range.clone(), &" ".repeat(range.len()));

    for caps in ISO_DATE.captures_iter(&s.clone()) {
        let (y, m, d) = (num(&caps[1]), num(&caps[2]), num(&caps[3]));
        if valid_date(d, m) {
            facts.push(Fact { kind: FactKind::Date, text: caps[0].into(), key: FactKey::Date(d, m, Some(y)) });
            blank(&mut s, caps.get(0).unwrap().range());
        }
    }
    for caps in DMY_DATE.captures_iter(&s.clone()) {
        let (d, m) = (num(&caps[1]), num(&caps[2]));
        let y = caps.get(3).map(|y| if y.as_str().len() == 2 { 2000 + num(y.as_str()) } else { num(y.as_str()) });
        if valid_date(d, m) {
            facts.push(Fact { kind: FactKind::Date, text: caps[0].into(), key: FactKey::Date(d, m, y) });
            blank(&mut s, caps.get(0).unwrap().range());
        }
    }
    for caps in HEIGHT.captures_iter(&s.clone()) {
        let cm = num(&caps[1]) * 100 + if caps[2].len() == 1 { num(&caps[2]) * 10 } else { num(&caps[2]) };
        facts.push(Fact { kind: FactKind::Number, text: caps[0].into(), key: FactKey::Number(cm as i64 * 1000) });
        blank(&mut s, caps.get(0).unwrap().range());
    }
    for m in CODE.find_iter(&s.clone()) {
        let tok = m.as_str();
        let has_letter = tok.bytes().any(|b| b.is_ascii_lowercase());
        let has_digit = tok.bytes().any(|b| b.is_ascii_digit());
        // Glued to a Vietnamese letter ("đ" in "249000đ") the token is a measure, not a code.
        let glued = s[m.end()..].chars().next().is_some_and(char::is_alphanumeric)
            || s[..m.start()].chars().next_back().is_some_and(char::is_alphanumeric);
        if has_letter && has_digit && tok.len() >= 4 && !MEASURE.is_match(tok) && !glued {
            facts.push(Fact { kind: FactKind::Code, text: tok.into(), key: FactKey::Code(tok.into()) });
            blank(&mut s, m.range());
        }
    }
    for caps in NUMBER.captures_iter(&s) {
        let Some(value) = parse_number(&caps[1]) else { continue };
        let scale = match caps.get(2).map(|m| m.as_str()) {
            Some("nghìn" | "ngàn" | "k") => 1e3,
            Some("triệu" | "tr") => 1e6,
            _ => 1.0,
        };
        let key = FactKey::Number((value * scale * 1000.0).round() as i64);
        facts.push(Fact { kind: FactKind::Number, text: caps[0].trim().into(), key });
    }
    for (i, spellings) in ORDER_STATUSES.iter().enumerate() {
        if let Some(sp) = spellings.iter().find(|sp| s.contains(*sp)) {
            facts.push(Fact { kind: FactKind::Status, text: (*sp).into(), key: FactKey::Status(i) });
        }
    }
    facts
}

fn num(s: &str) -> u32 {
    s.parse().unwrap_or(0)
}

fn valid_date(d: u32, m: u32) -> bool {
    (1..=31).contains(&d) && (1..=12).contains(&m)
}

/// Parses `1.250.000`, `1,250,000`, `1,5`, `3.14`, `42`: separators followed by
/// exactly three digits group thousands; a single other separator is a decimal point.
fn parse_number(s: &str) -> Option<f64> {
    let groups: Vec<&str> = s.split(['.', ',']).collect();
    if groups.len() > 1 && groups[1..].iter().all(|g| g.len() == 3) {
        return groups.concat().parse().ok();
    }
    if groups.len() == 2 {
        return format!("{}.{}", groups[0], groups[1]).parse().ok();
    }
    groups.first()?.parse().ok()
}

/// Whether `fact` is backed by one of `source_facts`.
fn supported(fact: &Fact, source_facts: &HashSet<FactKey>) -> bool {
    match &fact.key {
        FactKey::Date(d, m, y) => source_facts.iter().any(|k| match k {
            FactKey::Date(sd, sm, sy) => sd == d && sm == m && (y.is_none() || sy.is_none() || y == sy),
            _ => false,
        }),
        key => source_facts.contains(key),
    }
}

/// The facts of all `sources`, as comparable keys.
pub fn source_keys<'a>(sources: impl IntoIterator<Item = &'a str>) -> HashSet<FactKey> {
    sources.into_iter().flat_map(extract_facts).map(|f| f.key).collect()
}

/// How well an answer's facts are grounded in its sources.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Grounding {
    /// Facts found in the answer.
    pub facts: usize,
    /// The answer's facts that no source backs, as written.
    pub ungrounded: Vec<String>,
    /// Share of facts backed by a source; `None` when the answer states no fact.
    pub score: Option<f64>,
}

/// Grounds `answer` against `sources` (contexts, tool results, the customer's turns).
pub fn grounding<'a>(answer: &str, sources: impl IntoIterator<Item = &'a str>) -> Grounding {
    let keys = source_keys(sources);
    let facts = extract_facts(answer);
    let ungrounded: Vec<String> = facts.iter().filter(|f| !supported(f, &keys)).map(|f| f.text.clone()).collect();
    let score = (!facts.is_empty()).then(|| (facts.len() - ungrounded.len()) as f64 / facts.len() as f64);
    Grounding { facts: facts.len(), ungrounded, score }
}

/// Whether `text` states `fact`: as written (NFC, case- and space-insensitive), or,
/// when `fact` holds checkable facts, with every one of them present in `text`
/// (so `249.000đ` is found in "giá 249k").
pub fn states_fact(text: &str, fact: &str) -> bool {
    let squash = |s: &str| normalize(s).split_whitespace().collect::<Vec<_>>().join(" ");
    let (text_n, fact_n) = (squash(text), squash(fact));
    if fact_n.is_empty() || text_n.contains(&fact_n) {
        return true;
    }
    let wanted = extract_facts(fact);
    if wanted.is_empty() {
        return false;
    }
    let have: HashSet<FactKey> = extract_facts(text).into_iter().map(|f| f.key).collect();
    wanted.iter().all(|f| supported(f, &have))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<FactKey> {
        extract_facts(text).into_iter().map(|f| f.key).collect()
    }

    #[test]
    fn prices_agree_across_spellings() {
        let want = vec![FactKey::Number(249_000_000)];
        assert_eq!(keys("giá 249.000đ"), want);
        assert_eq!(keys("249,000 VND"), want);
        assert_eq!(keys("chỉ 249k thôi"), want);
        assert_eq!(keys("1,5 triệu"), vec![FactKey::Number(1_500_000_000)]);
    }

    #[test]
    fn codes_dates_and_statuses() {
        let f = extract_facts("Đơn DH250004 Đang giao qua mã JTGET7CG2N8E, dự kiến 23/06 ạ");
        let kinds: Vec<FactKind> = f.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [FactKind::Date, FactKind::Code, FactKind::Code, FactKind::Status]);
        assert_eq!(f[0].key, FactKey::Date(23, 6, None));
    }

    #[test]
    fn grounding_counts_unsupported_facts() {
        let ctx = "order_id DH250004 status Đang giao eta 2025-06-23 total_vnd 2916000";
        let g = grounding("Dạ đơn DH250004 đang giao, dự kiến 23/6, tổng 2.916.000đ ạ", [ctx]);
        assert_eq!((g.facts, g.score), (4, Some(1.0)));
        let g = grounding("Dạ đơn DH250004 đã giao ngày 22/6 ạ", [ctx]);
        assert_eq!(g.facts, 3);
        assert_eq!(g.ungrounded, ["22/6", "đã giao"]);
        assert!((g.score.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(grounding("Dạ em chào chị ạ", [ctx]).score, None);
    }

    #[test]
    fn height_and_measures_are_numbers() {
        assert_eq!(keys("cao 1m65 nặng 55kg"), vec![FactKey::Number(165_000), FactKey::Number(55_000)]);
    }

    #[test]
    fn states_fact_by_meaning() {
        assert!(states_fact("Dạ áo giá 249k ạ", "249.000đ"));
        assert!(states_fact("Đổi trả trong 14  NGÀY", "14 ngày"));
        assert!(!states_fact("Dạ áo giá 259k ạ", "249.000đ"));
        assert!(!states_fact("Dạ có ạ", "size M"));
    }
}
