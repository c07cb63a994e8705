#!/usr/bin/env python3
"""Generates the StyleVN store's data files in data/ (seeded, reproducible).

    python3 scripts/gen_store_data.py [--out data] [--seed 2025]

Writes catalog.csv, size_charts.csv, promotions.csv, orders.csv, order_items.csv
and stock.csv. The policies (data/policies/*.md) are hand-written and not touched.

Invariants (checked again by `stylevn db init` and tests/suite/data_store.rs):
- every order's total_vnd equals the sum of qty * price_vnd over its items;
- every item references a catalog SKU and one of that product's sizes and colours,
  at the product's catalog price;
- stock has exactly one row per catalog SKU x size x colour;
- every size of a clothing or shoe product has a row in size_charts.csv.
Names and phone numbers are invented (random combinations), not real customers.
Only the standard library is used; Python's seeded `random.Random` gives the same
files on every Python 3 version.
"""

import argparse
import csv
import datetime as dt
import os
import random
import unicodedata

# "Today" for the store's data: orders are placed before it, promotions are valid
# or expired relative to it. The Rust side uses the same date (src/data/mod.rs).
STORE_TODAY = dt.date(2025, 6, 20)
URL_BASE = "https://stylevn.example/san-pham"

TOPS = ["S", "M", "L", "XL"]
TOPS_BIG = ["S", "M", "L", "XL", "XXL"]
DRESS = ["S", "M", "L"]
DRESS_BIG = ["S", "M", "L", "XL"]
JEANS_MEN = ["28", "29", "30", "31", "32", "34"]
JEANS_WOMEN = ["26", "27", "28", "29", "30"]
SHOES_WOMEN = ["35", "36", "37", "38", "39"]
SHOES_MEN = ["39", "40", "41", "42", "43"]
FREE = ["Freesize"]

