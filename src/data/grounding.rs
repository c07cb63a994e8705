//! Synth's grounding filter: every fact an assistant turn states (prices, dates,
//! codes, statuses, other numbers) must come from the turns before it that
//! [`EvidencePolicy::SYNTH_FILTER`] admits: the tool results and the customer's own
//! messages (with the passages retrieval puts into them, [`crate::data::passages`]),
//! never the system prompt.
//!
//! The facts and their matching are the conversation core's
//! ([`crate::conversation::facts`], [`crate::conversation::check`]), the same the eval
//! metric and the serving verifier use: `249.000đ` in an answer matches
//! `"price_vnd": 249000` in a tool result, `23/06` matches `"eta": "2025-06-23"`, and a
//! customer's "1m65" backs an answer's "165cm".

use serde_json::Value;

use crate::conversation::{check, Evidence, EvidencePolicy, Source};

/// The facts of each assistant turn that nothing before it supports, as
/// `(message index, fact as written)`. Evidence: the turns [`EvidencePolicy::SYNTH_FILTER`]
/// admits: user messages (with the passages retrieval puts into them,
/// [`crate::data::passages`]) and tool results; not the system prompt.
pub fn ungrounded(messages: &[Value]) -> Vec<(usize, String)> {
    let mut evidence = Vec::new();
    let mut bad = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let content = m.get("content").and_then(Value::as_str).unwrap_or("");
        let Some(role) = m.get("role").and_then(Value::as_str) else { continue };
        if role == "assistant" {
            let grounding = check(content, &evidence, &EvidencePolicy::SYNTH_FILTER);
            bad.extend(grounding.ungrounded.into_iter().map(|f| (i, f)));
        } else if let Some(source) = Source::of_role(role) {
            evidence.push(Evidence::new(source, content));
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        assert_eq!(bad, vec![(2, "24/06/2025".to_string()), (2, "259.000".to_string())]);
    }

    /// The core's order statuses are the store's, in its order.
    #[test]
    fn core_statuses_are_the_stores() {
        use crate::conversation::facts::ORDER_STATUSES;
        use crate::conversation::text::normalize;
        let core: Vec<&str> = ORDER_STATUSES.iter().map(|s| s[0]).collect();
        let store: Vec<String> = crate::data::store::ORDER_STATUSES.iter().map(|s| normalize(s)).collect();
        assert_eq!(core, store);
    }

    /// Passages retrieved into the question support an answer; the system prompt's own
    /// words ("4 số cuối") do not.
    #[test]
    fn retrieved_passages_are_evidence() {
        use crate::data::passages::{with_context, CONTEXT_HEADING};
        let conv = |passages: &[&str], answer: &str| {
            vec![
                json!({"role": "system", "content": crate::data::SYSTEM_PROMPT}),
                json!({"role": "user", "content": with_context("váy caro giá sao", CONTEXT_HEADING, passages)}),
                json!({"role": "assistant", "content": answer}),
            ]
        };
        let answer = "Dạ chân váy caro giá 489.000đ ạ.";
        assert!(ungrounded(&conv(&["Chân váy chữ A kẻ caro. Giá: 489.000đ"], answer)).is_empty());
        assert_eq!(ungrounded(&conv(&[], answer)), vec![(2, "489.000".to_string())]);
        assert_eq!(ungrounded(&conv(&[], "Dạ em cần 4 số cuối ạ.")), vec![(2, "4".to_string())]);
    }
}
