#!/usr/bin/env python3
"""Goldens for `stylevn template` (src/tokenize/): what transformers and tokenizers produce.

Writes two files:
  tests/golden/chat_templates.json   for each case: the template, messages, tools and
      add_generation_prompt, the exact `tokenizer.apply_chat_template(..., tokenize=False)`
      text (or the error it raises), the assistant spans (char offsets, then token index
      ranges), and the Qwen token ids of the text.
  tests/golden/qwen_tokenizer_ids.json   ids and char offsets from the Python `tokenizers`
      package for Vietnamese strings.

Needs transformers 5.x and tokenizers. Usage:
  python scripts/reference/chat_templates.py [--tokenizer models/qwen-tokenizer/tokenizer.json]
      [--qwen3-config models/qwen-tokenizer/tokenizer_config.json] [--out-dir tests/golden]

The Qwen tokenizer package carries Qwen3's chat template; the Qwen2.5 template comes from
tests/fixtures/qwen2.5_chat_template.jinja and SmolLM2's from the constant below. Every
template is stored in the golden, so the Rust tests need no other file.
"""

import argparse
import copy
import json
import re
import shutil
import tempfile
from pathlib import Path

import tokenizers
import transformers
from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]

# SmolLM2-135M-Instruct's template, as its GGUF's tokenizer.chat_template carries it.
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Small templates that exercise the renderer's Python compatibility.
CUSTOM_TEMPLATES = {
    "tojson_args": (
        "{{ tools | tojson(indent=2) }}\n"
        "{{ tools[0] | tojson(separators=(',', ':'), sort_keys=true) }}\n"
        "{{ messages | tojson(indent=4, sort_keys=true) }}\n"
        "{{ messages[-1] | tojson(ensure_ascii=true) }}\n"
        "{{ {} | tojson(indent=2) }}{{ [] | tojson(indent=2) }}{{ 'x' | tojson(indent='\t') }}"
    ),
    "python_printing": (
        "{{ none }}|{{ true }}|{{ false }}|{{ 1.0 }}|{{ 2.5e20 }}|{{ 1e-7 }}|{{ 42 }}|"
        "{{ [1, 'a', none, true, 0.5] }}|{{ {'k': 'v', \"it's\": [1]} }}|{{ messages[0] }}"
    ),
    "special_tokens": "[{{ bos_token }}][{{ eos_token }}][{{ pad_token }}][{{ unk_token }}]",
    "loop_controls": (
        "{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}"
        "{{ loop.index }}:{{ m.role }};{% if loop.index >= 3 %}{% break %}{% endif %}{% endfor %}"
    ),
    "string_methods": (
        "{{ messages[1].content.strip().upper() }}|{{ messages[1].content.split(' ') | length }}|"
        "{{ messages[1].content.startswith('Shop') }}|{{ '  x y  '.rstrip() }}.|{{ 'a-b-c'.split('-')[-1] }}|"
        "{% for k, v in tools[0].function.parameters.properties.items() %}{{ k }}={{ v.type }};{% endfor %}"
    ),
    "raise_exception": (
        "{% if messages[0].role != 'user' %}"
        "{{ raise_exception('Cuộc hội thoại phải bắt đầu bằng tin nhắn của khách (user)') }}{% endif %}ok"
    ),
}

SYSTEM = "Bạn là trợ lý ảo của cửa hàng thời trang StyleVN. Trả lời ngắn gọn, lịch sự bằng tiếng Việt."

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search_products",
            "description": "Tìm sản phẩm theo từ khoá & bộ lọc; giá <= max_price_vnd, ví dụ: 'áo sơ mi' <nam>",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": 'Từ khoá, vd: "váy công sở" hoặc <đầm maxi>'},
                    "max_price_vnd": {"type": "integer", "description": "Giá tối đa (đ), 0 < giá"},
                    "sizes": {"type": "array", "items": {"type": "string", "enum": ["S", "M", "L", "XL"]}},
                    "filters": {
                        "type": "object",
                        "properties": {
                            "color": {"type": "string", "description": "Màu: trắng/đen/be"},
                            "in_stock": {"type": "boolean", "default": True},
                            "min_rating": {"type": "number", "default": 4.5},
                        },
                    },
                },
                "required": ["query"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "check_order",
            "description": "Tra cứu đơn hàng của khách (mã đơn dạng SV + 6 chữ số) & trạng thái giao hàng",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string", "pattern": "^SV\\d{6}$"}},
                "required": ["order_id"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_shipping_fee",
            "description": "Phí ship theo tỉnh/thành & cân nặng",
            "parameters": {
                "type": "object",
                "properties": {
                    "province": {"type": "string"},
                    "weight_kg": {"type": "number", "default": 0.5},
                },
                "required": ["province"],
            },
        },
    },
]