# category -> (sku prefix, price range in thousands VND, product types, modifiers, colours, materials)
CATEGORIES = {
    "áo thun": (
        "AT", (149, 349),
        ["Áo thun cổ tròn", "Áo thun oversize", "Áo thun tay lỡ", "Áo thun raglan", "Áo thun cổ tim",
         "Áo thun ba lỗ", "Áo thun baby tee", "Áo thun polo"],
        ["basic", "in chữ StyleVN", "kẻ sọc ngang", "wash bụi", "thêu logo nhỏ", "phối viền", "in hình graphic",
         "cotton compact", "trơn dày dặn", "form rộng unisex"],
        ["Trắng", "Đen", "Xám tiêu", "Be", "Xanh navy", "Hồng pastel", "Xanh rêu", "Nâu"],
        ["100% cotton", "cotton 65% polyester 35%", "cotton compact 250gsm", "thun lạnh", "cotton co giãn 4 chiều"],
    ),
    "áo sơ mi": (
        "SM", (249, 499),
        ["Áo sơ mi tay dài", "Áo sơ mi tay ngắn", "Áo sơ mi oxford", "Áo sơ mi cổ tàu", "Áo sơ mi lụa",
         "Áo sơ mi kẻ caro", "Áo sơ mi denim"],
        ["công sở", "form rộng", "slimfit", "có túi ngực", "cổ bẻ", "phối cúc gỗ", "kẻ sọc nhỏ", "trơn"],
        ["Trắng", "Xanh nhạt", "Đen", "Be", "Hồng nhạt", "Xanh da trời", "Kem"],
        ["oxford cotton", "lụa mềm", "linen pha cotton", "kate chống nhăn", "denim mỏng", "cotton poplin"],
    ),
    "quần jeans": (
        "QJ", (359, 699),
        ["Quần jeans ống đứng", "Quần jeans skinny", "Quần jeans ống rộng", "Quần jeans baggy",
         "Quần jeans slimfit", "Quần jeans ống loe", "Quần jeans lưng cao"],
        ["nam", "nữ", "wash nhạt", "rách gối", "màu trơn", "co giãn", "gấu tua", "cạp cao"],
        ["Xanh nhạt", "Xanh đậm", "Đen", "Xám khói", "Trắng"],
        ["denim 98% cotton 2% spandex", "denim 100% cotton", "denim co giãn", "jean cotton mềm"],
    ),
    "váy": (
        "VY", (229, 499),
        ["Chân váy chữ A", "Chân váy xếp ly", "Chân váy bút chì", "Chân váy jeans", "Chân váy midi",
         "Chân váy tennis", "Chân váy đuôi cá"],
        ["dáng ngắn", "dáng dài", "cạp cao", "có lót trong", "kẻ caro", "trơn", "họa tiết hoa nhí", "phối cúc"],
        ["Đen", "Be", "Trắng", "Xám", "Nâu", "Xanh navy", "Hồng phấn"],
        ["tuyết mưa", "kaki co giãn", "voan hai lớp", "denim", "dạ mỏng", "vải tweed"],
    ),
    "đầm": (
        "DM", (329, 899),
        ["Đầm suông", "Đầm maxi", "Đầm babydoll", "Đầm body", "Đầm sơ mi", "Đầm hai dây", "Đầm công sở"],
        ["cổ vuông", "tay phồng", "họa tiết hoa", "thắt eo", "xẻ tà", "dự tiệc", "đi biển", "cổ sen", "trơn"],
        ["Đen", "Trắng", "Đỏ đô", "Xanh pastel", "Vàng bơ", "Hồng", "Be", "Xanh lá"],
        ["voan lụa", "đũi", "lụa satin", "cotton lạnh", "thun gân", "linen", "tơ óng"],
    ),
    "áo khoác": (
        "AK", (399, 1290),
        ["Áo khoác bomber", "Áo khoác jeans", "Áo blazer", "Áo khoác gió", "Áo cardigan", "Áo hoodie",
         "Áo khoác dạ", "Áo khoác kaki"],
        ["basic", "form rộng", "có mũ", "chống nắng", "hai lớp", "lót lông", "dáng lửng", "unisex"],
        ["Đen", "Be", "Xám", "Xanh rêu", "Nâu", "Xanh navy", "Kem"],
        ["dù hai lớp", "nỉ bông", "denim", "dạ ép", "kaki cotton", "len dệt kim", "polyester chống nước"],
    ),
    "giày": (
        "GI", (399, 1490),
        ["Giày sneaker", "Giày búp bê", "Giày loafer", "Giày cao gót", "Giày sandal", "Giày thể thao",
         "Giày boots cổ thấp"],
        ["da trơn", "đế bằng", "đế cao 5cm", "mũi nhọn", "quai mảnh", "đế chunky", "basic", "phối màu"],
        ["Trắng", "Đen", "Be", "Nâu", "Kem", "Xám"],
        ["da tổng hợp", "da bò thật", "vải canvas", "da lộn", "lưới thoáng khí"],
    ),
    "túi": (
        "TU", (299, 990),
        ["Túi tote", "Túi đeo chéo", "Túi xách tay", "Balo mini", "Túi kẹp nách", "Túi bucket"],
        ["canvas", "da mềm", "khóa kim loại", "quai xích", "cỡ lớn", "cỡ nhỏ", "dây bản to", "basic"],
        ["Đen", "Be", "Nâu", "Trắng", "Kem", "Đỏ đô"],
        ["vải canvas dày", "da PU cao cấp", "da bò thật", "vải dù chống nước", "cói đan"],
    ),
    "phụ kiện": (
        "PK", (59, 349),
        ["Mũ bucket", "Mũ lưỡi trai", "Thắt lưng da", "Khăn lụa", "Tất cổ cao", "Kẹp tóc", "Kính mát",
         "Vòng cổ", "Bông tai"],
        ["basic", "thêu chữ", "bản nhỏ", "họa tiết", "unisex", "mạ vàng", "trơn"],
        ["Đen", "Trắng", "Be", "Nâu", "Bạc", "Vàng"],
        ["cotton", "da PU", "lụa", "thép không gỉ", "kaki", "nhựa acetate"],
    ),
}
PER_CATEGORY = 35  # 9 categories x 35 = 315 products

