"""Golden logits from PyTorch transformers (run by hand; CI never installs PyTorch).

    python3 scripts/reference/model_logits.py [--smollm2-gguf models/SmolLM2-135M-Instruct.Q4_1.gguf]
        [--imported models/smollm2-135m-instruct]

Writes tests/golden/tiny_logits.json (the four tiny models, every position) and
tests/golden/smollm2_logits.json. SmolLM2's reference is transformers loading the
GGUF file itself (its own dequantization, through gguf-py), so the Rust test checks
our GGUF import and our engine against an independent path. The script also loads
our imported directory with transformers and reports how far its weights are from
transformers' own GGUF load.
"""

import argparse
import json
import os
import sys
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, os.path.dirname(__file__))
import tiny_models  # noqa: E402

torch.set_num_threads(2)
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden")

TINY_PROMPTS = [
    [1, 5, 17, 33, 2, 99, 140, 7, 64, 3],
    [(i * 37 + 11) % 160 for i in range(24)],
]


def tiny_goldens():
    out = {"generator": "scripts/reference/model_logits.py", "torch": torch.__version__, "models": {}}
    for spec in tiny_models.SPECS:
        cfg = AutoConfig.for_model(**tiny_models.config(spec))
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager")
        state = {k: torch.from_numpy(v) for k, v in tiny_models.tensors(spec).items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [m for m in missing if not (spec["tied"] and m == "lm_head.weight")]
        assert not missing and not unexpected, (missing, unexpected)
        if spec["tied"]:
            model.tie_weights()
        model.eval()
        entry = {"prompts": []}
        with torch.no_grad():
            for ids in TINY_PROMPTS:
                logits = model(torch.tensor([ids])).logits[0]
                # An explicit all-ones mask: a prompt token equal to the pad id must not be masked.
                gen = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                     max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0)[0, len(ids):].tolist()
                entry["prompts"].append({
                    "ids": ids,
                    "logits": [[round(float(x), 6) for x in row] for row in logits],
                    "greedy": gen,
                })
        out["models"][spec["name"]] = entry
        print(f"{spec['name']}: ok")
    with open(os.path.join(GOLDEN, "tiny_logits.json"), "w") as f:
        json.dump(out, f)


SMOL_TEXTS = [
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "Dạ, shop xin chào anh/chị ạ! Áo thun nam giá 199.000đ, size M còn 12 cái.",
]
SAMPLED_IDS = list(range(0, 49152, 241))


def smollm2_goldens(gguf_path, imported):
    directory, name = os.path.split(os.path.abspath(gguf_path))
    tok = AutoTokenizer.from_pretrained(imported)
    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    model.eval()
    print(f"transformers loaded the GGUF in {time.time() - t0:.1f}s")
    out = {"generator": "scripts/reference/model_logits.py", "reference": "transformers from_pretrained(gguf_file=...)",
           "torch": torch.__version__, "sampled_ids": SAMPLED_IDS, "texts": []}
    with torch.no_grad():
        for text in SMOL_TEXTS:
            ids = tok(text, add_special_tokens=False)["input_ids"]
            logits = model(torch.tensor([ids])).logits[0]
            rows = []
            for pos in range(len(ids)):
                row = logits[pos]
                top = torch.topk(row, 20)
                rows.append({
                    "top_ids": top.indices.tolist(),
                    "top_logits": [round(float(x), 5) for x in top.values],
                    "sampled": [round(float(row[i]), 5) for i in SAMPLED_IDS],
                })
            gen = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=16, do_sample=False, eos_token_id=2, pad_token_id=2)[0, len(ids):].tolist()
            out["texts"].append({"text": text, "ids": ids, "positions": rows, "greedy": gen,
                                 "greedy_text": tok.decode(gen, skip_special_tokens=True)})
            print(f"greedy: {tok.decode(gen, skip_special_tokens=True)!r}")
        # Our imported directory must load in transformers and hold the same weights.
        ours = AutoModelForCausalLM.from_pretrained(imported, dtype=torch.float32)
        ref_state = model.state_dict()
        worst = max(float((ours.state_dict()[k] - v).abs().max()) for k, v in ref_state.items())
        out["imported_dir_max_weight_diff"] = worst
        print(f"imported directory loads in transformers; max weight difference vs transformers' GGUF load: {worst:g}")
    with open(os.path.join(GOLDEN, "smollm2_logits.json"), "w") as f:
        json.dump(out, f)


TOKENIZER_TEXTS = [
    "What is the capital of France?",
    "Dạ, shop xin chào anh/chị ạ! Áo thun nam giá 199.000đ, size M còn 12 cái.",
    "Đơn hàng DH20241105 của em đang ở đâu vậy shop???",
    "ao khoac nu mau den con size L ko ak",
    "Price: $1,250.75 for 3 items (SKU AT-0042)\n\tTab and  double  spaces",
    "<|im_start|>user\nxin chào<|im_end|>\n",
    "emoji 👗👠 and CJK 衣服, numbers 1234567890",
]


def smollm2_tokenizer_goldens(gguf_path):
    """Token ids from two independent readers of the GGUF vocabulary: llama.cpp
    (the GGUF's own runtime) and transformers' GGUF tokenizer conversion."""
    directory, name = os.path.split(os.path.abspath(gguf_path))
    out = {"generator": "scripts/reference/model_logits.py", "texts": []}
    hf = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    try:
        from llama_cpp import Llama
        llm = Llama(model_path=gguf_path, vocab_only=True, verbose=False)
    except ImportError:
        llm = None
    for text in TOKENIZER_TEXTS:
        entry = {"text": text, "transformers_gguf": hf(text, add_special_tokens=False)["input_ids"]}
        if llm is not None:
            entry["llama_cpp"] = llm.tokenize(text.encode(), add_bos=False, special=True)
        out["texts"].append(entry)
        agree = entry.get("llama_cpp") == entry["transformers_gguf"]
        print(f"tokenizer {'agree' if agree else 'DIFFER'}: {text[:40]!r}")
    with open(os.path.join(GOLDEN, "smollm2_tokenizer.json"), "w") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--smollm2-gguf", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--imported", default=os.path.join(ROOT, "models", "smollm2-135m-instruct"))
    ap.add_argument("--tiny-only", action="store_true")
    a = ap.parse_args()
    tiny_goldens()
    if not a.tiny_only:
        smollm2_tokenizer_goldens(a.smollm2_gguf)
        smollm2_goldens(a.smollm2_gguf, a.imported)
