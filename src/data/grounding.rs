//! Fact grounding: every fact an assistant turn states (money, dates, codes, other
//! numbers) must appear in the evidence before it: the tool results and the
//! customer's own messages of the same conversation.
//!
//! Facts are extracted the same way from both sides, so `249.000đ` in an answer
//! matches `"price_vnd": 249000` in a tool result, `23/06/2025` matches
//! `"eta": "2025-06-23"`. Numbers match literally (a customer's "1m65" does not
//! support an answer's "165"), so answers repeat figures as they were given.
//!
//! | fact | written | key |
//! |---|---|---|
//! | date | `23/06/2025`, `2025-06-23` | `2025-06-23` |
//! | money | `249.000đ`, `1.490.000 VND`, `500k` | `249000` |
//! | code | `DH250011`, `HELLOSUMMER`, `AT001`, `GHN8K3XQ2P` | uppercase text |
//! | number | `14`, `24.5`, `10%` | canonical decimal |

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// One fact stated in a text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fact {
    /// A calendar date, ISO `YYYY-MM-DD`.
    Date(String),
    /// An amount of money in VND.
    Money(i64),
    /// A code: order id, SKU, promotion code, tracking code.
    Code(String),
    /// Any other number, canonical (`14`, `24.5`).
    Number(String),
}

impl std::fmt::Display for Fact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fact::Date(d) => write!(f, "date {d}"),
            Fact::Money(m) => write!(f, "money {m} VND"),
            Fact::Code(c) => write!(f, "code {c}"),
            Fact::Number(n) => write!(f, "number {n}"),
        }
    }
}

static DATE_VN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b").unwrap());
static DATE_ISO: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b(\d{4})-(\d{2})-(\d{2})\b").unwrap());
static MONEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(\d{1,3}(?:\.\d{3})+)\s*(?:đ|đồng|vnd)?|\b(\d+)\s*(?:đ|đồng|vnd)\b|\b(\d+)\s*k\b").unwrap()
});
static CODE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b(?:[A-Z][A-Z0-9]{4,}|[A-Z]+\d+[A-Z0-9]*)\b").unwrap());
static NUMBER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d+(?:[.,]\d+)?").unwrap());

fn canonical_number(text: &str) -> String {
    let t = text.replace(',', ".");
    match t.parse::<f64>() {
        Ok(x) if x.fract() == 0.0 => format!("{}", x as i64),
        Ok(x) => format!("{x}"),
        Err(_) => t,
    }
}

/// Blanks the matched span so later patterns do not see its digits again.
fn blank(text: &mut String, start: usize, end: usize) {
    text.replace_range(start..end, &" ".repeat(end - start));
}

/// The facts stated in `text`.
pub fn facts(text: &str) -> Vec<Fact> {
    let mut out = Vec::new();
    let mut rest = text.to_string();
    for re in [&*DATE_VN, &*DATE_ISO] {
        let found: Vec<_> = re
            .captures_iter(&rest)
            .map(|c| (c.get(0).unwrap().range(), c))
            .map(|(r, c)| {
                let (a, b, y) = (c[1].to_string(), c[2].to_string(), c[3].to_string());
                (r, a, b, y)
            })
            .collect();
        for (r, a, b, c) in found {
            let iso = if a.len() == 4 { format!("{a}-{b}-{c}") } else { format!("{c}-{b:0>2}-{a:0>2}") };
            out.push(Fact::Date(iso));
            blank(&mut rest, r.start, r.end);
        }
    }
    let found: Vec<_> = MONEY
        .captures_iter(&rest)
        .map(|c| {
            let r = c.get(0).unwrap().range();
            let amount = if let Some(g) = c.get(1) {
                g.as_str().replace('.', "").parse::<i64>().ok()
            } else if let Some(g) = c.get(2) {
                g.as_str().parse::<i64>().ok()
            } else {
                c.get(3).and_then(|g| g.as_str().parse::<i64>().ok()).map(|k| k * 1000)
            };
            (r, amount)
        })
        .collect();
    for (r, amount) in found {
        if let Some(a) = amount {
            out.push(Fact::Money(a));
        }
        blank(&mut rest, r.start, r.end);
    }
    let found: Vec<_> = CODE.find_iter(&rest).map(|m| (m.range(), m.as_str().to_string())).collect();
    for (r, code) in found {
        out.push(Fact::Code(code));
        blank(&mut rest, r.start, r.end);
    }
    for m in NUMBER.find_iter(&rest) {
        out.push(Fact::Number(canonical_number(m.as_str())));
    }
    out
}

/// What a conversation has established so far.
#[derive(Debug, Default, Clone)]
pub struct Evidence {
    facts: HashSet<Fact>,
}

