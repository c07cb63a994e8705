//! Answers written from a tool result: what the assistant delivers when the model's
//! answer to a routed request leaves out the facts the customer asked for, or
//! fails the grounding verifier and no fallback model answers. Each [`Facts`] holds
//! a polite Vietnamese answer and the facts any answer to that result must state
//! (compared folded: case and diacritics aside), so an answer can be checked for
//! completeness the same way it is written.

use serde_json::Value;

use crate::conversation::text::fold;
use crate::data::text::{capitalize, date_vn, lower_first, vnd};
use crate::data::tools::order_item_lines;
use crate::rag::text::folded_syllables;

/// Variants of a product listed one by one; more are summarised.
const MAX_VARIANTS: usize = 8;
/// Lines of a policy section quoted.
const MAX_POLICY_LINES: usize = 4;

/// An answer written from one tool result.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    /// The answer.
    pub text: String,
    /// What any answer to this result must state: each fact as its accepted
    /// wordings, the first of which is the one `text` uses.
    pub required: Vec<Vec<String>>,
}

impl Facts {
    /// Whether `answer` states every required fact in one of its wordings.
    pub fn stated_in(&self, answer: &str) -> bool {
        let answer = fold(answer);
        self.required.iter().all(|ways| ways.iter().any(|w| answer.contains(&fold(w))))
    }

    /// The required facts as `text` words them.
    pub fn named(&self) -> Vec<&str> {
        self.required.iter().filter_map(|ways| ways.first().map(String::as_str)).collect()
    }
}

/// A fact with one wording.
fn one(fact: impl Into<String>) -> Vec<String> {
    vec![fact.into()]
}

/// The answer to `question` from tool `name`'s `result`; `None` for a tool error or
/// a tool this module does not write for (`search_products`).
pub fn facts(name: &str, result: &Value, question: &str) -> Option<Facts> {
    if result.get("error").is_some() {
        return None;
    }
    if result["found"] == Value::Bool(false) {
        let message = result["message"].as_str()?;
        return Some(Facts {
            text: format!("Dạ, {} Anh/chị kiểm tra lại giúp em thông tin nhé ạ.", lower_first(message)),
            required: Vec::new(),
        });
    }
    match name {
        "get_order_status" => order(result),
        "get_stock" => stock(result),
        "get_size_chart" => size(result),
        "get_promotions" => promotions(result),
        "get_policy" => policy(result, question),
        _ => None,
    }
}

fn text_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn order(r: &Value) -> Option<Facts> {
    let status = text_of(r, "status").to_lowercase();
    let eta = date_vn(text_of(r, "eta"));
    let mut text = format!(
        "Dạ, đơn hàng {} của anh/chị đang ở trạng thái \"{status}\", dự kiến giao ngày {eta}, đơn vị vận chuyển {} ạ.",
        text_of(r, "order_id"),
        text_of(r, "carrier")
    );
    let mut required = vec![one(status), one(eta)];
    if let Some(total) = r["total_vnd"].as_i64() {
        let items = order_item_lines(r);
        if !items.is_empty() {
            text.push_str(&format!(" Đơn gồm: {}.", items.join("; ")));
        }
        text.push_str(&format!(" Tổng tiền {}, mã vận đơn {} ạ.", vnd(total), text_of(r, "tracking_code")));
        required.push(one(vnd(total)));
    } else if r.get("details").is_some() {
        text.push_str(
            " Để em báo chi tiết sản phẩm và tổng tiền, anh/chị cho em xin 4 số cuối số điện thoại đặt hàng ạ.",
        );
    }
    Some(Facts { text, required })
}

