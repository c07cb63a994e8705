//! The grounding verifier: every checkable fact of an answer (order status,
//! price, quantity, date, order id, SKU, discount code, phone number) must appear
//! in the evidence of its turn: the tool results, the retrieved context, the
//! policies and the system prompt. The check is the conversation core's
//! ([`crate::conversation::grounding`]) under [`EvidencePolicy::SERVING_VERIFIER`]:
//! facts compared by meaning (`249.000đ` = `249k` = `249000`), discount codes
//! without digits (`HELLOSUMMER`) as uppercase words.
//!
//! The customer's own words are not evidence: an answer must not confirm a status
//! or price just because the customer asserted it.

use serde::Serialize;

use crate::conversation::{check, Evidence, EvidencePolicy};

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

/// Checks `answer` against this turn's `evidence` (tool results as JSON, context
/// chunks, policies, the system prompt), under the serving policy.
pub fn verify(answer: &str, evidence: &[Evidence]) -> Verdict {
    let g = check(answer, evidence, &EvidencePolicy::SERVING_VERIFIER);
    Verdict { facts: g.facts, ungrounded: g.ungrounded }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_status_price_or_code_is_caught() {
        let evidence = [
            r#"{"order_id": "DH250004", "status": "Đang giao", "eta": "2025-06-23", "total_vnd": 2916000}"#,
            r#"{"promotions": [{"code": "HELLOSUMMER", "discount_pct": 10}]}"#,
        ]
        .map(|text| Evidence::new(crate::conversation::Source::ToolResult, text));
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
