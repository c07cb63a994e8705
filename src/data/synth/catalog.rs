//! Catalog conversations: stock checks (`get_stock`), prices, product search
//! (`search_products`) and size advice (`get_size_chart` with the customer's height
//! and weight, or foot length for shoes).

use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::{json, Value};

use super::convo::{fill, Convo};
use crate::data::ids::sized_categories;
use crate::data::product::Product;
use crate::data::store::Store;
use crate::data::text::vnd;
use crate::Result;

const ASK_STOCK: [&str; 10] = [
    "Mã {sku} còn size {size} màu {color} không shop?",
    "{name} ({sku}) size {size} màu {color} còn hàng không ạ?",
    "shop ơi {sku} màu {color} size {size} còn không",
    "Cho mình hỏi sản phẩm {sku} màu {color} còn size {size} không?",
    "Em muốn lấy {name} màu {color}, size {size}, mã {sku}. Còn hàng không ạ?",
    "Check giúp mình mẫu {sku} size {size} màu {color} còn mấy cái với.",
    "{sku} {color} {size} còn k ạ",
    "Mẫu {name} mã {sku} còn màu {color} size {size} không bạn?",
    "Tôi cần 1 {name} ({sku}), size {size}, màu {color}. Kho còn không?",
    "ad ơi {sku} size {size} màu {color} hết chưa ạ",
];
const IN_STOCK: [&str; 4] = [
    "Dạ mẫu {name} ({sku}) màu {color} size {size} bên em còn {qty} sản phẩm ạ. Giá {price}, {kh} đặt sớm để giữ hàng nhé!",
    "Dạ còn hàng ạ! {name} màu {color}, size {size} hiện còn {qty} chiếc, giá {price} ạ.",
    "Dạ em kiểm tra kho rồi ạ: mã {sku} màu {color} size {size} còn {qty} sản phẩm. {Kh} muốn đặt luôn không ạ?",
    "Dạ {sku} size {size} màu {color} vẫn còn ạ (còn {qty} sản phẩm), giá {price}.",
];
const FEW_LEFT: [&str; 2] = [
    "Dạ mẫu {name} ({sku}) màu {color} size {size} chỉ còn {qty} sản phẩm thôi ạ. Giá {price}, {kh} đặt sớm kẻo hết nhé!",
    "Dạ size {size} màu {color} của mã {sku} sắp hết rồi ạ, kho chỉ còn {qty} sản phẩm. Giá {price} ạ.",
];
const OUT_OF_STOCK: [&str; 3] = [
    "Dạ em xin lỗi, mẫu {name} ({sku}) màu {color} size {size} hiện đã hết hàng ạ. {Kh} có muốn em kiểm tra màu khác cùng size không ạ?",
    "Dạ tiếc quá, mã {sku} màu {color} size {size} bên em đang hết hàng ạ. Em xem giúp {kh} các màu khác size {size} nhé?",
    "Dạ {sku} size {size} màu {color} tạm hết hàng rồi ạ. {Kh} có muốn xem màu khác không ạ?",
];
const YES_OTHER: [&str; 5] =
    ["Có, xem giúp mình màu khác", "ok em check màu khác đi", "Dạ vâng", "Màu nào còn thì báo mình", "có ạ"];
const ASK_PRICE: [&str; 7] = [
    "Mã {sku} giá bao nhiêu vậy shop?",
    "{name} bao nhiêu tiền ạ? Mã {sku}",
    "cho mình xin giá {sku}",
    "Sản phẩm {sku} giá bao nhiêu ạ?",
    "Giá của {name} ({sku}) là bao nhiêu vậy?",
    "Shop ơi {sku} giá nhiêu",
    "{sku} đang bán giá bao nhiêu vậy ad?",
];
const PRICE: [&str; 3] = [
    "Dạ {name} ({sku}) có giá {price} ạ.",
    "Dạ mẫu {sku} - {name} đang bán giá {price} ạ. {Kh} cần em kiểm tra size và màu không ạ?",
    "Dạ giá của {name} là {price} ạ.",
];
const ASK_SEARCH: [&str; 6] = [
    "Shop có {query} không ạ?",
    "tìm giúp mình {query} với",
    "Bên mình có bán {query} không?",
    "Mình đang tìm {query}, shop gợi ý vài mẫu được không?",
    "có {query} nào đẹp không shop",
    "Cho em xem mấy mẫu {query} ạ.",
];
const ASK_SEARCH_BUDGET: [&str; 4] = [
    "Shop có {query} nào dưới {budget} không?",
    "tìm giúp mình {query} giá dưới {budget}",
    "Mình có tầm {budget} thì mua được {query} nào ạ?",
    "Có {query} nào không quá {budget} không shop?",
];

fn sku_as_typed(c: &mut Convo, sku: &str) -> String {
    if c.rng.random_bool(0.2) {
        sku.to_lowercase()
    } else {
        sku.to_string()
    }
}

fn pick_product<'s>(c: &mut Convo, store: &'s Store) -> &'s Product {
    &store.products[c.rng.random_range(0..store.products.len())]
}