fn stock(r: &Value) -> Option<Facts> {
    let price = vnd(r["price_vnd"].as_i64()?);
    let variants = r["variants"].as_array()?;
    let mut text = format!("Dạ, {} ({}) giá {price} ạ.", text_of(r, "name"), text_of(r, "sku"));
    let mut required = vec![one(price)];
    let line = |v: &Value| match v["qty"].as_i64().unwrap_or(0) {
        0 => format!("size {} màu {}: hết hàng", text_of(v, "size"), text_of(v, "color")),
        q => format!("size {} màu {}: còn {q} sản phẩm", text_of(v, "size"), text_of(v, "color")),
    };
    match variants.as_slice() {
        [] => text.push_str(" Mẫu này hiện không có size/màu anh/chị hỏi ạ."),
        [one] => {
            let l = line(one);
            text.push_str(&format!(" {} ạ.", capitalize(&l)));
            required.push(match one["qty"].as_i64().unwrap_or(0) {
                0 => ["hết hàng", "còn 0", "hết size", "hết màu"].map(String::from).to_vec(),
                q => ["sản phẩm", "cái", "chiếc"].iter().map(|unit| format!("còn {q} {unit}")).collect(),
            });
        }
        many => {
            let in_stock: Vec<&Value> = many.iter().filter(|v| v["qty"].as_i64().unwrap_or(0) > 0).collect();
            if in_stock.is_empty() {
                text.push_str(" Hiện mẫu này đã hết hàng ạ.");
            } else {
                let lines: Vec<String> = in_stock.iter().take(MAX_VARIANTS).map(|v| line(v)).collect();
                text.push_str(&format!(" Hiện còn: {}", lines.join("; ")));
                if in_stock.len() > MAX_VARIANTS {
                    text.push_str(&format!(" và {} lựa chọn khác", in_stock.len() - MAX_VARIANTS));
                }
                text.push_str(" ạ.");
            }
        }
    }
    Some(Facts { text, required })
}

fn size(r: &Value) -> Option<Facts> {
    let category = text_of(r, "category");
    let measured = match (r["foot_length_cm"].as_f64(), &r["height_cm"], &r["weight_kg"]) {
        (Some(_), _, _) => format!("chiều dài bàn chân {}cm", r["foot_length_cm"]),
        (None, h, w) if h.is_number() && w.is_number() => format!("chiều cao {h}cm, cân nặng {w}kg"),
        (None, h, _) if h.is_number() => format!("chiều cao {h}cm"),
        (None, _, w) if w.is_number() => format!("cân nặng {w}kg"),
        _ => "số đo này".to_string(),
    };
    let Some(rec) = r["recommended_size"].as_str() else {
        return Some(Facts {
            text: format!(
                "Dạ, theo bảng size {category} của bên em thì chưa có size phù hợp với {measured} ạ. Anh/chị nhắn thêm số đo vòng ngực, vòng eo để nhân viên tư vấn kỹ hơn nhé ạ."
            ),
            required: Vec::new(),
        });
    };
    let chosen = format!("size {rec}");
    Some(Facts {
        text: format!("Dạ, với {measured}, anh/chị mặc {category} {chosen} là vừa ạ."),
        required: vec![one(chosen)],
    })
}

fn promotion_line(p: &Value) -> String {
    let mut line = format!(
        "{}: {} (giảm {}% cho đơn từ {}, đến {})",
        text_of(p, "code"),
        text_of(p, "description"),
        p["discount_pct"],
        vnd(p["min_order_vnd"].as_i64().unwrap_or(0)),
        date_vn(text_of(p, "valid_to"))
    );
    match p["eligible"].as_bool() {
        Some(true) => line.push_str(", đơn của anh/chị dùng được"),
        Some(false) => line.push_str(", đơn của anh/chị chưa đủ điều kiện"),
        None => {}
    }
    line
}

fn promotions(r: &Value) -> Option<Facts> {
    if let Some(p) = r.get("promotion") {
        let code = text_of(p, "code").to_string();
        let state = text_of(p, "state").to_string();
        return Some(Facts {
            text: format!("Dạ, mã {} {state} ạ.", promotion_line(p)),
            required: vec![one(code), one(state)],
        });
    }
    let list = r["promotions"].as_array()?;
    if list.is_empty() {
        return Some(Facts {
            text: "Dạ, hiện bên em chưa có chương trình khuyến mãi nào đang áp dụng ạ.".into(),
            required: Vec::new(),
        });
    }
    let lines: Vec<String> = list.iter().map(|p| format!("- {}", promotion_line(p))).collect();
    Some(Facts {
        text: format!("Dạ, hiện bên em có các mã khuyến mãi sau ạ:\n{}", lines.join("\n")),
        required: list.iter().map(|p| one(text_of(p, "code"))).collect(),
    })
}

/// One `## ` section of a policy page (the text before the first is the intro).
struct Section<'a> {
    heading: &'a str,
    lines: Vec<&'a str>,
}

fn sections(text: &str) -> Vec<Section<'_>> {
    let mut out = vec![Section { heading: "", lines: Vec::new() }];
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("# ")) {
        match line.strip_prefix("## ") {
            Some(h) => out.push(Section { heading: h, lines: Vec::new() }),
            None => out.last_mut().expect("one section at least").lines.push(line),
        }
    }
    out.retain(|s| !s.lines.is_empty());
    out
}

