"""Where a training row's tool call begins, how likely is `<tool_call>`? (the probe behind
configs/train-qwen2.5-coder-0.5b.toml's `trainable_tokens`).

Reads rows written by `stylevn template` (input_ids and token_spans), keeps those whose
first assistant span starts with `<tool_call>`, and for each model directory prints the
log-probability of that token at the span's start (transformers, f32), the top 5 tokens
there, and the token's LM-head row norm against the median row. Run by hand:

    target/release/stylevn template --model models/qwen2.5-coder-0.5b-instruct \\
        --in runs/qwen/chats.jsonl --out /tmp/templated.jsonl --max-len 4096
    pip install torch transformers
    python3 scripts/reference/tool_call_logprob.py /tmp/templated.jsonl \\
        models/qwen2.5-coder-0.5b-instruct runs/qwen/merged
"""

import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROWS = 4  # rows probed, from the middle of the file (away from the held-out split's seed order)


def main():
    templated, models = sys.argv[1], sys.argv[2:]
    rows = [json.loads(line) for line in open(templated)]
    torch.set_num_threads(2)
    for d in models:
        tok = AutoTokenizer.from_pretrained(d)
        call = tok.convert_tokens_to_ids("<tool_call>")
        middle = rows[len(rows) // 2:]
        picked = [r for r in middle if r["token_spans"] and r["input_ids"][r["token_spans"][0][0]] == call][:ROWS]
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
        with torch.no_grad():
            norms = model.lm_head.weight.norm(dim=1)
            print(f"{d}: <tool_call> = {call}, LM-head row norm {float(norms[call]):.3f} "
                  f"(median {float(norms.median()):.3f})")
            for r in picked:
                start = r["token_spans"][0][0]
                log_probs = torch.log_softmax(model(torch.tensor([r["input_ids"][:start]])).logits[0, -1], -1)
                top = log_probs.topk(5)
                shown = [(tok.decode([int(i)]), round(float(v), 2)) for v, i in zip(top.values, top.indices)]
                print(f"  log p(<tool_call>) {float(log_probs[call]):.2f}; top 5 {shown}")
        del model


if __name__ == "__main__":
    main()
