//! Order conversations: status lookups with `get_order_status`, with the id and
//! phone given at once (the full order), or the id alone (status, ETA and carrier;
//! the details after the customer gives the phone's last 4 digits), and lookups
//! that find nothing.

use rand::Rng;
use serde_json::{json, Value};

use super::convo::{fill, Convo};
use crate::data::store::{Order, Store};
use crate::data::text::{date_vn, vnd};
use crate::data::tools::order_item_lines;
use crate::Result;

const ASK_WITH_PHONE: [&str; 14] = [
    "Cho em hỏi đơn {id} của em giờ tới đâu rồi ạ? SĐT đặt hàng là {phone}.",
    "đơn hàng {id} sdt {phone} đang ở đâu vậy shop",
    "Shop ơi kiểm tra giúp mình đơn {id}, số điện thoại {phone} với.",
    "Mình đặt đơn {id} mấy hôm trước mà chưa thấy hàng, sđt {phone}, check giúp mình nhé.",
    "{phone} - {id}, đơn này bao giờ giao vậy ạ?",
    "Em muốn tra cứu tình trạng đơn {id}, số điện thoại của em là {phone}.",
    "hello shop, đơn {id} của mình bao giờ tới vậy? sđt {phone}",
    "Kiểm tra đơn hàng giúp tôi: mã {id}, điện thoại {phone}.",
    "Shop ơi đơn {id} sao lâu quá vậy, sđt mình là {phone}.",
    "Cho hỏi đơn {id} đã giao chưa ạ? SĐT {phone}.",
    "Chào shop, mình muốn biết đơn {id} (sđt {phone}) đang ở trạng thái nào.",
    "Đơn {id} của mình ship tới đâu rồi ạ, sđt {phone}",
    "Tôi cần kiểm tra đơn {id}. Số điện thoại đặt hàng: {phone}. Cảm ơn.",
    "Ad ơi xem hộ em đơn {id} với, em đặt bằng số {phone} ạ.",
];

const ASK_ID_ONLY: [&str; 8] = [
    "Đơn {id} của mình đang ở đâu rồi shop?",
    "Kiểm tra giúp em đơn {id} với ạ.",
    "shop ơi đơn {id} giao chưa vậy",
    "Cho mình hỏi tình trạng đơn hàng {id}.",
    "Mã đơn của em là {id}, bao giờ em nhận được hàng ạ?",
    "Đơn {id} sao chưa thấy giao vậy ad?",
    "Tra giúp tôi đơn {id}.",
    "Đơn {id} của em có bị hủy không ạ?",
];

const SUMMARY: [&str; 4] = [
    "Dạ em kiểm tra rồi ạ: đơn {id} hiện ở trạng thái \"{status}\", đơn vị vận chuyển {carrier}, ngày giao (dự kiến) {eta} ạ.",
    "Dạ đơn hàng {id} của {kh} đang ở trạng thái {status} ạ ({carrier}, ngày giao {eta}).",
    "Dạ đơn {id} có trạng thái \"{status}\" ạ. Đơn đi qua {carrier}, ngày giao (dự kiến) là {eta}.",
    "Dạ theo hệ thống, đơn {id} hiện {status_lc} ạ; đơn vị vận chuyển: {carrier}, ngày giao: {eta}.",
];

/// For an order with no carrier or date (cancelled).
const SUMMARY_STATUS_ONLY: [&str; 2] = [
    "Dạ em kiểm tra rồi ạ: đơn {id} hiện ở trạng thái \"{status}\" ạ.",
    "Dạ đơn hàng {id} của {kh} có trạng thái {status} ạ.",
];

const OFFER_DETAILS: [&str; 3] = [
    " Nếu {kh} cần xem chi tiết sản phẩm, tổng tiền hay mã vận đơn, {kh} cho em xin 4 số cuối số điện thoại đặt hàng nhé.",
    " {Kh} cần em xem thêm chi tiết đơn thì {kh} gửi em 4 số cuối số điện thoại đặt hàng ạ.",
    " Để xem chi tiết đơn (sản phẩm, tổng tiền, mã vận đơn), {kh} vui lòng cho em 4 số cuối số điện thoại đặt hàng ạ.",
];

const GIVE_LAST4: [&str; 5] = [
    "4 số cuối là {last4}",
    "{last4} ạ",
    "số cuối {last4} nha shop, xem chi tiết giúp mình",
    "Dạ {last4}, em muốn xem mã vận đơn",
    "sđt đuôi {last4}",
];