type WordSet = std::collections::BTreeSet<String>;

/// Folded words of `text` of at least two letters.
fn word_set(text: &str) -> WordSet {
    folded_syllables(text).into_iter().filter(|w| w.chars().count() >= 2).collect()
}

fn policy(r: &Value, question: &str) -> Option<Facts> {
    let title = text_of(r, "title");
    let all = sections(r["text"].as_str()?);
    // The section sharing most of the question's words that are neither in the
    // title nor in every section (heading words count three times); the intro on a tie.
    let sets: Vec<(WordSet, WordSet)> =
        all.iter().map(|s| (word_set(s.heading), word_set(&s.lines.join(" ")))).collect();
    let generic = word_set(title);
    let telling: Vec<String> = word_set(question)
        .into_iter()
        .filter(|w| !generic.contains(w) && !sets.iter().all(|(h, b)| h.contains(w) || b.contains(w)))
        .collect();
    let score = |(h, b): &(WordSet, WordSet)| -> usize {
        telling.iter().map(|w| 3 * usize::from(h.contains(w)) + usize::from(b.contains(w))).sum()
    };
    let best = sets.iter().enumerate().max_by_key(|(i, s)| (score(s), std::cmp::Reverse(*i)))?.0;
    let section = &all[best];
    let lines: Vec<String> = section
        .lines
        .iter()
        .take(MAX_POLICY_LINES)
        .map(|l| {
            let l = l.trim_start_matches(['-', '*', ' ']);
            format!("- {}", l.replace("**", ""))
        })
        .collect();
    let required: Vec<Vec<String>> = section
        .lines
        .iter()
        .take(MAX_POLICY_LINES)
        .flat_map(|l| l.split("**").skip(1).step_by(2).map(one).collect::<Vec<_>>())
        .take(1)
        .collect();
    let about = if section.heading.is_empty() { title.to_string() } else { format!("{title} ({})", section.heading) };
    Some(Facts {
        text: format!("Dạ, theo {} của bên em ạ:\n{}", lower_first(&about), lines.join("\n")), required
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn order_with_and_without_details() {
        let r = json!({"found": true, "order_id": "DH250004", "status": "Đang giao", "eta": "2025-06-23",
            "carrier": "GHN", "details": "cần 4 số cuối"});
        let f = facts("get_order_status", &r, "").unwrap();
        assert_eq!(f.named(), ["đang giao", "23/06/2025"]);
        assert!(f.text.contains("DH250004") && f.text.contains("GHN") && f.text.contains("4 số cuối"), "{}", f.text);
        assert!(f.stated_in(&f.text));
        assert!(f.stated_in("Dạ đơn DH250004 DANG GIAO, du kien 23/06/2025 ạ"), "folded comparison");
        assert!(!f.stated_in("Dạ đơn DH250004 đang giao ạ"), "the date is missing");

        let mut r = r;
        r["total_vnd"] = json!(549_000);
        r["tracking_code"] = json!("GHN123");
        r["items"] = json!([{"qty": 1, "name": "Áo thun", "size": "M", "color": "Trắng"}]);
        let f = facts("get_order_status", &r, "").unwrap();
        assert_eq!(f.named(), ["đang giao", "23/06/2025", "549.000đ"]);
        assert!(f.text.contains("1 x Áo thun (size M, màu Trắng)") && f.text.contains("GHN123"), "{}", f.text);
    }

    #[test]
    fn stock_one_variant_many_and_none() {
        let base = json!({"found": true, "sku": "AT001", "name": "Áo thun basic", "price_vnd": 199_000});
        let mut one = base.clone();
        one["variants"] = json!([{"size": "M", "color": "Trắng", "qty": 12}]);
        let f = facts("get_stock", &one, "").unwrap();
        assert_eq!(f.text, "Dạ, Áo thun basic (AT001) giá 199.000đ ạ. Size M màu Trắng: còn 12 sản phẩm ạ.");
        assert_eq!(f.named(), ["199.000đ", "còn 12 sản phẩm"]);
        assert!(f.stated_in("Dạ mẫu này giá 199.000đ, size M trắng còn 12 cái ạ"), "another wording");
        let mut out = base.clone();
        out["variants"] = json!([{"size": "M", "color": "Trắng", "qty": 0}]);
        let f = facts("get_stock", &out, "").unwrap();
        assert_eq!(f.named(), ["199.000đ", "hết hàng"]);
        assert!(f.stated_in("Dạ áo giá 199.000đ, size M màu trắng còn 0 sản phẩm ạ") && f.stated_in(&f.text));
        let mut many = base.clone();
        many["variants"] = json!([{"size": "M", "color": "Trắng", "qty": 0}, {"size": "M", "color": "Đen", "qty": 3}]);
        let f = facts("get_stock", &many, "").unwrap();
        assert!(f.text.ends_with("Hiện còn: size M màu Đen: còn 3 sản phẩm ạ."), "{}", f.text);
        assert_eq!(f.named(), ["199.000đ"]);
    }

    #[test]
    fn size_recommendation_or_none() {
        let r =
            json!({"found": true, "category": "áo thun", "recommended_size": "M", "height_cm": 160, "weight_kg": 55});
        let f = facts("get_size_chart", &r, "").unwrap();
        assert_eq!(f.text, "Dạ, với chiều cao 160cm, cân nặng 55kg, anh/chị mặc áo thun size M là vừa ạ.");
        assert_eq!(f.named(), ["size M"]);
        let r = json!({"found": true, "category": "giày", "recommended_size": null, "foot_length_cm": 31});
        let f = facts("get_size_chart", &r, "").unwrap();
        assert!(f.text.contains("chưa có size phù hợp với chiều dài bàn chân 31cm"), "{}", f.text);
        assert!(f.required.is_empty());
    }

    #[test]
    fn promotions_list_and_code() {
        let p = json!({"code": "HELLOSUMMER", "description": "Giảm 10%", "discount_pct": 10, "min_order_vnd": 300_000,
            "valid_to": "2025-07-31"});
        let f = facts("get_promotions", &json!({"today": "2025-06-20", "promotions": [p]}), "").unwrap();
        assert!(
            f.text.contains("- HELLOSUMMER: Giảm 10% (giảm 10% cho đơn từ 300.000đ, đến 31/07/2025)"),
            "{}",
            f.text
        );
        assert_eq!(f.named(), ["HELLOSUMMER"]);
        let mut one = p.clone();
        one["state"] = json!("đã hết hạn");
        let f = facts("get_promotions", &json!({"found": true, "promotion": one}), "").unwrap();
        assert_eq!(f.named(), ["HELLOSUMMER", "đã hết hạn"]);
        assert!(f.text.ends_with("đã hết hạn ạ."), "{}", f.text);
    }

    #[test]
    fn policy_section_follows_the_question() {
        let text = "# Chính sách đổi trả\n\nĐổi trả trong **14 ngày**.\n\n## Phí đổi trả\n- Lỗi của shop: miễn phí.\n- Đổi size: phí **30.000đ** mỗi chiều.\n\n## Hoàn tiền\n- Hoàn trong **3-7 ngày**.";
        let r = json!({"found": true, "topic": "doi-tra", "title": "Chính sách đổi trả", "text": text});
        let f = facts("get_policy", &r, "Chính sách đổi trả thế nào ạ?").unwrap();
        assert_eq!(f.text, "Dạ, theo chính sách đổi trả của bên em ạ:\n- Đổi trả trong 14 ngày.");
        assert_eq!(f.named(), ["14 ngày"]);
        let f = facts("get_policy", &r, "đổi size mất phí bao nhiêu").unwrap();
        assert_eq!(f.named(), ["30.000đ"]);
        assert!(f.text.starts_with("Dạ, theo chính sách đổi trả (Phí đổi trả)"), "{}", f.text);
        let f = facts("get_policy", &r, "bao lâu thì được hoàn tiền").unwrap();
        assert_eq!(f.named(), ["3-7 ngày"]);
    }

    #[test]
    fn not_found_and_errors() {
        let f = facts("get_stock", &json!({"found": false, "message": "Không có sản phẩm mã XX999."}), "").unwrap();
        assert_eq!(f.text, "Dạ, không có sản phẩm mã XX999. Anh/chị kiểm tra lại giúp em thông tin nhé ạ.");
        assert!(f.required.is_empty());
        assert_eq!(facts("get_stock", &json!({"error": "cần sku"}), ""), None);
        assert_eq!(facts("search_products", &json!({"found": true, "products": []}), ""), None);
    }
}
