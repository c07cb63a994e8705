#!/usr/bin/env python3
"""Goldens for stylevn's text metrics, from the reference implementations.

Writes
  tests/golden/rouge_english.json     ROUGE-1/2/L/Lsum (P, R, F) from Google's rouge_score
                                      (no stemming) and sentence chrF from sacreBLEU, on
                                      deterministic ASCII English pairs;
  tests/golden/rouge_vietnamese.json  unrelated and identical Vietnamese pairs, with what
                                      rouge_score's ASCII tokenizer makes of them.

Run by hand, never in CI:
  pip install rouge-score sacrebleu && python3 scripts/reference/rouge_reference.py
"""
import json
import os
import random

from rouge_score import rouge_scorer
from sacrebleu.metrics import CHRF

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]

HANDWRITTEN = [
    ("The cat sat on the mat.", "The cat is sitting on the mat."),
    ("Your order ships on Monday.", "Your order will ship Monday morning."),
    ("Returns are accepted within 14 days.", "You can return items within 14 days of delivery."),
    ("Free shipping on orders over 500,000 VND!", "Orders above 500,000 VND ship for free."),
    ("It's 9:30 a.m. -- call us at 1900-1234.", "Call 1900 1234 after 9:30 a.m."),
    ("hello_world foo-bar baz", "hello world foo bar"),
    ("A B C D E", "a b c d e"),
    ("the the the the", "the cat"),
    ("First line here.\nSecond line there.", "First line.\nSecond line is here.\nThird line."),
    ("police killed the gunman", "the gunman police killed"),
    ("", "nothing predicted"),
    ("nothing referenced", ""),
    ("!!! ??? ...", "only punctuation ..."),
    ("Size M fits 50-58 kg.", "Size M fits customers from 50 to 58 kg."),
    ("Order DH250004 is on its way.", "Order DH250004 is being delivered."),
]

WORDS = ("order ship size color return refund exchange the a of to is are will can your our we you "
         "shirt jeans dress jacket shoes bag store price discount code delivery days within free "
         "over under small medium large red blue white black cotton linen wool please thank help "
         "today tomorrow monday friday 1 2 3 14 30 500 999").split()
PUNCT = [".", ",", "!", "?", ";", " -", ":", "'s", " (ok)", "..."]


def sentence(rng, n):
    words = []
    for _ in range(n):
        w = rng.choice(WORDS)
        if rng.random() < 0.15:
            w = w.capitalize()
        if rng.random() < 0.1:
            w += rng.choice(PUNCT)
        words.append(w)
    return " ".join(words)


def generated_pairs(count, seed=20240509):
    rng = random.Random(seed)
    out = []
    for i in range(count):
        ref = sentence(rng, rng.randint(3, 25))
        kind = i % 4
        if kind == 0:  # unrelated
            pred = sentence(rng, rng.randint(3, 25))
        elif kind == 1:  # edited copy
            toks = ref.split()
            for _ in range(rng.randint(1, 4)):
                op = rng.random()
                j = rng.randrange(len(toks))
                if op < 0.4:
                    toks[j] = rng.choice(WORDS)
                elif op < 0.7 and len(toks) > 1:
                    del toks[j]
                else:
                    toks.insert(j, rng.choice(WORDS))
            pred = " ".join(toks)
        elif kind == 2:  # multi-sentence, newline separated
            ref = "\n".join(sentence(rng, rng.randint(3, 10)) for _ in range(rng.randint(2, 4)))
            pred = "\n".join(sentence(rng, rng.randint(3, 10)) for _ in range(rng.randint(1, 4)))
        else:  # shuffled
            toks = ref.split()
            rng.shuffle(toks)
            pred = " ".join(toks)
        out.append((pred, ref))
    return out


