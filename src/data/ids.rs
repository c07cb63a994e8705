//! The store's own identifiers, for recognising them in what customers type:
//! every order id, SKU, promotion code and tracking code of the store, keyed by
//! [`id_key`], so `so 2026 0042`, `SO20260042` and `so-2026-0042` all find
//! `SO-2026-0042`, and `#100234` is found as `100234` too. Nothing here knows any
//! shop's id format: the ids are the store's rows ([`StoreIds::from_store`]).
//!
//! | kind | found in a turn as | example (`tests/fixtures/store-b`) |
//! |---|---|---|
//! | order id | 1 to [`MAX_ID_WORDS`] words whose key is the id's | `so 2026 0042` -> `SO-2026-0042` |
//! | SKU | the same | `qj 01 blk` -> `QJ-01-BLK` |
//! | promotion code | one word | `chaohe25` -> `CHAOHE25` |
//! | tracking code | one word, giving its order | `vtp778120` -> `#100234` |
//!
//! The store also knows which categories have a size chart, and which of those are
//! measured by foot length (shoes): the size questions routed for it.

use std::collections::HashMap;

use super::store::Store;
use crate::conversation::text::fold;

/// Most words one order id or SKU spans as typed (`SO 2026 0042` is three).
pub const MAX_ID_WORDS: usize = 4;

/// The matching key of an id as typed: folded ([`fold`]: lowercase, no diacritics),
/// then only its letters and digits, so case, spaces, hyphens and `#` do not matter.
pub fn id_key(text: &str) -> String {
    fold(text).chars().filter(|c| c.is_alphanumeric()).collect()
}

/// What kind of store id a match is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// An order id.
    Order,
    /// A product SKU.
    Sku,
    /// A promotion code.
    Promotion,
    /// A carrier tracking code (its order is [`IdMatch::order_id`]).
    Tracking,
}

/// A store id found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMatch {
    /// What it is.
    pub kind: IdKind,
    /// The id as the store writes it.
    pub id: String,
    /// The order the id belongs to: the id itself for an order, the tracking code's order.
    pub order_id: Option<String>,
    /// Byte range of the match in the text.
    pub span: (usize, usize),
}

/// A category with a size chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizedCategory {
    /// The category as the store writes it (`áo thun`).
    pub name: String,
    /// Sized by foot length (its chart has `foot_length_cm`), not height and weight.
    pub by_foot: bool,
}

/// The categories of `store`'s size charts, in chart order.
pub fn sized_categories(store: &Store) -> Vec<SizedCategory> {
    let mut sized: Vec<SizedCategory> = Vec::new();
    for row in &store.size_charts {
        let by_foot = !row.foot_length_cm.is_empty();
        match sized.iter_mut().find(|c| c.name == row.category) {
            Some(c) => c.by_foot |= by_foot,
            None => sized.push(SizedCategory { name: row.category.clone(), by_foot }),
        }
    }
    sized
}

/// Every id of one store, by [`id_key`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreIds {
    orders: HashMap<String, String>,
    skus: HashMap<String, String>,
    promotions: HashMap<String, String>,
    /// key -> (tracking code, order id).
    tracking: HashMap<String, (String, String)>,
    sized: Vec<SizedCategory>,
}

