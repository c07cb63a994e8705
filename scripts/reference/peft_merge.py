"""PEFT merge golden for tests/suite/merge_peft.rs.

Loads the committed adapter tests/golden/tiny-qwen2-lora onto the tiny Qwen2 fixture
(weights rebuilt by tiny_models.py exactly as src/model/tiny.rs builds them) with
PeftModel.from_pretrained, calls merge_and_unload(), and writes:

- tests/golden/merge_tiny_qwen2.safetensors: every merged projection weight (f32);
- tests/golden/merge_tiny_qwen2_logits.json: the merged model's logits on fixed ids;
- tests/golden/merge_tiny_qwen2_rows.safetensors: the weights that merging
  tests/golden/tiny-qwen2-lora-rows (LoRA plus trained LM-head rows) changes.

With --check DIR it instead loads a directory written by `stylevn merge` with
AutoModelForCausalLM.from_pretrained and compares its weights and logits with PEFT's
merge (exit status 1 on a mismatch). Run by hand:

    pip install torch transformers peft safetensors
    python3 scripts/reference/peft_merge.py
    python3 scripts/reference/peft_merge.py --check /tmp/merged
"""

import json
import os
import sys

import peft
import torch
from peft import PeftModel
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(__file__))
import tiny_models  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden")
IDS = [1, 5, 17, 33, 2, 99, 140, 7, 64, 3, 11, 150]


def peft_merged(adapter="tiny-qwen2-lora"):
    spec = tiny_models.SPECS[0]
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**tiny_models.config(spec)), dtype=torch.float32,
                                             attn_implementation="eager")
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tiny_models.tensors(spec).items()})
    model = PeftModel.from_pretrained(model, os.path.join(GOLDEN, adapter))
    return model.merge_and_unload().eval()


def logits(model):
    with torch.no_grad():
        return model(torch.tensor([IDS])).logits[0]


def main():
    merged = peft_merged()
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        ours = AutoModelForCausalLM.from_pretrained(sys.argv[2], dtype=torch.float32, attn_implementation="eager").eval()
        want = merged.state_dict()
        got = ours.state_dict()
        worst = max(float((got[k].float() - v).abs().max()) for k, v in want.items())
        dlogits = float((logits(ours) - logits(merged)).abs().max())
        print(f"transformers loaded {sys.argv[2]}: max |weight diff| {worst:.3g}, max |logit diff| {dlogits:.3g}")
        sys.exit(0 if worst < 1e-5 and dlogits < 1e-4 else 1)
    weights = {k: v.contiguous() for k, v in merged.state_dict().items() if k.endswith("_proj.weight")}
    save_file(weights, os.path.join(GOLDEN, "merge_tiny_qwen2.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(GOLDEN, "merge_tiny_qwen2_logits.json"), "w") as f:
        json.dump({"generator": "scripts/reference/peft_merge.py", "peft": peft.__version__, "ids": IDS,
                   "logits": [[round(float(x), 6) for x in row] for row in logits(merged)]}, f)
    base = {k: torch.from_numpy(v) for k, v in tiny_models.tensors(tiny_models.SPECS[0]).items()}
    rows = {k: v.contiguous() for k, v in peft_merged("tiny-qwen2-lora-rows").state_dict().items()
            if k in base and not torch.equal(v, base[k])}
    save_file(rows, os.path.join(GOLDEN, "merge_tiny_qwen2_rows.safetensors"), metadata={"format": "pt"})
    print(f"peft {peft.__version__}: {len(weights)} merged weights and logits written; "
          f"with LM-head rows: {sorted(rows)}")


if __name__ == "__main__":
    main()
