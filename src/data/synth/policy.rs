//! Policy questions answered from the policy text (`get_policy`) and promotion
//! questions (`get_promotions`). Policy answers restate `data/policies/*.md`; the
//! grounding check fails if a figure in them is not in the policy the tool returned.

use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::{json, Value};

use super::convo::{fill, Convo};
use crate::data::store::Store;
use crate::data::text::{date_vn, vnd};
use crate::Result;

/// (topic, customer questions, assistant answers) grounded in that policy.
pub(super) const POLICY_QA: &[(&str, &[&str], &[&str])] = &[
    ("doi-tra", &["Shop cho đổi trả trong bao lâu vậy?", "Mua về không vừa thì đổi được không ạ?", "chính sách đổi trả của shop thế nào", "Nhận hàng rồi bao nhiêu ngày thì còn đổi được?"],
     &["Dạ StyleVN hỗ trợ đổi hoặc trả hàng trong vòng 14 ngày kể từ ngày {kh} nhận hàng ạ. Sản phẩm cần còn nguyên tem, nhãn mác, chưa qua sử dụng, chưa giặt và {kh} giữ lại mã đơn hàng giúp em nhé.",
       "Dạ được ạ! {Kh} có 14 ngày kể từ ngày nhận hàng để đổi hoặc trả, với điều kiện sản phẩm còn nguyên tem mác, chưa sử dụng, chưa giặt ạ. {Kh} liên hệ hotline hoặc fanpage, gửi mã đơn và lý do đổi trả là được ạ."]),
    ("doi-tra", &["Đổi size có mất phí không shop?", "đổi sang mẫu khác thì ai trả tiền ship", "Hàng bị lỗi thì đổi có mất phí không ạ?"],
     &["Dạ nếu {kh} muốn đổi size hoặc đổi mẫu khác thì {kh} chịu phí vận chuyển 30.000đ mỗi chiều ạ. Còn nếu lỗi từ phía StyleVN (sai mẫu, sai size, sai màu, hàng lỗi) thì bên em miễn phí hoàn toàn ạ. Mỗi đơn được đổi tối đa 2 lần.",
       "Dạ hàng lỗi, giao sai mẫu, sai size hoặc sai màu thì StyleVN chịu phí vận chuyển hai chiều ạ. Trường hợp {kh} đổi ý muốn đổi size, đổi mẫu thì phí là 30.000đ mỗi chiều ạ."]),
    ("doi-tra", &["Trả hàng thì bao lâu được hoàn tiền?", "hoàn tiền về đâu vậy shop, mình trả COD", "Bao giờ mình nhận lại tiền khi trả hàng?"],
     &["Dạ sau khi kho nhận và kiểm tra hàng, tiền được hoàn trong 3-7 ngày làm việc ạ. Đơn chuyển khoản hoặc ví điện tử được hoàn về đúng tài khoản/ví đã thanh toán; đơn COD được hoàn qua chuyển khoản ngân hàng do {kh} cung cấp ạ."]),
    ("doi-tra", &["Mua tất rồi có trả lại được không?", "Hàng flash sale có được đổi không ạ?", "bông tai mua rồi đổi được ko shop"],
     &["Dạ tất, bông tai, kẹp tóc và các phụ kiện cá nhân đã bóc niêm phong thì không áp dụng đổi trả ạ. Sản phẩm mua trong Flash sale giảm từ 30% trở lên cũng không áp dụng đổi trả, nhưng vẫn được đổi size nếu còn hàng ạ."]),
    ("van-chuyen", &["Phí ship bao nhiêu vậy shop?", "Đơn bao nhiêu thì được freeship ạ?", "ship có mất phí không", "Mua bao nhiêu tiền thì miễn phí vận chuyển?"],
     &["Dạ StyleVN miễn phí vận chuyển cho đơn từ 500.000đ trở lên (tính sau khi trừ mã giảm giá) ạ. Đơn dưới 500.000đ phí ship đồng giá 30.000đ toàn quốc ạ.",
       "Dạ đơn từ 500.000đ được freeship ạ, còn đơn dưới mức này phí vận chuyển là 30.000đ cho mọi tỉnh thành ạ."]),
    ("van-chuyen", &["Giao hàng mất mấy ngày vậy shop?", "Ship ra Đà Nẵng mấy ngày ạ?", "Mình ở Hà Nội thì bao lâu nhận được hàng?", "giao tỉnh lâu không shop"],
     &["Dạ thời gian giao dự kiến tính theo ngày làm việc ạ: nội thành Hà Nội và TP. Hồ Chí Minh 1-2 ngày; các tỉnh miền Bắc và miền Nam 2-4 ngày; các tỉnh miền Trung 2-5 ngày; vùng sâu, vùng xa, hải đảo 4-7 ngày ạ.",
       "Dạ nội thành Hà Nội và TP. Hồ Chí Minh nhận hàng sau 1-2 ngày làm việc, miền Trung 2-5 ngày, các tỉnh miền Bắc và miền Nam 2-4 ngày, vùng xa 4-7 ngày ạ. Đơn đặt trước 16h được bàn giao cho đơn vị vận chuyển ngay trong ngày ạ."]),
    ("van-chuyen", &["Có được xem hàng trước khi trả tiền không?", "nhận hàng có được kiểm tra không shop", "Shop giao bằng đơn vị nào vậy?"],
     &["Dạ {kh} được đồng kiểm, tức là mở hộp xem sản phẩm trước khi thanh toán cho nhân viên giao hàng ạ, nhưng không được mặc thử khi đồng kiểm ạ. Bên em giao qua GHN, GHTK, Viettel Post, J&T Express và Ninja Van ạ."]),
    ("thanh-toan", &["Shop nhận thanh toán những hình thức nào?", "Có thanh toán bằng MoMo được không ạ?", "mình trả tiền khi nhận hàng được k", "Thanh toán thế nào vậy shop?"],
     &["Dạ StyleVN nhận thanh toán khi nhận hàng (COD) cho đơn dưới 5.000.000đ, chuyển khoản ngân hàng, và ví điện tử Ví MoMo, ZaloPay, VNPay ạ.",
       "Dạ {kh} có thể trả tiền mặt khi nhận hàng (COD, áp dụng cho đơn dưới 5.000.000đ), chuyển khoản với nội dung là mã đơn hàng, hoặc quét mã QR bằng Ví MoMo, ZaloPay, VNPay ạ."]),
    ("thanh-toan", &["Dùng được 2 mã giảm giá cùng lúc không?", "Chuyển khoản xong bao lâu thì đơn được xác nhận?", "Shop có hỏi mã OTP không?"],
     &["Dạ mỗi đơn hàng áp dụng tối đa một mã giảm giá ạ. Đơn chuyển khoản được xác nhận trong vòng 30 phút sau khi bên em nhận được tiền (giờ hành chính) ạ. Lưu ý StyleVN không bao giờ yêu cầu {kh} cung cấp mã OTP, mật khẩu hay số thẻ ạ."]),
    ("bao-hanh", &["Shop có bảo hành không ạ?", "Giày bị bong keo thì có bảo hành không?", "áo bị bung chỉ thì sao shop", "Túi hỏng khóa có được bảo hành không?"],
     &["Dạ quần áo được bảo hành đường may và khóa kéo trong 30 ngày kể từ ngày nhận hàng ạ. Giày và túi được bảo hành bong keo, bung chỉ, hỏng khóa trong 6 tháng ạ. {Kh} liên hệ hotline hoặc email kèm mã đơn và ảnh chụp lỗi, thời gian xử lý từ 7 đến 10 ngày làm việc ạ.",
       "Dạ có ạ: giày và túi bảo hành 6 tháng với lỗi bong keo, bung chỉ, hỏng khóa; quần áo bảo hành đường may, khóa kéo 30 ngày ạ. Bên em không bảo hành hao mòn tự nhiên hoặc hư hỏng do ngâm nước lâu ạ."]),
    ("bao-mat", &["Shop có bán thông tin của mình cho bên khác không?", "thông tin cá nhân của mình có an toàn không", "Mình muốn xóa thông tin cá nhân thì làm sao?"],
     &["Dạ StyleVN chỉ dùng họ tên, số điện thoại, địa chỉ và email để xử lý đơn hàng, và không bán hay chia sẻ cho bên thứ ba, trừ đơn vị vận chuyển và cổng thanh toán ạ. {Kh} có thể yêu cầu xem, sửa hoặc xóa thông tin bằng cách gửi email tới hotro@stylevn.example, yêu cầu được xử lý trong 7 ngày làm việc ạ."]),
    ("lien-he", &["Hotline của shop là gì?", "Shop có cửa hàng ở đâu không?", "Mình muốn khiếu nại thì liên hệ ở đâu?", "số tổng đài shop bao nhiêu"],
     &["Dạ {kh} liên hệ hotline 1900 0000 (8h00-22h00 tất cả các ngày) hoặc email hotro@stylevn.example ạ. Bên em có cửa hàng tại Hà Nội (12 Phố Giả Định, quận Hoàn Kiếm) và TP. Hồ Chí Minh (34 Đường Mẫu, Quận 1), mở cửa 9h00-21h30 ạ.",
       "Dạ hotline của StyleVN là 1900 0000, làm việc 8h00-22h00 cả cuối tuần ạ. Khiếu nại được tiếp nhận qua hotline và email hotro@stylevn.example, phản hồi trong vòng 48 giờ ạ."]),
];