/// The words of `text` with their byte ranges: runs between whitespace and
/// sentence punctuation (`#`, `-`, `_`, `/` and `.` stay inside a word).
fn words(text: &str) -> Vec<(usize, usize)> {
    let split = |c: char| c.is_whitespace() || ",;:!?()[]{}\"'“”".contains(c);
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (split(c), start) {
            (true, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

impl StoreIds {
    /// The ids of `store`.
    pub fn from_store(store: &Store) -> Self {
        let by_key = |ids: &mut dyn Iterator<Item = &String>| -> HashMap<String, String> {
            ids.filter(|id| !id_key(id).is_empty()).map(|id| (id_key(id), id.clone())).collect()
        };
        StoreIds {
            orders: by_key(&mut store.orders.iter().map(|o| &o.order_id)),
            skus: by_key(&mut store.products.iter().map(|p| &p.sku)),
            promotions: by_key(&mut store.promotions.iter().map(|p| &p.code)),
            tracking: store
                .orders
                .iter()
                .filter(|o| !id_key(&o.tracking_code).is_empty())
                .map(|o| (id_key(&o.tracking_code), (o.tracking_code.clone(), o.order_id.clone())))
                .collect(),
            sized: sized_categories(store),
        }
    }

    /// The store's order id typed as `typed`.
    pub fn order(&self, typed: &str) -> Option<&str> {
        self.orders.get(&id_key(typed)).map(String::as_str)
    }

    /// The store's SKU typed as `typed`.
    pub fn sku(&self, typed: &str) -> Option<&str> {
        self.skus.get(&id_key(typed)).map(String::as_str)
    }

    /// The store's promotion code typed as `typed`.
    pub fn promotion(&self, typed: &str) -> Option<&str> {
        self.promotions.get(&id_key(typed)).map(String::as_str)
    }

    /// Whether `typed` is one of the store's order ids, SKUs, promotion or tracking codes.
    pub fn contains(&self, typed: &str) -> bool {
        let k = id_key(typed);
        [&self.orders, &self.skus, &self.promotions].iter().any(|m| m.contains_key(&k))
            || self.tracking.contains_key(&k)
    }

    /// The categories with a size chart, in chart order.
    pub fn sized_categories(&self) -> &[SizedCategory] {
        &self.sized
    }

    /// Every store id in `text`, left to right, not overlapping; at each word the
    /// longest match wins.
    pub fn find_all(&self, text: &str) -> Vec<IdMatch> {
        let words = words(text);
        let mut out = Vec::new();
        let mut i = 0;
        while i < words.len() {
            let longest = (1..=MAX_ID_WORDS.min(words.len() - i)).rev().find_map(|n| {
                let span = (words[i].0, words[i + n - 1].1);
                self.lookup(&text[span.0..span.1], n == 1).map(|m| (n, IdMatch { span, ..m }))
            });
            match longest {
                Some((n, m)) => {
                    out.push(m);
                    i += n;
                }
                None => i += 1,
            }
        }
        out
    }

    /// The first store id of `kind` in `text`.
    pub fn find(&self, text: &str, kind: IdKind) -> Option<IdMatch> {
        self.find_all(text).into_iter().find(|m| m.kind == kind)
    }

    /// The id `typed` stands for; codes only as one word.
    fn lookup(&self, typed: &str, one_word: bool) -> Option<IdMatch> {
        let k = id_key(typed);
        let m = |kind, id: &String, order_id: Option<&String>| IdMatch {
            kind,
            id: id.clone(),
            order_id: order_id.cloned(),
            span: (0, 0),
        };
        if let Some(id) = self.orders.get(&k) {
            return Some(m(IdKind::Order, id, Some(id)));
        }
        if let Some(id) = self.skus.get(&k) {
            return Some(m(IdKind::Sku, id, None));
        }
        if !one_word {
            return None;
        }
        if let Some(id) = self.promotions.get(&k) {
            return Some(m(IdKind::Promotion, id, None));
        }
        self.tracking.get(&k).map(|(code, order)| m(IdKind::Tracking, code, Some(order)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::product::Product;
    use crate::data::store::{Order, Promotion};

    fn store() -> Store {
        let order = |id: &str, tracking: &str| Order {
            order_id: id.into(),
            customer_name: "A".into(),
            customer_phone: "0900000000".into(),
            city: String::new(),
            status: "Đang giao".into(),
            eta: String::new(),
            carrier: String::new(),
            tracking_code: tracking.into(),
            payment_method: String::new(),
            total_vnd: 0,
            created_at: String::new(),
        };
        let product = |sku: &str| Product {
            source: String::new(),
            sku: sku.into(),
            name: String::new(),
            category: String::new(),
            price_vnd: 0,
            sizes: Vec::new(),
            colors: Vec::new(),
            stock: None,
            material: String::new(),
            description: String::new(),
            url: String::new(),
        };
        Store {
            orders: vec![order("#100234", "VTP-77812"), order("SO-2026-0042", "")],
            products: vec![product("QJ-01-BLK")],
            promotions: vec![Promotion {
                code: "TẾT-2026".into(),
                description: String::new(),
                discount_pct: 10,
                min_order_vnd: 0,
                valid_from: String::new(),
                valid_to: String::new(),
            }],
            ..Store::default()
        }
    }

    #[test]
    fn keys_ignore_case_diacritics_and_separators() {
        assert_eq!(id_key("SO-2026-0042"), "so20260042");
        assert_eq!(id_key(" so 2026 0042 "), "so20260042");
        assert_eq!(id_key("#100234"), "100234");
        assert_eq!(id_key("TẾT-2026"), "tet2026");
    }

    #[test]
    fn ids_are_found_as_customers_type_them() {
        let ids = StoreIds::from_store(&store());
        let found = |t: &str| ids.find_all(t).into_iter().map(|m| (m.kind, m.id)).collect::<Vec<_>>();
        assert_eq!(found("đơn so 2026 0042 tới đâu rồi"), [(IdKind::Order, "SO-2026-0042".to_string())]);
        assert_eq!(found("đơn SO20260042?"), [(IdKind::Order, "SO-2026-0042".to_string())]);
        assert_eq!(
            found("Đơn #100234, mẫu qj-01-blk"),
            [(IdKind::Order, "#100234".to_string()), (IdKind::Sku, "QJ-01-BLK".to_string())]
        );
        assert_eq!(found("mã tet-2026 còn không"), [(IdKind::Promotion, "TẾT-2026".to_string())]);
        let t = ids.find("vận đơn vtp77812 ở đâu", IdKind::Tracking).unwrap();
        assert_eq!(t.order_id.as_deref(), Some("#100234"));
        assert!(found("đơn #1002345 và SO-2026-00421").is_empty(), "no partial ids");
        assert!(found("tet 2026 vui").is_empty(), "codes are one word");
    }

    #[test]
    fn spans_cover_the_typed_id() {
        let ids = StoreIds::from_store(&store());
        let t = "đơn so 2026 0042 ạ";
        let m = ids.find(t, IdKind::Order).unwrap();
        assert_eq!(&t[m.span.0..m.span.1], "so 2026 0042");
    }
}