/// Stock of one SKU in one size and colour; when it is sold out, the customer may
/// ask for the other colours of that size (multi-turn).
pub fn stock(c: &mut Convo, store: &Store) -> Result<()> {
    let p = pick_product(c, store);
    let size = p.sizes.choose(c.rng).expect("sizes").clone();
    let color = p.colors.choose(c.rng).expect("colors").clone();
    c.maybe_greet();
    let sku = sku_as_typed(c, &p.sku);
    let color_typed = if c.rng.random_bool(0.5) { color.to_lowercase() } else { color.clone() };
    let t = c.pick(&ASK_STOCK);
    c.user(&fill(t, &[("sku", &sku), ("name", &p.name), ("size", &size), ("color", &color_typed)]));
    let r = c.call("get_stock", json!({"sku": p.sku, "size": size, "color": color}))?;
    let qty = r["variants"][0]["qty"].as_i64().unwrap_or(0);
    let price = vnd(r["price_vnd"].as_i64().unwrap_or(0));
    let vars = |q: &str| {
        [
            ("sku", p.sku.clone()),
            ("name", p.name.clone()),
            ("size", size.clone()),
            ("color", color.clone()),
            ("qty", q.to_string()),
            ("price", price.clone()),
        ]
    };
    let t = match qty {
        0 => c.pick(&OUT_OF_STOCK),
        1..=3 => c.pick(&FEW_LEFT),
        _ => c.pick(&IN_STOCK),
    };
    let v = vars(&qty.to_string());
    c.say(&fill(t, &v.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()));
    if qty == 0 && p.colors.len() > 1 && c.rng.random_bool(0.7) {
        let t = c.pick(&YES_OTHER);
        c.user(t);
        let r = c.call("get_stock", json!({"sku": p.sku, "size": size}))?;
        let available: Vec<String> = r["variants"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["qty"].as_i64().unwrap_or(0) > 0)
            .map(|v| format!("{} (còn {})", v["color"].as_str().unwrap_or(""), v["qty"]))
            .collect();
        if available.is_empty() {
            c.say(&format!(
                "Dạ em xin lỗi, size {size} của mẫu {} hiện đã hết tất cả các màu ạ. {{Kh}} có muốn em kiểm tra size khác không ạ?",
                p.sku
            ));
        } else {
            c.say(&format!(
                "Dạ size {size} của mẫu {} hiện còn các màu: {} ạ. {{Kh}} chọn màu nào để em lên đơn ạ?",
                p.sku,
                available.join(", ")
            ));
        }
    }
    c.maybe_thank();
    Ok(())
}

/// The price of one SKU, read with `get_stock` (which returns the price).
pub fn price(c: &mut Convo, store: &Store) -> Result<()> {
    let p = pick_product(c, store);
    c.maybe_greet();
    let sku = sku_as_typed(c, &p.sku);
    let t = c.pick(&ASK_PRICE);
    c.user(&fill(t, &[("sku", &sku), ("name", &p.name)]));
    let r = c.call("get_stock", json!({"sku": p.sku}))?;
    let price = vnd(r["price_vnd"].as_i64().unwrap_or(0));
    let name = r["name"].as_str().unwrap_or("").to_string();
    let t = c.pick(&PRICE);
    c.say(&fill(t, &[("sku", &p.sku), ("name", &name), ("price", &price)]));
    c.maybe_thank();
    Ok(())
}

/// Product search by type, optionally with a budget.
pub fn search(c: &mut Convo, store: &Store) -> Result<()> {
    let p = pick_product(c, store);
    // The product type: the first three or four words of a name ("Áo thun cổ tròn").
    let words: Vec<&str> = p.name.split_whitespace().collect();
    let n = c.rng.random_range(2..=words.len().min(4));
    let query = words[..n].join(" ").to_lowercase();
    c.maybe_greet();
    let budget_k = if c.rng.random_bool(0.4) {
        Some(((p.price_vnd as i64 / 1000) / 50 + 1 + c.rng.random_range(0..3)) * 50)
    } else {
        None
    };
    let mut args = json!({"query": query});
    match budget_k {
        Some(k) => {
            let budget = if c.rng.random_bool(0.5) { format!("{k}k") } else { vnd(k * 1000) };
            let t = c.pick(&ASK_SEARCH_BUDGET);
            c.user(&fill(t, &[("query", &query), ("budget", &budget)]));
            args["max_price_vnd"] = json!(k * 1000);
        }
        None => {
            let t = c.pick(&ASK_SEARCH);
            c.user(&fill(t, &[("query", &query)]));
        }
    }
    let r = c.call("search_products", args)?;
    let products: Vec<&Value> = r["products"].as_array().into_iter().flatten().take(3).collect();
    if products.is_empty() {
        c.say("Dạ em chưa tìm thấy sản phẩm phù hợp với yêu cầu của {kh} ạ. {Kh} thử mô tả kiểu dáng khác hoặc tăng ngân sách giúp em nhé.");
    } else {
        let lines: Vec<String> = products
            .iter()
            .map(|v| {
                format!(
                    "- {} (mã {}): {}, màu {}",
                    v["name"].as_str().unwrap_or(""),
                    v["sku"].as_str().unwrap_or(""),
                    vnd(v["price_vnd"].as_i64().unwrap_or(0)),
                    v["colors"].as_str().unwrap_or("").replace('|', ", ")
                )
            })
            .collect();
        let intro = c.pick(&[
            "Dạ bên em có mấy mẫu này ạ:",
            "Dạ em gợi ý {kh} vài mẫu nhé:",
            "Dạ {kh} tham khảo các mẫu sau ạ:",
        ]);
        let outro =
            c.pick(&["{Kh} ưng mẫu nào em kiểm tra size giúp ạ.", "{Kh} cần em tư vấn thêm mẫu nào không ạ?", ""]);
        c.say(format!("{intro}\n{}\n{outro}", lines.join("\n")).trim_end());
    }
    c.maybe_thank();
    Ok(())
}