FIT_PHRASES = {
    "áo thun": ["mặc hằng ngày thoải mái", "dễ phối với quần jeans hoặc chân váy", "thấm hút mồ hôi tốt"],
    "áo sơ mi": ["lịch sự khi đi làm", "ít nhăn, dễ là ủi", "phối được cả quần âu lẫn jeans"],
    "quần jeans": ["tôn dáng, dễ phối đồ", "bền màu sau nhiều lần giặt", "đứng form, không bai dão"],
    "váy": ["nữ tính và thanh lịch", "dễ phối với áo thun hay sơ mi", "phù hợp đi học, đi làm"],
    "đầm": ["tôn dáng, che khuyết điểm tốt", "hợp đi chơi, dự tiệc", "nhẹ và mát cho ngày hè"],
    "áo khoác": ["giữ ấm vừa phải", "chắn gió, chống nắng tốt", "phối được nhiều phong cách"],
    "giày": ["êm chân khi đi cả ngày", "đế chống trơn trượt", "dễ phối với nhiều trang phục"],
    "túi": ["đựng vừa điện thoại, ví và sổ tay", "ngăn khóa kéo chắc chắn", "hợp đi làm lẫn đi chơi"],
    "phụ kiện": ["điểm nhấn cho bộ trang phục", "nhỏ gọn, dễ mang theo", "hợp làm quà tặng"],
}


def sizes_for(category, name, rng):
    if category in ("áo thun", "áo sơ mi", "áo khoác"):
        return TOPS_BIG if rng.random() < 0.4 else TOPS
    if category == "quần jeans":
        if "nữ" in name or "lưng cao" in name or "cạp cao" in name or "loe" in name:
            return JEANS_WOMEN
        return JEANS_MEN
    if category == "váy":
        return DRESS
    if category == "đầm":
        return DRESS_BIG if rng.random() < 0.5 else DRESS
    if category == "giày":
        women = ("búp bê", "cao gót", "mũi nhọn", "quai mảnh")
        return SHOES_WOMEN if any(w in name for w in women) else SHOES_MEN
    return FREE