VI_UNRELATED = [
    ("Hà Nội là thủ đô của Việt Nam.", "Áo thun này có ba màu và giá hai trăm nghìn."),
    ("Đơn hàng của chị đang được giao.", "Hôm nay trời mưa rất to ở Đà Lạt."),
    ("Em xin lỗi vì sự bất tiện này ạ.", "Quần jeans ống rộng bằng vải bò dày."),
    ("Shop đổi trả trong mười bốn ngày.", "Tối nay tôi đi ăn phở với bạn bè."),
    ("Đầm dự tiệc màu đỏ rượu vang.", "Bệnh viện ở đâu gần nhất vậy anh?"),
    ("Phí vận chuyển nội thành là ba mươi nghìn.", "Mèo nhà tôi thích ngủ trên ghế sô pha."),
    ("Chị cao một mét sáu nặng năm mươi ký.", "Giải bóng đá năm nay rất hấp dẫn."),
    ("Mã giảm giá chỉ áp dụng cho đơn từ ba trăm nghìn.", "Cây bàng trước cổng trường đã rụng lá."),
    ("Áo khoác gió chống nước nhẹ và bền.", "Tiếng Việt có sáu thanh điệu khác nhau."),
    ("Dạ em kiểm tra tồn kho size M ngay ạ.", "Chuyến bay đi Hồ Chí Minh bị hoãn hai giờ."),
    ("Thanh toán khi nhận hàng hoặc chuyển khoản.", "Người dân đổ xô đi mua vàng ngày vía Thần Tài."),
    ("Túi xách da thật bảo hành sáu tháng.", "Học sinh được nghỉ Tết từ tuần sau."),
    ("Giày sneaker trắng đế cao su non.", "Bà ngoại nấu canh chua cá lóc rất ngon."),
    ("Đơn hàng sẽ đến trong hai đến bốn ngày.", "Thư viện thành phố mở cửa đến chín giờ tối."),
    ("Hotline hỗ trợ khách hàng làm việc cả tuần.", "Những cánh đồng lúa chín vàng ở Tây Bắc."),
    ("Váy maxi hoa nhí phù hợp đi biển.", "Giá xăng tăng nhẹ từ chiều hôm qua."),
    ("Chính sách bảo mật thông tin khách hàng.", "Đội tuyển bóng chuyền nữ giành huy chương."),
    ("Sơ mi linen thoáng mát cho mùa hè.", "Tàu hỏa Bắc Nam chạy mất ba mươi giờ."),
    ("Anh vui lòng cho em xin mã đơn ạ.", "Núi Fansipan cao nhất Đông Dương."),
    ("Sản phẩm đã hết hàng màu xanh navy.", "Chợ nổi Cái Răng họp từ sáng sớm."),
]

VI_IDENTICAL = [
    "Dạ, đơn hàng DH250004 của anh đang giao, dự kiến đến ngày 23/06 ạ.",
    "Em xin lỗi, câu hỏi này nằm ngoài phạm vi hỗ trợ của shop ạ.",
    "Áo thun cổ tim wash bụi giá 249.000đ, có size S, M, L, XL ạ.",
    "Shop hỗ trợ đổi trả trong 14 ngày kể từ khi nhận hàng.\nSản phẩm cần còn nguyên tem mác.",
]


def score(scorer, chrf, pred, ref):
    s = scorer.score(ref, pred)  # rouge_score takes (target, prediction)
    row = {"prediction": pred, "reference": ref}
    for t in TYPES:
        row[t] = {"precision": s[t].precision, "recall": s[t].recall, "fmeasure": s[t].fmeasure}
    row["chrf"] = chrf.sentence_score(pred, [ref]).score / 100.0
    return row


def main():
    scorer = rouge_scorer.RougeScorer(TYPES, use_stemmer=False)
    chrf = CHRF()
    pairs = HANDWRITTEN + generated_pairs(120)
    for p, r in pairs:
        assert p.isascii() and r.isascii(), (p, r)
    english = {
        "source": "rouge_score RougeScorer(use_stemmer=False) and sacrebleu CHRF() sentence_score / 100; "
                  "scripts/reference/rouge_reference.py",
        "pairs": [score(scorer, chrf, p, r) for p, r in pairs],
    }
    vietnamese = {
        "source": "scripts/reference/rouge_reference.py; rouge_score_rougeL is what Google's rouge_score gives, "
                  "showing its ASCII tokenizer's failure on Vietnamese",
        "unrelated": [
            {"prediction": p, "reference": r, "rouge_score_rouge1": scorer.score(r, p)["rouge1"].fmeasure,
             "rouge_score_rougeL": scorer.score(r, p)["rougeL"].fmeasure}
            for p, r in VI_UNRELATED
        ],
        "identical": VI_IDENTICAL,
    }
    out = os.path.join(ROOT, "tests", "golden")
    with open(os.path.join(out, "rouge_english.json"), "w", encoding="utf-8") as f:
        json.dump(english, f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(out, "rouge_vietnamese.json"), "w", encoding="utf-8") as f:
        json.dump(vietnamese, f, ensure_ascii=False, indent=1)
        f.write("\n")
    un = vietnamese["unrelated"]
    print(f"{len(pairs)} English pairs; rouge_score on unrelated Vietnamese: mean rouge1 "
          f"{sum(x['rouge_score_rouge1'] for x in un) / len(un):.3f}, rougeL "
          f"{sum(x['rouge_score_rougeL'] for x in un) / len(un):.3f}")


if __name__ == "__main__":
    main()