def call(id_, name, arguments):
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": arguments}}


TOOL_CHAT = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Shop ơi, có váy công sở màu be size M dưới 500k không? Ship về Đà Nẵng bao nhiêu?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            call(
                "call_1",
                "search_products",
                {
                    "query": "váy công sở",
                    "max_price_vnd": 500000,
                    "sizes": ["M"],
                    "filters": {"color": "be", "in_stock": True, "min_rating": 4.5},
                },
            ),
            call("call_2", "get_shipping_fee", {"province": "Đà Nẵng", "weight_kg": 0.5}),
        ],
    },
    {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": '[{"sku": "VCS-021", "tên": "Váy công sở dáng A", "giá_vnd": 459000, "còn": true}]',
    },
    {"role": "tool", "tool_call_id": "call_2", "content": '{"phí_vnd": 30000, "ngày": "2-3"}'},
    {
        "role": "assistant",
        "content": "Dạ có ạ! Váy công sở dáng A (VCS-021) màu be size M giá 459.000đ, "
        "ship về Đà Nẵng 30.000đ, 2-3 ngày nhận hàng ạ.",
    },
    {"role": "user", "content": "Ok em đặt rồi, mã đơn SV123456, kiểm tra giúp em với"},
    {
        "role": "assistant",
        "content": "Dạ em kiểm tra ngay ạ.",
        "tool_calls": [call("call_3", "check_order", '{"order_id": "SV123456"}')],
    },
    {"role": "tool", "tool_call_id": "call_3", "content": '{"trạng_thái": "đang giao", "dự_kiến": "12/03"}'},
    {"role": "assistant", "content": "Đơn SV123456 đang được giao, dự kiến tới ngày 12/03 ạ 🚚"},
]

MULTI_TURN = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Shop ơi, áo thun trắng size M còn hàng không ạ?"},
    {"role": "assistant", "content": "Dạ còn ạ! Áo thun trắng size M giá 199.000đ."},
    {"role": "user", "content": "ok ship về Hà Nội bao lâu?"},
    {"role": "assistant", "content": "Dạ 2-3 ngày làm việc ạ 🚚"},
]

NO_SYSTEM = [
    {"role": "user", "content": "sp nì cóa size xl hog shop? ib e vs nha <3"},
    {"role": "assistant", "content": "Dạ mẫu này có size XL ạ, chị inbox số đo để em tư vấn nha ❤️"},
]

EDGE_CHARS = [
    {"role": "user", "content": 'Ký tự lạ: \\ "ngoặc kép" \'đơn\' <b>&amp;</b>\n\ttab\r\nhết'},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            call(
                "c1",
                "search_products",
                {
                    "query": 'áo "polo" \\ <nam> & nữ\n',
                    "ctrl": "\u0001\u001f\u007f\u2028 😀 \u00a0",
                    "numbers": [0.5, 1e-05, 1.5e16, 100.0, -0.0, 3.14, 12345678901234567890, -7],
                    "flags": [True, False, None],
                    "empty": {"obj": {}, "list": []},
                },
            )
        ],
    },
    {"role": "tool", "content": "{}"},
    {"role": "assistant", "content": "Xong ạ."},
]

QWEN3_THINKING = [
    {"role": "user", "content": "Áo khoác dù có chống nước không?"},
    {
        "role": "assistant",
        "reasoning_content": "Khách hỏi về áo khoác dù, chất liệu polyester phủ chống thấm.",
        "content": "Dạ áo khoác dù chống nước nhẹ, đi mưa nhỏ thoải mái ạ.",
    },
]


def served(messages):
    """The messages as an OpenAI-compatible server (vLLM, `stylevn serve`) hands them
    to the template: tool-call arguments sent as JSON strings parsed into objects."""
    out = copy.deepcopy(messages)
    for m in out:
        for c in m.get("tool_calls") or []:
            if isinstance(c["function"]["arguments"], str):
                c["function"]["arguments"] = json.loads(c["function"]["arguments"])
    return out


