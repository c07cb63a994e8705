//! The one fact extractor: the checkable facts in a text (numbers and prices,
//! heights, codes such as order ids, SKUs and tracking codes, dates, order statuses),
//! each with the key it is compared by. [`super::grounding`] checks an answer's facts
//! against its evidence with it; the eval's `must_include` uses [`states_fact`].
//!
//! A money fact is a number written as money: with a currency (`đ`, `đồng`, `VND`), a
//! scale (`k`, `nghìn`, `triệu`) or thousands grouped by dots. It keeps a number's key,
//! so `"price_vnd": 249000` backs `249.000đ`; the kind tells checks that look only at
//! prices which numbers are.
//!
//! Facts are compared by meaning, not spelling: `249.000đ`, `249,000 VND` and `249k`
//! are one price; `23/06/2025`, `23/6` and `2025-06-23` are one date; `1m65` is 165
//! (cm); `Đã hủy` and `đã huỷ` are one status.
//!
//! | fact | written | key |
//! |---|---|---|
//! | number | `14`, `10%`, `24,5`, `1m65` | value x 1000 |
//! | money | `249.000đ`, `249k`, `1,5 triệu`, `1.490.000`, `500000 VND` | value x 1000 |
//! | date | `23/06/2025`, `23/6`, `2025-06-23` | day, month, year if given |
//! | code | `DH250011`, `AT001`, `GHN8K3XQ2P` (letters and digits) | lowercase |
//! | status | `Đang giao`, `đã huỷ` | index into [`ORDER_STATUSES`] |

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::text::normalize;

/// Order statuses of the store, each with its spellings (old- and new-style tone
/// placement), lowercase. The first spelling is the canonical one; the order and set
/// are the store's (`crate::data::store::ORDER_STATUSES`, the values of
/// `data/orders.csv`'s `status`), which a test in `data` holds this list to.
pub const ORDER_STATUSES: &[&[&str]] =
    &[&["đang chuẩn bị"], &["đang giao"], &["đã giao"], &["đã hủy", "đã huỷ"], &["đang hoàn trả"]];

/// What kind of fact a [`Fact`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactKind {
    /// A number, quantity, percentage or measurement.
    Number,
    /// A number written as money (see the module doc); keyed as a number.
    Money,
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
    /// Value times 1000, rounded (so `1,5 triệu` and `1.500.000` agree), of a number
    /// or an amount of money.
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
    LazyLock::new(|| Regex::new(r"^\d+(k|tr|kg|cm|mm|m|g|đ|d|vnd|vnđ|h|p|ph|x|xl|xxl|s|l|ml)?$").unwrap());
static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\d+(?:[.,]\d+)*)(?:\s*(nghìn|ngàn|triệu|tr|k)\b)?").unwrap());
/// A currency right after a number: `249000đ`, `249.000 đồng`, `500000 VND`, and
/// typed without marks, `920.000d`.
static CURRENCY: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\s*(?:đồng|đ|vnđ|vnd|dong|d)\b").unwrap());
/// Thousands grouped by dots, how prices are written: `1.490.000`.
static DOT_GROUPED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\d{1,3}(?:\.\d{3})+$").unwrap());

/// The facts in `text`, in order of kind (dates, codes, numbers and money, statuses).
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
        let is_money = caps.get(2).is_some()
            || DOT_GROUPED.is_match(&caps[1])
            || CURRENCY.is_match(&s[caps.get(0).unwrap().end()..]);
        let kind = if is_money { FactKind::Money } else { FactKind::Number };
        facts.push(Fact { kind, text: caps[0].trim().into(), key });
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
pub fn supported(fact: &Fact, source_facts: &HashSet<FactKey>) -> bool {
    match &fact.key {
        FactKey::Date(d, m, y) => source_facts.iter().any(|k| match k {
            FactKey::Date(sd, sm, sy) => sd == d && sm == m && (y.is_none() || sy.is_none() || y == sy),
            _ => false,
        }),
        key => source_facts.contains(key),
    }
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

    /// Each kind once, as synth's filter reads them (moved from `data::grounding`, whose
    /// extractor this one replaced): the letter-only code is the grounding check's.
    #[test]
    fn extracts_each_kind_once() {
        let text = "Đơn DH250011 giá 1.490.000đ, giao 23/06/2025, còn 12 cái, giảm 10%, mã HELLOSUMMER, 500k";
        let f: Vec<(FactKind, FactKey)> = extract_facts(text).into_iter().map(|f| (f.kind, f.key)).collect();
        assert!(f.contains(&(FactKind::Code, FactKey::Code("dh250011".into()))));
        assert!(f.contains(&(FactKind::Money, FactKey::Number(1_490_000_000))));
        assert!(f.contains(&(FactKind::Date, FactKey::Date(23, 6, Some(2025)))));
        assert!(f.contains(&(FactKind::Number, FactKey::Number(12_000))));
        assert!(f.contains(&(FactKind::Number, FactKey::Number(10_000))));
        let letter: Vec<&str> = super::super::grounding::letter_codes(text).collect();
        assert_eq!(letter, ["HELLOSUMMER"]);
        assert!(f.contains(&(FactKind::Money, FactKey::Number(500_000_000))));
        assert_eq!(f.len() + letter.len(), 7, "{f:?}");
    }

    #[test]
    fn money_is_a_number_written_as_money() {
        let kinds = |text: &str| extract_facts(text).into_iter().map(|f| f.kind).collect::<Vec<_>>();
        assert_eq!(kinds("giá 249000đ, 249.000 đồng, 500000 VND"), [FactKind::Money; 3]);
        assert_eq!(kinds("1.490.000 hoặc 249k hoặc 1,5 triệu"), [FactKind::Money; 3]);
        assert_eq!(kinds("còn 12 cái, 249000 đơn"), [FactKind::Number; 2]);
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