const PREPARING: [&str; 3] = [
    "Dạ em kiểm tra rồi ạ: đơn {id} đang ở trạng thái {status}, kho đang đóng gói hàng cho {kh}. Đơn sẽ được bàn giao cho {carrier}, dự kiến giao ngày {eta} ạ.",
    "Dạ đơn {id} của {kh} hiện {status_lc} ạ. Bên em sẽ bàn giao cho {carrier} sớm, ngày giao dự kiến là {eta}. Khi có mã vận đơn bên em sẽ nhắn SMS cho {kh} nhé.",
    "Dạ đơn hàng {id} đang ở trạng thái \"{status}\" ạ, dự kiến {kh} nhận hàng vào ngày {eta} qua {carrier}.",
];
const SHIPPING: [&str; 3] = [
    "Dạ đơn {id} đang ở trạng thái {status} ạ. Đơn vị vận chuyển là {carrier}, mã vận đơn {tracking}, dự kiến giao ngày {eta}. {Kh} để ý điện thoại giúp em nhé!",
    "Dạ em kiểm tra rồi ạ, đơn {id} {status_lc} qua {carrier} (mã vận đơn {tracking}). Ngày giao dự kiến: {eta} ạ.",
    "Dạ đơn hàng {id} của {kh} hiện \"{status}\", dự kiến tới tay {kh} ngày {eta}. {Kh} có thể tra mã vận đơn {tracking} trên ứng dụng của {carrier} ạ.",
];
const DELIVERED: [&str; 3] = [
    "Dạ đơn {id} đã ở trạng thái {status}: {carrier} giao thành công ngày {eta} ạ. Nếu {kh} chưa nhận được hàng, {kh} báo em để em kiểm tra lại với đơn vị vận chuyển nhé.",
    "Dạ theo hệ thống, đơn hàng {id} {status_lc} vào ngày {eta} (mã vận đơn {tracking}, {carrier}) ạ.",
    "Dạ đơn {id} có trạng thái \"{status}\" từ ngày {eta} ạ. {Kh} có cần em hỗ trợ gì thêm về đơn này không ạ?",
];
const CANCELLED: [&str; 3] = [
    "Dạ đơn {id} hiện ở trạng thái {status} ạ. Nếu {kh} vẫn muốn mua các sản phẩm này, {kh} có thể đặt lại đơn mới trên website giúp em nhé.",
    "Dạ em kiểm tra thì đơn hàng {id} {status_lc} rồi ạ. {Kh} cần em hỗ trợ đặt lại không ạ?",
    "Dạ đơn {id} của {kh} có trạng thái \"{status}\" ạ, nên sẽ không được giao nữa. Em xin lỗi vì sự bất tiện này ạ.",
];
const RETURNING: [&str; 3] = [
    "Dạ đơn {id} đang ở trạng thái {status} ạ: hàng đang được {carrier} chuyển về kho (mã vận đơn {tracking}). Sau khi kho nhận và kiểm tra hàng, bên em sẽ hoàn tiền hoặc gửi sản phẩm mới theo chính sách đổi trả ạ.",
    "Dạ đơn hàng {id} {status_lc} về kho qua {carrier}, mã vận đơn {tracking} ạ. Kho nhận hàng xong bên em sẽ liên hệ {kh} ngay ạ.",
    "Dạ hệ thống ghi nhận đơn {id} \"{status}\" ạ. Bên em sẽ báo {kh} khi kho nhận lại hàng nhé.",
];

const NOT_FOUND: [&str; 3] = [
    "Dạ em chưa tìm thấy đơn hàng nào có mã {id} ạ. {Kh} kiểm tra lại giúp em mã đơn trong tin nhắn xác nhận đặt hàng nhé.",
    "Dạ em xin lỗi, hệ thống không có đơn {id} ạ. {Kh} xem lại giúp em mã đơn đã nhập nhé.",
    "Dạ em chưa có thông tin đơn hàng nào với mã {id} ạ. {Kh} vui lòng kiểm tra lại mã đơn giúp em nhé.",
];

/// How customers write a phone number.
fn phone_as_typed(c: &mut Convo, phone: &str) -> String {
    match c.rng.random_range(0..5) {
        0 => format!("{} {} {}", &phone[..4], &phone[4..7], &phone[7..]),
        1 => format!("{}.{}.{}", &phone[..4], &phone[4..7], &phone[7..]),
        _ => phone.to_string(),
    }
}

fn id_as_typed(c: &mut Convo, id: &str) -> String {
    if c.rng.random_bool(0.2) {
        id.to_lowercase()
    } else {
        id.to_string()
    }
}