def cases():
    """(name, template key, messages, tools, add_generation_prompt)."""
    out = []
    for tpl in ["qwen2.5", "qwen3"]:
        out += [
            (f"{tpl}/multi_turn", tpl, MULTI_TURN, None, False),
            (f"{tpl}/multi_turn_generation_prompt", tpl, MULTI_TURN[:4], None, True),
            (f"{tpl}/no_system", tpl, NO_SYSTEM, None, False),
            (f"{tpl}/no_system_generation_prompt", tpl, NO_SYSTEM[:1], None, True),
            (f"{tpl}/tools_full", tpl, TOOL_CHAT, TOOLS, False),
            (f"{tpl}/tools_after_tool_results", tpl, TOOL_CHAT[:5], TOOLS, True),
            (f"{tpl}/tools_no_system", tpl, TOOL_CHAT[1:3], TOOLS, False),
            (f"{tpl}/tools_no_system_generation_prompt", tpl, TOOL_CHAT[1:2], TOOLS, True),
            (f"{tpl}/edge_chars", tpl, EDGE_CHARS, TOOLS[:1], False),
            (f"{tpl}/system_mid_conversation", tpl, MULTI_TURN[:3] + [{"role": "system", "content": "Khách VIP."}] + MULTI_TURN[3:], None, False),
        ]
    out += [
        ("qwen2.5/tools_full_served", "qwen2.5", served(TOOL_CHAT), TOOLS, False),
        ("qwen3/reasoning_content", "qwen3", QWEN3_THINKING, None, False),
        ("smollm2/no_system", "smollm2", NO_SYSTEM, None, False),
        ("smollm2/multi_turn", "smollm2", MULTI_TURN, None, False),
        ("smollm2/generation_prompt", "smollm2", MULTI_TURN[:4], None, True),
    ]
    for name in CUSTOM_TEMPLATES:
        msgs = MULTI_TURN if name != "raise_exception" else MULTI_TURN[:2]
        out.append((f"custom/{name}", name, msgs, TOOLS, False))
    return out


