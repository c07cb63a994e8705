//! Per-answer checks and their aggregates: refusals (precision and recall), tool
//! calls (right tool, right arguments), `must_include` coverage, forbidden facts.
//!
//! Tool calls arrive either as OpenAI `tool_calls` or, from a server without a tool
//! parser, as hermes text, which [`crate::conversation::parse_tool_calls`] reads.

use serde::{Deserialize, Serialize};

use crate::conversation::text::normalize;
use crate::conversation::ToolCall;

/// Whether `actual` is the `expected` call: same name, same argument keys, and equal
/// values (strings compared NFC-, case- and surrounding-space-insensitively, numbers
/// by value, so `"order_id": "dh250004 "` matches `"DH250004"` and `170` matches `170.0`).
pub fn tool_call_matches(expected: &ToolCall, actual: &ToolCall) -> bool {
    expected.name == actual.name && values_match(&expected.arguments, &actual.arguments)
}

fn values_match(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (a, b) {
        (V::String(x), V::String(y)) => normalize(x.trim()) == normalize(y.trim()),
        (V::Number(x), V::Number(y)) => x.as_f64() == y.as_f64(),
        // A number sent as a string ("170") still names the same value.
        (V::Number(x), V::String(y)) | (V::String(y), V::Number(x)) => y.trim().parse::<f64>().ok() == x.as_f64(),
        (V::Object(x), V::Object(y)) => {
            let present = |m: &serde_json::Map<String, V>| m.iter().filter(|(_, v)| !v.is_null()).count();
            present(x) == present(y)
                && x.iter().filter(|(_, v)| !v.is_null()).all(|(k, v)| y.get(k).is_some_and(|w| values_match(v, w)))
        }
        (V::Array(x), V::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(v, w)| values_match(v, w)),
        _ => a == b,
    }
}

/// Whether `answer` refuses: it contains one of `markers` (NFC, case-insensitive).
pub fn is_refusal(answer: &str, markers: &[String]) -> bool {
    let text = normalize(answer);
    markers.iter().any(|m| !m.trim().is_empty() && text.contains(&normalize(m.trim())))
}

/// Phrases that mark a polite refusal in the store's Vietnamese (configurable in
/// `configs/eval.toml` as `refusal_markers`).
pub const DEFAULT_REFUSAL_MARKERS: &[&str] = &[
    "ngoài phạm vi",
    "không thể hỗ trợ",
    "không hỗ trợ được",
    "chỉ hỗ trợ",
    "chỉ có thể hỗ trợ",
    "không thể cung cấp",
    "không được phép",
    "không thể chia sẻ",
    "không thể giúp",
    "xin phép từ chối",
];

/// Counts of a binary decision against the truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BinaryCounts {
    /// Predicted yes, truly yes.
    pub true_positive: usize,
    /// Predicted yes, truly no.
    pub false_positive: usize,
    /// Predicted no, truly yes.
    pub false_negative: usize,
    /// Predicted no, truly no.
    pub true_negative: usize,
}

impl BinaryCounts {
    /// Adds one decision.
    pub fn add(&mut self, predicted: bool, truth: bool) {
        match (predicted, truth) {
            (true, true) => self.true_positive += 1,
            (true, false) => self.false_positive += 1,
            (false, true) => self.false_negative += 1,
            (false, false) => self.true_negative += 1,
        }
    }

    /// TP / (TP + FP); `None` when nothing was predicted positive.
    pub fn precision(&self) -> Option<f64> {
        ratio(self.true_positive, self.true_positive + self.false_positive)
    }

    /// TP / (TP + FN); `None` when no case is truly positive.
    pub fn recall(&self) -> Option<f64> {
        ratio(self.true_positive, self.true_positive + self.false_negative)
    }
}

/// `num / den`, `None` when `den` is 0.
pub fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// Mean of the defined values; `None` when there are none.
pub fn mean_defined(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let (sum, n) = values.into_iter().flatten().fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tool_arguments_compare_by_value() {
        let expected = ToolCall::new("get_stock", json!({"sku": "AT001", "size": "M"}));
        let same = ToolCall::new("get_stock", json!({"size": "m ", "sku": "at001", "color": null}));
        let wrong = ToolCall::new("get_stock", json!({"sku": "AT001", "size": "L"}));
        let extra = ToolCall::new("get_stock", json!({"sku": "AT001", "size": "M", "color": "Đỏ"}));
        assert!(tool_call_matches(&expected, &same));
        assert!(!tool_call_matches(&expected, &wrong));
        assert!(!tool_call_matches(&expected, &extra));
        let num = ToolCall::new("p", json!({"order_total_vnd": 500000}));
        let num_str = ToolCall::new("p", json!({"order_total_vnd": "500000"}));
        assert!(tool_call_matches(&num, &num_str));
    }

    #[test]
    fn refusal_precision_recall() {
        let markers: Vec<String> = DEFAULT_REFUSAL_MARKERS.iter().map(|s| s.to_string()).collect();
        assert!(is_refusal("Dạ, câu hỏi này nằm NGOÀI PHẠM VI hỗ trợ của em ạ.", &markers));
        assert!(!is_refusal("Dạ đơn của chị đang giao ạ.", &markers));
        let mut c = BinaryCounts::default();
        for (p, t) in [(true, true), (true, false), (false, true), (true, true), (false, false)] {
            c.add(p, t);
        }
        assert_eq!(c.precision(), Some(2.0 / 3.0));
        assert_eq!(c.recall(), Some(2.0 / 3.0));
        assert_eq!(BinaryCounts::default().precision(), None);
    }
}