impl Evidence {
    /// Adds the facts of a text (a user message, a tool result's string).
    pub fn add_text(&mut self, text: &str) {
        for f in facts(text) {
            // A number given as money elsewhere may be restated bare, and vice versa.
            if let Fact::Money(m) = &f {
                self.facts.insert(Fact::Number(m.to_string()));
            }
            if let Fact::Number(n) = &f {
                if let Ok(m) = n.parse::<i64>() {
                    self.facts.insert(Fact::Money(m));
                }
            }
            self.facts.insert(f);
        }
        for f in facts(&text.to_uppercase()) {
            if matches!(f, Fact::Code(_)) {
                self.facts.insert(f);
            }
        }
    }

    /// Adds everything in a JSON value (a parsed tool result).
    pub fn add_json(&mut self, v: &Value) {
        match v {
            Value::Number(n) => self.add_text(&n.to_string()),
            Value::String(s) => self.add_text(s),
            Value::Array(a) => a.iter().for_each(|x| self.add_json(x)),
            Value::Object(o) => o.values().for_each(|x| self.add_json(x)),
            _ => {}
        }
    }

    /// Whether `fact` is established.
    pub fn supports(&self, fact: &Fact) -> bool {
        self.facts.contains(fact)
    }
}

/// The facts of each assistant turn that nothing before it supports, as
/// `(message index, fact)`. Evidence: user messages (with the passages retrieval puts
/// into them, [`crate::data::context`]) and tool results; not the system prompt.
pub fn ungrounded(messages: &[Value]) -> Vec<(usize, Fact)> {
    let mut evidence = Evidence::default();
    let mut bad = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let content = m.get("content").and_then(Value::as_str).unwrap_or("");
        match m.get("role").and_then(Value::as_str) {
            Some("user") => evidence.add_text(content),
            Some("tool") => match serde_json::from_str::<Value>(content) {
                Ok(v) => evidence.add_json(&v),
                Err(_) => evidence.add_text(content),
            },
            Some("assistant") => {
                for f in facts(content) {
                    if !evidence.supports(&f) {
                        bad.push((i, f));
                    }
                }
            }
            _ => {}
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extracts_each_kind_once() {
        let f = facts("Đơn DH250011 giá 1.490.000đ, giao 23/06/2025, còn 12 cái, giảm 10%, mã HELLOSUMMER, 500k");
        assert!(f.contains(&Fact::Code("DH250011".into())));
        assert!(f.contains(&Fact::Money(1490000)));
        assert!(f.contains(&Fact::Date("2025-06-23".into())));
        assert!(f.contains(&Fact::Number("12".into())));
        assert!(f.contains(&Fact::Number("10".into())));
        assert!(f.contains(&Fact::Code("HELLOSUMMER".into())));
        assert!(f.contains(&Fact::Money(500000)));
        assert_eq!(f.len(), 7, "{f:?}");
    }

    #[test]
    fn flags_a_figure_the_tools_did_not_give() {
        let tool = json!({"status": "Đang giao", "eta": "2025-06-23", "total_vnd": 249000}).to_string();
        let conv = |answer: &str| {
            vec![
                json!({"role": "user", "content": "đơn dh250011 sđt 0912345678"}),
                json!({"role": "tool", "content": tool}),
                json!({"role": "assistant", "content": answer}),
            ]
        };
        assert!(ungrounded(&conv("Dạ đơn DH250011 đang giao, dự kiến 23/06/2025, tổng 249.000đ ạ.")).is_empty());
        let bad = ungrounded(&conv("Dạ đơn DH250011 dự kiến 24/06/2025, tổng 259.000đ ạ."));
        assert_eq!(bad, vec![(2, Fact::Date("2025-06-24".into())), (2, Fact::Money(259000))]);
    }

    /// Passages retrieved into the question support an answer; the system prompt's own
    /// words ("4 số cuối") do not.
    #[test]
    fn retrieved_passages_are_evidence() {
        use crate::data::context::{with_context, CONTEXT_HEADING};
        let conv = |passages: &[&str], answer: &str| {
            vec![
                json!({"role": "system", "content": crate::data::SYSTEM_PROMPT}),
                json!({"role": "user", "content": with_context("váy caro giá sao", CONTEXT_HEADING, passages)}),
                json!({"role": "assistant", "content": answer}),
            ]
        };
        let answer = "Dạ chân váy caro giá 489.000đ ạ.";
        assert!(ungrounded(&conv(&["Chân váy chữ A kẻ caro. Giá: 489.000đ"], answer)).is_empty());
        assert_eq!(ungrounded(&conv(&[], answer)), vec![(2, Fact::Money(489000))]);
        assert_eq!(ungrounded(&conv(&[], "Dạ em cần 4 số cuối ạ.")), vec![(2, Fact::Number("4".into()))]);
    }
}
