//! Deterministic routing: requests that need no judgement are not left to the
//! model. An order id in the customer's turn always runs `get_order_status`, with
//! the phone number (or its last 4 digits) when the turn gives one.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{json, Value};

static ORDER_ID: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\bdh\s?(\d{6})\b").expect("order id regex"));
static PHONE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:\+84|\b84|\b0)(?:[ .\-]?\d){9}\b").expect("phone regex"));
static LAST4: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:cuối|đuôi|cuoi|duoi|last 4|sđt|sdt|số)\D{0,15}\b(\d{4})\b").expect("last4 regex")
});

/// The order id in `text` (`DH` + 6 digits, any case, an optional space), normalized.
pub fn order_id(text: &str) -> Option<String> {
    ORDER_ID.captures(text).map(|c| format!("DH{}", &c[1]))
}

/// A phone number, or the last 4 digits of one, given in `text`.
pub fn phone_hint(text: &str) -> Option<String> {
    if let Some(m) = PHONE.find(text) {
        return Some(m.as_str().chars().filter(|c| c.is_ascii_digit() || *c == '+').collect());
    }
    LAST4.captures(text).map(|c| c[1].to_string())
}

/// The `get_order_status` arguments for a turn that names an order.
pub fn order_lookup(text: &str) -> Option<Value> {
    let id = order_id(text)?;
    let mut args = json!({"order_id": id});
    if let Some(p) = phone_hint(text) {
        args["phone"] = json!(p);
    }
    Some(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_phones() {
        assert_eq!(
            order_lookup("đơn dh 250004 sđt 0942 552 481"),
            Some(json!({"order_id": "DH250004", "phone": "0942552481"}))
        );
        assert_eq!(
            order_lookup("Đơn DH250004, 4 số cuối 2481 ạ"),
            Some(json!({"order_id": "DH250004", "phone": "2481"}))
        );
        assert_eq!(order_lookup("đơn DH250004 tới đâu rồi"), Some(json!({"order_id": "DH250004"})));
        assert_eq!(order_lookup("áo AT001 còn không"), None);
    }
}
