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
//! Prices and the store's ids are left alone, whatever the shop's id format: a
//! phone-shaped run of digits inside a longer word that has letters (`SO-0912-345678`)
//! is part of an id, not a phone.

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
    let mut out = String::with_capacity(t.len());
    let mut last = 0;
    for phone in PHONE_RE.find_iter(&t) {
        if inside_id(&t, phone.start(), phone.end()) {
            continue;
        }
        out.push_str(&t[last..phone.start()]);
        out.push_str(PHONE);
        m.phones += 1;
        last = phone.end();
    }
    out.push_str(&t[last..]);
    (out, m)
}

/// Whether `text[start..end]` lies inside a word (letters, digits, `#`, `-`, `_`,
/// `/`) that has ASCII letters: an id such as `SO-0912-345678`.
fn inside_id(text: &str, start: usize, end: usize) -> bool {
    let in_word = |c: &char| c.is_alphanumeric() || "#-_/".contains(*c);
    let before = text[..start].chars().rev().take_while(in_word);
    let after = text[end..].chars().take_while(in_word);
    before.chain(after).any(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::data::store::Store;

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

    /// Every id of a store, alone and in a sentence with a phone, an e-mail and an
    /// address: the id stays, the rest is masked.
    fn keeps_every_id_of(dir: &str) {
        let store = Store::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)).unwrap();
        let ids = store
            .orders
            .iter()
            .flat_map(|o| [o.order_id.clone(), o.tracking_code.clone()])
            .chain(store.products.iter().map(|p| p.sku.clone()))
            .chain(store.promotions.iter().map(|p| p.code.clone()))
            .filter(|id| !id.is_empty());
        for id in ids {
            assert_eq!(mask(&id), (id.clone(), Masked::default()), "{dir}");
            let (t, m) = mask(&format!("mã {id}, sđt 0912 345 678, mail a.b@gmail.com, giao số 12 ngõ 34 Láng Hạ nhé"));
            assert_eq!(m, Masked { phones: 1, emails: 1, addresses: 1 }, "{t}");
            assert!(t.starts_with(&format!("mã {id}, sđt [SĐT]")), "{t}");
        }
    }

    #[test]
    fn keeps_the_ids_of_both_stores() {
        keeps_every_id_of("data");
        keeps_every_id_of("tests/fixtures/store-b");
    }

    #[test]
    fn a_phone_shaped_part_of_an_id_is_not_a_phone() {
        let (t, m) = mask("đơn SO-0912-345678 của em, sđt:0912345678");
        assert_eq!(t, "đơn SO-0912-345678 của em, sđt:[SĐT]");
        assert_eq!(m.phones, 1);
    }

    #[test]
    fn masks_hem_addresses() {
        let (t, m) = mask("ship tới hẻm 51 Nguyễn Trãi, quận 5 giúp mình");
        assert_eq!(m.addresses, 1, "{t}");
        assert!(!t.contains("Nguyễn Trãi"), "{t}");
    }
}
