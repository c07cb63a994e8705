//! The grounding verifier: every checkable fact of an answer (order status,
//! price, quantity, date, order id, SKU, discount code, phone number) must appear
//! in the evidence of its turn: the tool results, the retrieved context, the
//! policies and the system prompt. Facts are extracted and compared by meaning by
//! [`crate::eval::grounding`] (`249.000đ` = `249k` = `249000`); discount codes
//! without digits (`HELLOSUMMER`) are checked here as uppercase words.
//!
//! The customer's own words are not evidence: an answer must not confirm a status
//! or price just because the customer asserted it.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::eval::grounding::grounding;

/// Uppercase words that may be codes (`HELLOSUMMER`, `FREESHIP50`).
static CAPS_CODE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b[A-Z][A-Z0-9]{4,}\b").expect("code regex"));

/// The verifier's judgement of one answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Checkable facts in the answer.
    pub facts: usize,
    /// The facts no evidence backs, as written.
    pub ungrounded: Vec<String>,
}

impl Verdict {
    /// Whether the answer may be delivered.
    pub fn grounded(&self) -> bool {
        self.ungrounded.is_empty()
    }
}

/// Checks `answer` against `evidence` (texts: tool results as JSON, context chunks,
/// policies, the system prompt).
pub fn verify(answer: &str, evidence: &[String]) -> Verdict {
    let g = grounding(answer, evidence.iter().map(String::as_str));
    let mut ungrounded = g.ungrounded;
    let mut facts = g.facts;
    let haystack: String = evidence.iter().map(|e| e.to_uppercase()).collect::<Vec<_>>().join("\n");
    for m in CAPS_CODE.find_iter(answer) {
        // Codes with digits were already checked by the fact extractor.
        if m.as_str().bytes().any(|b| b.is_ascii_digit()) {
            continue;
        }
        facts += 1;
        let found = haystack.match_indices(m.as_str()).any(|(i, w)| {
            let before = haystack[..i].chars().next_back();
            let after = haystack[i + w.len()..].chars().next();
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
        });
        if !found {
            ungrounded.push(m.as_str().to_string());
        }
    }
    Verdict { facts, ungrounded }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_status_price_or_code_is_caught() {
        let evidence = vec![
            r#"{"order_id": "DH250004", "status": "Đang giao", "eta": "2025-06-23", "total_vnd": 2916000}"#.to_string(),
            r#"{"promotions": [{"code": "HELLOSUMMER", "discount_pct": 10}]}"#.to_string(),
        ];
        let ok = verify(
            "Dạ đơn DH250004 đang giao, dự kiến 23/06/2025, tổng 2.916.000đ ạ. Mã HELLOSUMMER giảm 10%.",
            &evidence,
        );
        assert!(ok.grounded(), "{ok:?}");
        assert_eq!(ok.facts, 6);
        let bad = verify("Dạ đơn DH250004 đã giao, tổng 2.900.000đ, dùng mã SUMMER ạ.", &evidence);
        assert_eq!(bad.ungrounded, ["2.900.000", "đã giao", "SUMMER"]);
    }
}