/// A policy question, the policy fetched, and an answer restating it.
pub fn policy(c: &mut Convo, _store: &Store) -> Result<()> {
    let (topic, questions, answers) = *POLICY_QA.choose(c.rng).expect("policy Q&A");
    c.maybe_greet();
    let q = c.pick(questions);
    c.user(q);
    let r = c.call("get_policy", json!({"topic": topic}))?;
    debug_assert_eq!(r["found"], true, "policy {topic} missing from the store");
    let a = c.pick(answers);
    c.say(a);
    c.maybe_thank();
    Ok(())
}

const ASK_PROMOS: [&str; 6] = [
    "Shop đang có mã giảm giá nào không ạ?",
    "có voucher gì không shop",
    "Hiện tại có chương trình khuyến mãi nào không?",
    "Cho mình xin mã giảm giá với",
    "Đang có sale gì không ad?",
    "Shop có code giảm giá nào đang dùng được không?",
];
const ASK_PROMOS_TOTAL: [&str; 4] = [
    "Đơn của mình khoảng {total} thì dùng được mã nào ạ?",
    "mình mua {total} có mã nào giảm không shop",
    "Đơn {total} thì áp mã gì được vậy?",
    "Giỏ hàng của em {total}, có voucher nào dùng được không ạ?",
];
const ASK_CODE: [&str; 5] = [
    "Mã {code} còn dùng được không shop?",
    "mã {code} hết hạn chưa ạ",
    "Mình có mã {code}, áp dụng được không?",
    "Code {code} giảm bao nhiêu vậy?",
    "Mã {code} dùng thế nào ạ?",
];