/// The answer to a found order, from the tool's result.
pub fn answer_order(c: &mut Convo, r: &Value) -> String {
    let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
    let status = s("status");
    let templates: &[&str] = match status.as_str() {
        "Đang chuẩn bị" => &PREPARING,
        "Đang giao" => &SHIPPING,
        "Đã giao" => &DELIVERED,
        "Đã hủy" => &CANCELLED,
        _ => &RETURNING,
    };
    let t = c.pick(templates);
    let status_lc = status.to_lowercase();
    let mut text = fill(
        t,
        &[
            ("id", &s("order_id")),
            ("status", &status),
            ("status_lc", &status_lc),
            ("carrier", &s("carrier")),
            ("tracking", &s("tracking_code")),
            ("eta", &date_vn(&s("eta"))),
        ],
    );
    if c.rng.random_bool(0.4) {
        text.push_str(&format!(
            "\nĐơn gồm: {}. Tổng tiền: {}.",
            order_item_lines(r).join("; "),
            vnd(r["total_vnd"].as_i64().unwrap_or(0))
        ));
    }
    text
}

fn pick_order<'s>(c: &mut Convo, store: &'s Store) -> &'s Order {
    &store.orders[c.rng.random_range(0..store.orders.len())]
}

/// Order status with id and phone in the first message.
pub fn order_status(c: &mut Convo, store: &Store) -> Result<()> {
    let o = pick_order(c, store);
    c.maybe_greet();
    let (id, phone) = (id_as_typed(c, &o.order_id), phone_as_typed(c, &o.customer_phone));
    let t = c.pick(&ASK_WITH_PHONE);
    c.user(&fill(t, &[("id", &id), ("phone", &phone)]));
    let r = c.call("get_order_status", json!({"order_id": o.order_id, "phone": o.customer_phone}))?;
    let a = answer_order(c, &r);
    c.say(&a);
    c.maybe_thank();
    Ok(())
}

/// The answer to an order looked up by id alone: status, carrier and date, and
/// how to see the details.
fn answer_summary(c: &mut Convo, r: &Value) -> String {
    let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
    let status = s("status");
    let t =
        if s("eta").is_empty() || s("carrier").is_empty() { c.pick(&SUMMARY_STATUS_ONLY) } else { c.pick(&SUMMARY) };
    let mut text = fill(
        t,
        &[
            ("id", &s("order_id")),
            ("status", &status),
            ("status_lc", &status.to_lowercase()),
            ("carrier", &s("carrier")),
            ("eta", &date_vn(&s("eta"))),
        ],
    );
    let offer = c.pick(&OFFER_DETAILS);
    text.push_str(&fill(offer, &[]));
    text
}

/// Order status from the id alone (`get_order_status` with `order_id` only), and
/// sometimes the details after the customer gives the phone's last 4 digits.
pub fn order_id_only(c: &mut Convo, store: &Store) -> Result<()> {
    let o = pick_order(c, store);
    c.maybe_greet();
    let id = id_as_typed(c, &o.order_id);
    let t = c.pick(&ASK_ID_ONLY);
    c.user(&fill(t, &[("id", &id)]));
    let r = c.call("get_order_status", json!({"order_id": o.order_id}))?;
    let a = answer_summary(c, &r);
    c.say(&a);
    if c.rng.random_bool(0.4) {
        let last4 = &o.customer_phone[o.customer_phone.len() - 4..];
        let t = c.pick(&GIVE_LAST4);
        c.user(&fill(t, &[("last4", last4)]));
        let r = c.call("get_order_status", json!({"order_id": o.order_id, "phone": last4}))?;
        let a = answer_order(c, &r);
        c.say(&a);
    }
    c.maybe_thank();
    Ok(())
}

/// An id shaped like the store's order ids that no order has: one of them with its
/// digits drawn anew (with 4 digits added to an id that has none).
fn unknown_order_id(c: &mut Convo, store: &Store) -> String {
    loop {
        let shape = pick_order(c, store).order_id.clone();
        let shape = if shape.bytes().any(|b| b.is_ascii_digit()) { shape } else { format!("{shape}0000") };
        let id: String = shape
            .chars()
            .map(|ch| if ch.is_ascii_digit() { char::from(b'0' + c.rng.random_range(0..10u8)) } else { ch })
            .collect();
        if store.order(&id).is_none() {
            return id;
        }
    }
}

/// A lookup that finds nothing: an id shaped like the store's that no order has,
/// asked with a phone number or without.
pub fn order_not_found(c: &mut Convo, store: &Store) -> Result<()> {
    let o = pick_order(c, store);
    let id = unknown_order_id(c, store);
    let r = if c.rng.random_bool(0.5) {
        let phone = o.customer_phone.clone();
        let t = c.pick(&ASK_WITH_PHONE);
        c.user(&fill(t, &[("id", &id), ("phone", &phone)]));
        c.call("get_order_status", json!({"order_id": id, "phone": phone}))?
    } else {
        let t = c.pick(&ASK_ID_ONLY);
        c.user(&fill(t, &[("id", &id)]));
        c.call("get_order_status", json!({"order_id": id}))?
    };
    debug_assert_eq!(r["found"], false);
    let t = c.pick(&NOT_FOUND);
    c.say(&fill(t, &[("id", &id)]));
    Ok(())
}
