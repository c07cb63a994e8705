//! PII masking for chat logs imported from real conversations
//! (`stylevn synth --import logs.jsonl --anonymize`): Vietnamese phone numbers,
//! emails and street addresses become placeholders.
//!
//! | what | example | placeholder |
//! |---|---|---|
//! | phone (`0` or `+84`, 10 digits, spaces/dots/dashes allowed) | `0912 345 678`, `+84912345678` | `[SĐT]` |
//! | email | `lan.nguyen@gmail.com` | `[EMAIL]` |
//! | address: house number + street word, up to the end of the clause, with trailing ward/district/city parts | `số 12 ngõ 34 Láng Hạ, phường Láng Thượng, quận Đống Đa` | `[ĐỊA CHỈ]` |
//!
//! Order ids (`DH` + 6 digits) and prices are left alone.

use std::sync::LazyLock;

use regex::Regex;

/// Placeholder for a phone number.
pub const PHONE: &str = "[SĐT]";
/// Placeholder for an email address.
pub const EMAIL: &str = "[EMAIL]";
/// Placeholder for a street address.
pub const ADDRESS: &str = "[ĐỊA CHỈ]";

static PHONE_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:\+84|\b84|\b0)(?:[ .\-]?\d){9}\b").expect("phone regex"));
static EMAIL_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+").expect("email regex"));
static ADDRESS_RE: LazyLock<Regex> = LazyLock::new(|| {
    let street = r"(?:đường|phố|ngõ|ngách|hẻm|kiệt|thôn|ấp|xóm|khu phố|tổ)";
    let admin = r"(?:phường|quận|huyện|xã|thị xã|thị trấn|tp\.?|thành phố|tỉnh|p\.|q\.)";
    Regex::new(&format!(
        r"(?i)(?:\b(?:số|sn|nhà)\s*)?\b\d+[a-z]?(?:/\d+[a-z]?)*\s*,?\s*{street}\s+[^,.;\n]+(?:,\s*{admin}\s*[^,.;\n]+)*|\b{street}\s+\d+[a-z]?(?:/\d+)*\s+[^,.;\n]+(?:,\s*{admin}\s*[^,.;\n]+)*"
    ))
    .expect("address regex")
});

/// What [`mask`] replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Masked {
    /// Phone numbers.
    pub phones: usize,
    /// Emails.
    pub emails: usize,
    /// Addresses.
    pub addresses: usize,
}

impl Masked {
    /// Adds another count to this one.
    pub fn add(&mut self, other: Masked) {
        self.phones += other.phones;
        self.emails += other.emails;
        self.addresses += other.addresses;
    }
}

/// Masks phones, emails and addresses in `text`.
pub fn mask(text: &str) -> (String, Masked) {
    let mut m = Masked::default();
    let t = EMAIL_RE.replace_all(text, |_: &regex::Captures| {
        m.emails += 1;
        EMAIL
    });
    let t = ADDRESS_RE.replace_all(&t, |_: &regex::Captures| {
        m.addresses += 1;
        ADDRESS
    });
    let t = PHONE_RE.replace_all(&t, |_: &regex::Captures| {
        m.phones += 1;
        PHONE
    });
    (t.into_owned(), m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_phone_email_address_but_not_orders_or_prices() {
        let (t, m) = mask(
            "Em ơi đơn DH250011 giá 249.000đ, sđt 0912 345 678 hoặc +84987654321, mail lan.nguyen@gmail.com, \
             giao về số 12 ngõ 34 Láng Hạ, phường Láng Thượng, quận Đống Đa nhé",
        );
        assert_eq!(m, Masked { phones: 2, emails: 1, addresses: 1 }, "{t}");
        assert!(t.contains("DH250011") && t.contains("249.000đ"), "{t}");
        assert!(!t.contains("345") && !t.contains("gmail") && !t.contains("Láng"), "{t}");
        assert!(t.contains("[SĐT]") && t.contains("[EMAIL]") && t.contains("[ĐỊA CHỈ]"), "{t}");
    }

    #[test]
    fn masks_hem_addresses() {
        let (t, m) = mask("ship tới hẻm 51 Nguyễn Trãi, quận 5 giúp mình");
        assert_eq!(m.addresses, 1, "{t}");
        assert!(!t.contains("Nguyễn Trãi"), "{t}");
    }
}
