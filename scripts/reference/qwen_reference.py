"""Goldens for Qwen2.5-Coder-0.5B-Instruct from PyTorch transformers (run by hand;
CI never installs PyTorch).

    pip install torch transformers gguf
    python3 scripts/reference/qwen_reference.py [--gguf models/Qwen2.5-Coder-0.5B-Instruct.gguf]

The reference is transformers loading the GGUF file itself: its tokenizer and chat
template from the GGUF metadata, its weights dequantized by gguf-py. So the Rust test
(tests/suite/qwen.rs) checks our GGUF import, our chat-template rendering with tools, our
tokenizer and our engine against a path that shares none of our code.

Writes tests/golden/qwen_logits.json: for each chat (Vietnamese, with and without the
store's tools, a tool-call follow-up) the rendered prompt and its ids, every
position's two highest logits, the last position's 40 highest and a fixed sample of
ids, and 32 greedy tokens; and tests/golden/qwen_tokenizer.json: ids of plain texts.
"""

import argparse
import json
import os
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

torch.set_num_threads(2)
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden")
TOOLS = json.load(open(os.path.join(ROOT, "evals", "tools.json")))
SYSTEM = open(os.path.join(ROOT, "src", "data", "mod.rs")).read()  # parsed below
SAMPLED_IDS = list(range(0, 151936, 97))
GREEDY_TOKENS = 32


def store_system_prompt():
    """The store's SYSTEM_PROMPT, read from src/data/mod.rs (a Rust string literal
    continued with backslash-newlines)."""
    start = SYSTEM.index('pub const SYSTEM_PROMPT: &str = "') + len('pub const SYSTEM_PROMPT: &str = "')
    end = SYSTEM.index('";', start)
    literal = SYSTEM[start:end]
    out, i = [], 0
    while i < len(literal):
        c = literal[i]
        if c == "\\":
            nxt = literal[i + 1]
            if nxt == "\n":
                i += 2
                while literal[i] in " \t":
                    i += 1
                continue
            out.append({"n": "\n", '"': '"', "\\": "\\"}[nxt])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def chats():
    system = store_system_prompt()
    call = {"name": "get_order_status", "arguments": {"order_id": "DH251352"}}
    result = {"order_id": "DH251352", "status": "Đang giao", "eta": "2025-06-23", "carrier": "GHN"}
    return [
        {"name": "plain", "tools": None, "messages": [
            {"role": "user", "content": "Dạ shop ơi, áo khoác jeans nữ giặt máy được không ạ? Em cảm ơn."}]},
        {"name": "store_tools", "tools": TOOLS, "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": "Đơn hàng DH251352 của em đang ở đâu rồi ạ?"}]},
        {"name": "tool_follow_up", "tools": TOOLS, "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": "Đơn hàng DH251352 của em đang ở đâu rồi ạ?"},
            {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": call}]},
            {"role": "tool", "name": "get_order_status", "content": json.dumps(result, ensure_ascii=False)}]},
    ]


TOKENIZER_TEXTS = [
    "Xin chào shop, áo sơ mi trắng còn size M không ạ?",
    "ao khoac nu mau den con size L ko ak",
    "Dạ, đơn DH251352 đang được giao, dự kiến ngày 23/06 ạ. Tổng tiền 1.250.000đ.",
    "<tool_call>\n{\"name\": \"get_stock\", \"arguments\": {\"sku\": \"AK-0042\"}}\n</tool_call>",
    "emoji 👗👠 and CJK 衣服, numbers 1234567890\n\tTab and  double  spaces",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=os.path.join(ROOT, "models", "Qwen2.5-Coder-0.5B-Instruct.gguf"))
    a = ap.parse_args()
    directory, name = os.path.split(os.path.abspath(a.gguf))
    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    model.eval()
    print(f"transformers loaded the GGUF in {time.time() - t0:.1f}s")
    eos = [tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    out = {"generator": "scripts/reference/qwen_reference.py",
           "reference": "transformers from_pretrained(gguf_file=...), tokenizer and chat template from the GGUF",
           "torch": torch.__version__, "sampled_ids": SAMPLED_IDS, "chats": []}
    with torch.no_grad():
        for chat in chats():
            text = tok.apply_chat_template(chat["messages"], tools=chat["tools"], add_generation_prompt=True,
                                           tokenize=False)
            ids = tok(text, add_special_tokens=False)["input_ids"]
            t1 = time.time()
            logits = model(torch.tensor([ids])).logits[0]
            top2 = torch.topk(logits, 2, dim=-1)
            last = logits[-1]
            top = torch.topk(last, 40)
            gen = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=GREEDY_TOKENS, do_sample=False, eos_token_id=eos,
                                 pad_token_id=eos[1])[0, len(ids):].tolist()
            out["chats"].append({
                "name": chat["name"], "messages": chat["messages"], "tools": chat["tools"],
                "text": text, "ids": ids,
                "top2_ids": top2.indices.tolist(),
                "top2_logits": [[round(float(x), 5) for x in row] for row in top2.values],
                "last_top_ids": top.indices.tolist(),
                "last_top_logits": [round(float(x), 5) for x in top.values],
                "last_sampled": [round(float(last[i]), 5) for i in SAMPLED_IDS],
                "greedy": gen,
                "greedy_text": tok.decode(gen, skip_special_tokens=True),
            })
            print(f"{chat['name']}: {len(ids)} tokens, {time.time() - t1:.1f}s; greedy "
                  f"{tok.decode(gen, skip_special_tokens=True)!r}")
    with open(os.path.join(GOLDEN, "qwen_logits.json"), "w") as f:
        json.dump(out, f, ensure_ascii=False)
    texts = {"generator": "scripts/reference/qwen_reference.py", "texts": [
        {"text": t, "transformers_gguf": tok(t, add_special_tokens=False)["input_ids"]} for t in TOKENIZER_TEXTS]}
    with open(os.path.join(GOLDEN, "qwen_tokenizer.json"), "w") as f:
        json.dump(texts, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