def slug(text):
    text = text.replace("đ", "d").replace("Đ", "D")
    text = unicodedata.normalize("NFD", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Mn").lower()
    out = "".join(c if c.isalnum() else "-" for c in text)
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")


def make_catalog(rng):
    products = []
    for category, (prefix, (lo, hi), types, mods, colors, materials) in CATEGORIES.items():
        combos = [(t, m) for t in types for m in mods]
        rng.shuffle(combos)
        for i, (ptype, mod) in enumerate(combos[:PER_CATEGORY], start=1):
            name = f"{ptype} {mod}"
            sku = f"{prefix}{i:03d}"
            price = rng.randrange(lo, hi + 1, 10) * 1000  # every lo ends in 9: 149000, 159000, ...
            n_colors = rng.randint(2, 4) if category != "phụ kiện" else rng.randint(1, 3)
            prod_colors = rng.sample(colors, n_colors)
            material = rng.choice(materials)
            fit = rng.sample(FIT_PHRASES[category], 2)
            desc = (
                f"{name} chất liệu {material}, {fit[0]}. "
                f"Có {len(prod_colors)} màu: {', '.join(c.lower() for c in prod_colors)}; {fit[1]}."
            )
            products.append({
                "sku": sku,
                "name": name,
                "category": category,
                "price_vnd": price,
                "sizes": sizes_for(category, name, rng),
                "colors": prod_colors,
                "material": material,
                "description": desc,
                "url": f"{URL_BASE}/{slug(name)}-{sku.lower()}",
            })
    return products


# category -> list of (size, chest, waist, hip, height, weight, foot length); ranges as "a-b" text, "" = not applicable
SIZE_CHARTS = {
    "áo thun": [
        ("S", "84-88", "", "", "150-158", "42-50", ""), ("M", "88-92", "", "", "158-165", "50-58", ""),
        ("L", "92-98", "", "", "165-172", "58-66", ""), ("XL", "98-104", "", "", "170-176", "66-74", ""),
        ("XXL", "104-110", "", "", "174-182", "74-84", "")],
    "áo sơ mi": [
        ("S", "86-90", "70-74", "", "152-160", "43-51", ""), ("M", "90-94", "74-78", "", "160-166", "51-59", ""),
        ("L", "94-100", "78-84", "", "166-172", "59-67", ""), ("XL", "100-106", "84-90", "", "170-177", "67-75", ""),
        ("XXL", "106-112", "90-96", "", "175-183", "75-85", "")],
    "áo khoác": [
        ("S", "88-92", "", "", "150-158", "43-51", ""), ("M", "92-96", "", "", "158-165", "51-59", ""),
        ("L", "96-102", "", "", "165-172", "59-68", ""), ("XL", "102-108", "", "", "170-177", "68-76", ""),
        ("XXL", "108-114", "", "", "175-183", "76-86", "")],
    "váy": [
        ("S", "", "62-66", "84-88", "148-156", "40-47", ""), ("M", "", "66-70", "88-92", "154-162", "47-53", ""),
        ("L", "", "70-75", "92-97", "158-168", "53-60", "")],
    "đầm": [
        ("S", "78-82", "62-66", "84-88", "148-156", "40-47", ""), ("M", "82-86", "66-70", "88-92", "154-162", "47-53", ""),
        ("L", "86-91", "70-75", "92-97", "158-166", "53-60", ""), ("XL", "91-96", "75-80", "97-102", "162-170", "60-67", "")],
    "quần jeans": [
        ("26", "", "64-66", "84-87", "148-156", "40-45", ""), ("27", "", "66-69", "87-90", "152-160", "45-49", ""),
        ("28", "", "69-72", "90-93", "155-165", "49-54", ""), ("29", "", "72-75", "93-96", "160-168", "54-58", ""),
        ("30", "", "75-78", "96-99", "163-170", "58-63", ""), ("31", "", "78-81", "99-102", "165-173", "63-68", ""),
        ("32", "", "81-84", "102-105", "168-176", "68-74", ""), ("34", "", "84-90", "105-110", "170-180", "74-82", "")],
    "giày": [
        ("35", "", "", "", "", "", "22.5"), ("36", "", "", "", "", "", "23.0"), ("37", "", "", "", "", "", "23.5"),
        ("38", "", "", "", "", "", "24.0"), ("39", "", "", "", "", "", "24.5"), ("40", "", "", "", "", "", "25.0"),
        ("41", "", "", "", "", "", "25.5"), ("42", "", "", "", "", "", "26.0"), ("43", "", "", "", "", "", "26.5")],
}

PROMOTIONS = [
    ("HELLOSUMMER", "Giảm 10% cho mọi đơn hàng mùa hè", 10, 300000, "2025-06-01", "2025-07-31"),
    ("FREESHIP50", "Giảm 5% và hỗ trợ phí vận chuyển cho đơn từ 400.000đ", 5, 400000, "2025-06-01", "2025-06-30"),
    ("NEWBIE15", "Giảm 15% cho đơn hàng đầu tiên của khách mới", 15, 200000, "2025-01-01", "2025-12-31"),
    ("JEANS20", "Giảm 20% khi mua quần jeans, áp dụng cho đơn từ 700.000đ", 20, 700000, "2025-06-10", "2025-06-30"),
    ("VIP25", "Giảm 25% dành cho thành viên hạng Vàng, đơn từ 1.500.000đ", 25, 1500000, "2025-05-01", "2025-08-31"),
    ("BACK2SCHOOL", "Giảm 12% mùa tựu trường cho đơn từ 350.000đ", 12, 350000, "2025-08-01", "2025-09-15"),
    ("TET2025", "Giảm 20% dịp Tết Ất Tỵ", 20, 500000, "2025-01-15", "2025-02-05"),
    ("WOMENDAY", "Giảm 8/3: 15% cho đầm và váy", 15, 300000, "2025-03-01", "2025-03-09"),
    ("FLASH30", "Flash sale cuối tuần giảm 30%, đơn từ 1.000.000đ", 30, 1000000, "2025-06-20", "2025-06-22"),
    ("COMBO3", "Mua từ 3 sản phẩm giảm 10%, đơn từ 600.000đ", 10, 600000, "2025-04-01", "2025-06-30"),
    ("BDAY7", "Sinh nhật StyleVN 7 tuổi: giảm 7% không cần đơn tối thiểu", 7, 0, "2025-05-20", "2025-05-31"),
    ("SALE11", "Ngày hội 11/11 giảm 11%", 11, 200000, "2024-11-10", "2024-11-12"),
]

HO = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô",
      "Dương", "Lý", "Đinh", "Trương", "Mai", "Lương"]
DEM_NU = ["Thị", "Ngọc", "Thu", "Thanh", "Minh", "Khánh", "Bảo", "Phương", "Hoài", "Diệu"]
DEM_NAM = ["Văn", "Minh", "Quốc", "Đức", "Hữu", "Thành", "Gia", "Anh", "Công", "Tuấn"]
TEN_NU = ["Anh", "Trang", "Linh", "Hương", "Ngân", "Vy", "Thảo", "Hà", "Mai", "Yến", "Nhung", "Quỳnh", "Hạnh", "Chi",
          "Uyên", "My", "Nhi", "Trâm", "Loan", "Giang"]