const ASK_SIZE: [&str; 7] = [
    "Mình cao {h}cm nặng {w}kg thì mặc {cat} size gì ạ?",
    "em cao {h} cm, {w} kg, mặc {cat} size nào vừa ạ",
    "Tư vấn size {cat} giúp mình với, mình cao {h}cm, nặng {w}kg.",
    "{h}cm {w}kg thì lấy {cat} size gì shop?",
    "Chiều cao {h}cm, cân nặng {w}kg, chọn size {cat} nào hợp ạ?",
    "Mình {w}kg cao {h}cm, {cat} bên shop mình mặc size mấy?",
    "Shop ơi tôi cao {h}cm nặng {w}kg, {cat} size nào vừa?",
];
const ASK_SHOE: [&str; 4] = [
    "Chân mình dài {f}cm thì đi giày size bao nhiêu ạ?",
    "bàn chân em dài {f} cm, giày bên shop em đi size mấy",
    "Tư vấn size giày giúp mình, chân dài {f}cm.",
    "Chiều dài bàn chân {f}cm chọn size giày nào shop?",
];

/// Size advice: the chart row that fits the customer's measurements, for one of
/// the store's charted categories.
pub fn size_advice(c: &mut Convo, store: &Store) -> Result<()> {
    let charted = sized_categories(store);
    let Some(category) = charted.choose(c.rng) else {
        return Err(crate::Error::msg("the store has no size charts (size_charts.csv)"));
    };
    let (cat, by_foot) = (category.name.as_str(), category.by_foot);
    c.maybe_greet();
    let r = if by_foot {
        let f = 22.0 + 0.5 * c.rng.random_range(0..10) as f64;
        let t = c.pick(&ASK_SHOE);
        c.user(&fill(t, &[("f", &format!("{f}"))]));
        c.call("get_size_chart", json!({"category": cat, "foot_length_cm": f}))?
    } else {
        let women = matches!(cat, "váy" | "đầm");
        let h = if women { c.rng.random_range(145..=172) } else { c.rng.random_range(148..=186) };
        let w = if women { c.rng.random_range(38..=70) } else { c.rng.random_range(40..=90) };
        let t = c.pick(&ASK_SIZE);
        c.user(&fill(t, &[("h", &h.to_string()), ("w", &w.to_string()), ("cat", cat)]));
        c.call("get_size_chart", json!({"category": cat, "height_cm": h, "weight_kg": w}))?
    };
    let rec = r["recommended_size"].as_str().map(String::from);
    let row = r["sizes"].as_array().into_iter().flatten().find(|s| s["size"].as_str() == rec.as_deref()).cloned();
    match (rec, row) {
        (Some(size), Some(row)) if by_foot => {
            let foot = row["foot_length_cm"].as_str().unwrap_or("");
            c.say(&format!(
                "Dạ với chiều dài bàn chân {}cm, {{kh}} đi giày size {size} là vừa ạ (size {size} bên em dành cho chân dài đến {foot}cm). Nếu chân {{kh}} bè, {{kh}} có thể lên một size ạ.",
                r["foot_length_cm"]
            ));
        }
        (Some(size), Some(row)) => {
            let fit = |k: &str| row[k].as_str().unwrap_or("").to_string();
            c.say(&format!(
                "Dạ với chiều cao {}cm và cân nặng {}kg, {{kh}} mặc {cat} size {size} là vừa ạ. Size {size} bên em dành cho người cao {}cm, nặng {}kg. Nếu {{kh}} thích mặc rộng thoải mái thì có thể lên một size ạ.",
                r["height_cm"], r["weight_kg"], fit("height_cm"), fit("weight_kg")
            ));
        }
        _ => c.say(&format!(
            "Dạ theo bảng size {cat} của bên em thì chưa có size phù hợp với số đo của {{kh}} ạ. {{Kh}} có thể nhắn thêm số đo vòng ngực, vòng eo để nhân viên tư vấn kỹ hơn nhé."
        )),
    }
    c.maybe_thank();
    Ok(())
}