def assistant_spans(render, messages, tools):
    """Char spans of each assistant turn: from the end of the rendered history with the
    generation prompt to the end of the history through that turn, trailing whitespace
    trimmed. None when a partial render is not a prefix of the full one."""
    full = render(messages, tools, False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = render(messages[:i], tools, True)
        through = render(messages[: i + 1], tools, False).rstrip()
        if not (full.startswith(before) and full.startswith(through) and len(before) <= len(through)):
            return None
        spans.append([len(before), len(through)])
    return spans


def token_spans(offsets, char_spans):
    """Token index ranges [first, last + 1) of the tokens lying inside each char span."""
    out = []
    for s, e in char_spans:
        inside = [i for i, (a, b) in enumerate(offsets) if s <= a and b <= e and a < b]
        out.append([inside[0], inside[-1] + 1] if inside else [0, 0])
    return out


def dump(doc):
    """Indented JSON with lists of integers (ids, offsets, spans) on one line."""

    def compact(m):
        try:
            return json.dumps(json.loads(m.group(0)))
        except json.JSONDecodeError:  # brackets of two sibling lists: leave as they are
            return m.group(0)

    text = json.dumps(doc, ensure_ascii=False, indent=1)
    text = re.sub(r"\[[-\d,\s]+\]", compact, text)
    return re.sub(r"\[[-\d,\s\[\]]+\]", compact, text) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", default=ROOT / "models/qwen-tokenizer/tokenizer.json", type=Path)
    ap.add_argument("--qwen3-config", type=Path, help="Qwen3 tokenizer_config.json (default: beside --tokenizer)")
    ap.add_argument("--out-dir", default=ROOT / "tests/golden", type=Path)
    args = ap.parse_args()
    qwen3_config = json.loads((args.qwen3_config or args.tokenizer.with_name("tokenizer_config.json")).read_text())
    templates = {
        "qwen2.5": (ROOT / "tests/fixtures/qwen2.5_chat_template.jinja").read_text(),
        "qwen3": qwen3_config["chat_template"],
        "smollm2": SMOLLM2_TEMPLATE,
        **CUSTOM_TEMPLATES,
    }
    # A Qwen2.5-style tokenizer directory: the Qwen tokenizer with the Qwen2.5 template.
    special = {k: qwen3_config.get(k) for k in ["bos_token", "eos_token", "pad_token", "unk_token"]}
    config = {**{k: v for k, v in qwen3_config.items() if k != "chat_template"}, "chat_template": templates["qwen2.5"]}
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(args.tokenizer, Path(tmp) / "tokenizer.json")
        (Path(tmp) / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2))
        tok = AutoTokenizer.from_pretrained(tmp)
    raw = tokenizers.Tokenizer.from_file(str(args.tokenizer))

    golden_cases = []
    for name, tpl, messages, tools, add_gen in cases():
        def render(msgs, tools, gen, tpl=tpl):
            return tok.apply_chat_template(
                copy.deepcopy(msgs), tools=tools, chat_template=templates[tpl], add_generation_prompt=gen, tokenize=False
            )

        case = {"name": name, "template": tpl, "messages": messages, "tools": tools, "add_generation_prompt": add_gen}
        try:
            case["text"] = render(messages, tools, add_gen)
        except Exception as e:  # the template raised: the golden records the message
            case["error"] = str(e)
            golden_cases.append(case)
            continue
        enc = raw.encode(case["text"], add_special_tokens=False)
        case["input_ids"] = enc.ids
        if not add_gen and not tpl.startswith(tuple(CUSTOM_TEMPLATES)):
            spans = assistant_spans(render, messages, tools)
            case["char_spans"] = spans
            case["token_spans"] = None if spans is None else token_spans(enc.offsets, spans)
        golden_cases.append(case)

    golden = {
        "generated_by": f"scripts/reference/chat_templates.py (transformers {transformers.__version__}, "
        f"tokenizers {tokenizers.__version__})",
        "special_tokens": special,
        "templates": templates,
        "cases": golden_cases,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "chat_templates.json").write_text(dump(golden))

    ids = []
    for text in TOKENIZER_STRINGS:
        enc = raw.encode(text, add_special_tokens=False)
        ids.append({"text": text, "ids": enc.ids, "offsets": [list(o) for o in enc.offsets]})
    doc = {"generated_by": f"scripts/reference/chat_templates.py (tokenizers {tokenizers.__version__})", "cases": ids}
    (args.out_dir / "qwen_tokenizer_ids.json").write_text(dump(doc))
    print(f"wrote {len(golden_cases)} chat cases and {len(ids)} tokenizer cases to {args.out_dir}")


TOKENIZER_STRINGS = [
    "Xin chào shop, áo sơ mi trắng còn size M không ạ?",
    "xin chao shop, ao so mi trang con size M khong a?",
    "sp nì cóa size xl hog shop? ib e vs nha, thks <3",
    "Giá 1.250.000đ, giảm 15% còn 1.062.500đ",
    "Đơn hàng #SV123456 giao ngày 12/03/2025 lúc 14:30",
    "Đẹp quá 😍👗✨ mua 2 cái nha 👍🏻",
    "Gia đình 👨‍👩‍👧 mặc đồ đôi",
    "Dòng 1\nDòng 2\r\n\n  Dòng 3\t(tab)\n",
    "<|im_start|>user\nChào shop<|im_end|>\n<|im_start|>assistant\n",
    '<tool_call>\n{"name": "check_order", "arguments": {"order_id": "SV000123"}}\n</tool_call><|endoftext|>',
    "Tie\u0302\u0301ng Vie\u0323\u0302t (NFD)",
    "0987654321 | 0,5kg | 99k | 2tr5 | 1tr2",
    "ÁO KHOÁC DÙ NỮ CHỐNG NẮNG UV",
    "Size chart: S (45-50kg), M (50-55kg), L (55-62kg)",
    "   nhiều   khoảng   trắng   ",
    "",
    "đ Đ ư Ư ơ Ơ ă Ă â Â ê Ê ô Ô ỹ Ỹ",
    "Số 12, ngõ 34/5 Phố Huế, Q. Hai Bà Trưng, TP. Hà Nội",
    "https://stylevn.vn/sp/ao-thun-basic?size=M&color=trắng",
    "Cảm ơn 谢谢 ありがとう",
    '{"tên": "Áo dài", "giá_vnd": 850000}',
    "ko bít nữa, để e hỏi ck đã :)))",
]

if __name__ == "__main__":
    main()