TEN_NAM = ["Nam", "Hùng", "Dũng", "Khoa", "Huy", "Tùng", "Long", "Phúc", "Bảo", "Sơn", "Quân", "Khánh", "Tài",
           "Đạt", "Thắng", "Vinh", "Hiếu", "Trung", "Lâm", "Nghĩa"]
MOBILE_PREFIXES = ["032", "033", "034", "035", "036", "037", "038", "039", "070", "076", "077", "078", "079",
                   "081", "082", "083", "084", "085", "086", "088", "089", "090", "091", "093", "094", "096",
                   "097", "098"]
# (city, region, shipping days min, max); the regions match data/policies/van-chuyen.md
CITIES = [
    ("Hà Nội", "nội thành", 1, 2), ("TP. Hồ Chí Minh", "nội thành", 1, 2), ("Đà Nẵng", "miền Trung", 2, 4),
    ("Hải Phòng", "miền Bắc", 2, 3), ("Cần Thơ", "miền Nam", 2, 3), ("Bình Dương", "miền Nam", 2, 3),
    ("Đồng Nai", "miền Nam", 2, 3), ("Nghệ An", "miền Trung", 3, 5), ("Thanh Hóa", "miền Bắc", 2, 4),
    ("Khánh Hòa", "miền Trung", 3, 4), ("Lâm Đồng", "miền Nam", 3, 4), ("Thừa Thiên Huế", "miền Trung", 3, 4),
    ("Quảng Ninh", "miền Bắc", 2, 3), ("Hà Giang", "vùng xa", 4, 6), ("Cà Mau", "vùng xa", 4, 6),
    ("Điện Biên", "vùng xa", 4, 6),
]
CARRIERS = [("GHN", "GHN"), ("GHTK", "S"), ("Viettel Post", "VTP"), ("J&T Express", "JT"), ("Ninja Van", "NJV")]
PAYMENTS = ["COD", "Chuyển khoản", "Ví MoMo", "ZaloPay", "VNPay"]
# status -> (weight, min age in days, max age in days) of the order at STORE_TODAY
STATUSES = [
    ("Đang chuẩn bị", 10, 0, 1), ("Đang giao", 20, 1, 5), ("Đã giao", 55, 4, 100),
    ("Đã hủy", 8, 1, 100), ("Đang hoàn trả", 7, 5, 16),
]
N_ORDERS = 400
N_CUSTOMERS = 260


def make_customers(rng):
    customers, phones = [], set()
    while len(customers) < N_CUSTOMERS:
        female = rng.random() < 0.7
        name = " ".join([rng.choice(HO), rng.choice(DEM_NU if female else DEM_NAM),
                         rng.choice(TEN_NU if female else TEN_NAM)])
        phone = rng.choice(MOBILE_PREFIXES) + "".join(str(rng.randrange(10)) for _ in range(7))
        if phone in phones:
            continue
        phones.add(phone)
        customers.append((name, phone, rng.choice(CITIES)))
    return customers


def tracking_code(rng, prefix):
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return prefix + "".join(rng.choice(alphabet) for _ in range(10 - len(prefix) + 2))


