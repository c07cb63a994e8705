"""PEFT golden for tests/suite/lora_peft.rs: loads the adapters stylevn wrote
(tests/golden/tiny-qwen2-lora and tiny-qwen2-lora-rows, the second with trained LM-head
rows, made by `STYLEVN_WRITE_GOLDEN=1 cargo test --release --test suite lora_peft::`) onto the
tiny Qwen2 model with PeftModel.from_pretrained and records their logits
(tests/golden/lora_peft_logits.json, lora_rows_peft_logits.json). Run by hand:

    pip install torch transformers peft && python3 scripts/reference/peft_reference.py
"""

import json
import os
import sys

import peft
import torch
from peft import PeftModel
from transformers import AutoConfig, AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(__file__))
import tiny_models  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
IDS = [1, 5, 17, 33, 2, 99, 140, 7, 64, 3, 11, 150]


def main():
    spec = tiny_models.SPECS[0]
    for adapter, out in [("tiny-qwen2-lora", "lora_peft_logits.json"), ("tiny-qwen2-lora-rows",
                                                                         "lora_rows_peft_logits.json")]:
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**tiny_models.config(spec)),
                                                 dtype=torch.float32, attn_implementation="eager")
        model.load_state_dict({k: torch.from_numpy(v) for k, v in tiny_models.tensors(spec).items()})
        model = PeftModel.from_pretrained(model, os.path.join(ROOT, "tests", "golden", adapter)).eval()
        with torch.no_grad():
            logits = model(torch.tensor([IDS])).logits[0]
        with open(os.path.join(ROOT, "tests", "golden", out), "w") as f:
            json.dump({"generator": "scripts/reference/peft_reference.py", "peft": peft.__version__, "ids": IDS,
                       "logits": [[round(float(x), 6) for x in row] for row in logits]}, f)
        print(f"peft {peft.__version__}: {adapter} logits written to {out}")


if __name__ == "__main__":
    main()