fn promo_line(p: &Value) -> String {
    let min = p["min_order_vnd"].as_i64().unwrap_or(0);
    let cond = if min == 0 {
        ", không cần đơn tối thiểu".to_string()
    } else {
        format!(" cho đơn từ {}", vnd(min))
    };
    format!(
        "- {}: giảm {}%{cond} (đến {})",
        p["code"].as_str().unwrap_or(""),
        p["discount_pct"],
        date_vn(p["valid_to"].as_str().unwrap_or(""))
    )
}

/// Promotions: the active list, those an order total qualifies for, or one code.
pub fn promotions(c: &mut Convo, store: &Store) -> Result<()> {
    c.maybe_greet();
    match c.rng.random_range(0..3) {
        0 => {
            let q = c.pick(&ASK_PROMOS);
            c.user(q);
            let r = c.call("get_promotions", json!({}))?;
            let lines: Vec<String> = r["promotions"].as_array().into_iter().flatten().map(promo_line).collect();
            if lines.is_empty() {
                c.say("Dạ hiện tại bên em chưa có chương trình khuyến mãi nào đang áp dụng ạ. {Kh} theo dõi fanpage StyleVN để cập nhật ưu đãi mới nhé!");
            } else {
                c.say(&format!(
                    "Dạ hiện tại StyleVN có các mã sau ạ:\n{}\nMỗi đơn áp dụng một mã ạ.",
                    lines.join("\n")
                ));
            }
        }
        1 => {
            let total = c.rng.random_range(10..=250) * 10_000i64;
            let typed = if c.rng.random_bool(0.5) { format!("{}k", total / 1000) } else { vnd(total) };
            let t = c.pick(&ASK_PROMOS_TOTAL);
            c.user(&fill(t, &[("total", &typed)]));
            let r = c.call("get_promotions", json!({"order_total_vnd": total}))?;
            let ok: Vec<String> = r["promotions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["eligible"] == true)
                .map(promo_line)
                .collect();
            if ok.is_empty() {
                c.say(&format!(
                    "Dạ với đơn {} thì hiện chưa có mã nào đủ điều kiện ạ. {{Kh}} mua thêm để đạt mức đơn tối thiểu của các mã đang chạy nhé.",
                    vnd(total)
                ));
            } else {
                c.say(&format!("Dạ với đơn {}, {{kh}} dùng được các mã sau ạ:\n{}\nMỗi đơn áp dụng một mã, {{kh}} chọn mã giảm nhiều nhất nhé.", vnd(total), ok.join("\n")));
            }
        }
        _ => {
            let p = &store.promotions[c.rng.random_range(0..store.promotions.len())];
            let typed = if c.rng.random_bool(0.2) { p.code.to_lowercase() } else { p.code.clone() };
            let t = c.pick(&ASK_CODE);
            c.user(&fill(t, &[("code", &typed)]));
            let r = c.call("get_promotions", json!({"code": p.code}))?;
            let promo = &r["promotion"];
            let line = promo_line(promo);
            let text = match promo["state"].as_str() {
                Some("đang áp dụng") => {
                    format!("Dạ mã {} đang áp dụng ạ: {}.\n{line}", p.code, promo["description"].as_str().unwrap_or(""))
                }
                Some("đã hết hạn") => format!(
                    "Dạ em xin lỗi, mã {} đã hết hạn từ ngày {} rồi ạ. {{Kh}} hỏi em các mã đang áp dụng nhé.",
                    p.code,
                    date_vn(promo["valid_to"].as_str().unwrap_or(""))
                ),
                _ => format!(
                    "Dạ mã {} chưa bắt đầu ạ, mã áp dụng từ ngày {} đến {}.",
                    p.code,
                    date_vn(promo["valid_from"].as_str().unwrap_or("")),
                    date_vn(promo["valid_to"].as_str().unwrap_or(""))
                ),
            };
            c.say(&text);
        }
    }
    c.maybe_thank();
    Ok(())
}