def make_orders(rng, products, customers):
    orders, items = [], []
    weights = [s[1] for s in STATUSES]
    for n in range(N_ORDERS):
        order_id = f"DH{250001 + n * 7 + rng.randrange(7):06d}"
        name, phone, (city, _region, dmin, dmax) = rng.choice(customers)
        status, _w, amin, amax = rng.choices(STATUSES, weights)[0]
        age = rng.randint(amin, amax)
        created = dt.datetime.combine(STORE_TODAY - dt.timedelta(days=age), dt.time(rng.randint(7, 22),
                                                                                   rng.randrange(60)))
        carrier, prefix = rng.choice(CARRIERS)
        ship_days = rng.randint(dmin, dmax)
        eta = (created.date() + dt.timedelta(days=ship_days + 1))
        if status == "Đang giao" and eta <= STORE_TODAY:
            eta = STORE_TODAY + dt.timedelta(days=rng.randint(1, 2))
        if status == "Đang chuẩn bị":
            tracking = ""
        elif status == "Đã hủy":
            carrier, tracking, eta = "", "", None
        else:
            tracking = tracking_code(rng, prefix)
        lines, seen = [], set()
        for _ in range(rng.choices([1, 2, 3, 4], [45, 30, 17, 8])[0]):
            p = rng.choice(products)
            size, color = rng.choice(p["sizes"]), rng.choice(p["colors"])
            if (p["sku"], size, color) in seen:
                continue
            seen.add((p["sku"], size, color))
            qty = rng.choices([1, 2, 3], [80, 16, 4])[0]
            lines.append((p["sku"], size, color, qty, p["price_vnd"]))
        total = sum(q * price for _s, _z, _c, q, price in lines)
        orders.append({
            "order_id": order_id, "customer_name": name, "customer_phone": phone, "city": city,
            "status": status, "eta": eta.isoformat() if eta else "", "carrier": carrier, "tracking_code": tracking,
            "payment_method": rng.choice(PAYMENTS), "total_vnd": total,
            "created_at": created.strftime("%Y-%m-%d %H:%M"),
        })
        items.extend({"order_id": order_id, "sku": s, "size": z, "color": c, "qty": q, "price_vnd": pr}
                     for s, z, c, q, pr in lines)
    return orders, items


def make_stock(rng, products):
    rows = []
    for p in products:
        for size in p["sizes"]:
            for color in p["colors"]:
                r = rng.random()
                qty = 0 if r < 0.12 else rng.randint(1, 5) if r < 0.35 else rng.randint(6, 60)
                rows.append({"sku": p["sku"], "size": size, "color": color, "qty": qty})
    return rows


def write_csv(path, fieldnames, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fieldnames, lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow(row)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data")
    ap.add_argument("--seed", type=int, default=2025)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)

    products = make_catalog(rng)
    catalog_rows = [dict(p, sizes="|".join(p["sizes"]), colors="|".join(p["colors"])) for p in products]
    write_csv(os.path.join(args.out, "catalog.csv"),
              ["sku", "name", "category", "price_vnd", "sizes", "colors", "material", "description", "url"],
              catalog_rows)

    chart_rows = [dict(zip(["category", "size", "chest_cm", "waist_cm", "hip_cm", "height_cm", "weight_kg",
                            "foot_length_cm"], (cat,) + row))
                  for cat, rows in SIZE_CHARTS.items() for row in rows]
    write_csv(os.path.join(args.out, "size_charts.csv"),
              ["category", "size", "chest_cm", "waist_cm", "hip_cm", "height_cm", "weight_kg", "foot_length_cm"],
              chart_rows)

    write_csv(os.path.join(args.out, "promotions.csv"),
              ["code", "description", "discount_pct", "min_order_vnd", "valid_from", "valid_to"],
              [dict(zip(["code", "description", "discount_pct", "min_order_vnd", "valid_from", "valid_to"], p))
               for p in PROMOTIONS])

    customers = make_customers(rng)
    orders, items = make_orders(rng, products, customers)
    write_csv(os.path.join(args.out, "orders.csv"),
              ["order_id", "customer_name", "customer_phone", "city", "status", "eta", "carrier", "tracking_code",
               "payment_method", "total_vnd", "created_at"], orders)
    write_csv(os.path.join(args.out, "order_items.csv"),
              ["order_id", "sku", "size", "color", "qty", "price_vnd"], items)
    write_csv(os.path.join(args.out, "stock.csv"), ["sku", "size", "color", "qty"], make_stock(rng, products))

    # The invariants, checked here too so a bad edit fails at generation time.
    by_sku = {p["sku"]: p for p in products}
    charted = {(c, r[0]) for c, rows in SIZE_CHARTS.items() for r in rows}
    for p in products:
        if p["category"] in SIZE_CHARTS:
            assert all((p["category"], s) in charted for s in p["sizes"]), p
    for o in orders:
        lines = [i for i in items if i["order_id"] == o["order_id"]]
        assert lines and o["total_vnd"] == sum(i["qty"] * i["price_vnd"] for i in lines), o
        for i in lines:
            p = by_sku[i["sku"]]
            assert i["size"] in p["sizes"] and i["color"] in p["colors"] and i["price_vnd"] == p["price_vnd"]
    assert len({o["order_id"] for o in orders}) == len(orders)
    print(f"{len(products)} products, {len(orders)} orders, {len(items)} items -> {args.out}/")


if __name__ == "__main__":
    main()
