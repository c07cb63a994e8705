"""LoRA training throughput and peak memory on SmolLM2-135M-Instruct or
Qwen2.5-Coder-0.5B-Instruct, side by side:
stylevn (NF4 base + LoRA, its products in f32 and in bf16) against PEFT on PyTorch
(f32 base, bf16 autocast, and bitsandbytes NF4),
with the same LoRA (r 16, alpha 32, all linear layers, no dropout), the same batch
(4 sequences x 256 tokens, loss on assistant tokens only), AdamW, 2 threads.

    python3 benches/compare_train.py [--steps 8] [--model smollm2|qwen]

Every engine runs in its own process (peak RSS is that process's `ru_maxrss`);
tokens/s is the median over the steps after the first. Needs `scripts/fetch-models.sh`,
`cargo build --release`, `stylevn db init`, and (by hand, not in CI)
`pip install torch transformers peft bitsandbytes`. Rewrites the "train" section of
benches/RESULTS.md (SmolLM2) or "train-qwen" (Qwen2.5: stylevn f32 and bf16, PEFT f32
and bf16 autocast, on every layer and on the top 8, the pipeline's setting; gradient
checkpointing and bitsandbytes left out to keep the run short).
"""

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from results_md import write_section

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
STYLEVN = os.path.join(ROOT, "target", "release", "stylevn")
MODELS = {"smollm2": ("SmolLM2-135M-Instruct", "smollm2-135m-instruct"),
          "qwen": ("Qwen2.5-Coder-0.5B-Instruct", "qwen2.5-coder-0.5b-instruct")}
MODEL_DIR = None  # set by main() (and by the worker's --model)
THREADS = 2
SEQ, BATCH, RANK, ALPHA, LR = 256, 4, 16, 32, 1e-3
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_data(work):
    """Store chats (offline synth) templated for SmolLM2, each cut to its last SEQ tokens
    (which hold the final assistant answer), with the assistant spans shifted to match."""
    chats, templated, rows = (os.path.join(work, n) for n in ("chats.jsonl", "templated.jsonl", "rows.jsonl"))
    subprocess.run([STYLEVN, "synth", "--offline", "--n", "200", "--out", chats], check=True, capture_output=True)
    subprocess.run([STYLEVN, "template", "--model", MODEL_DIR, "--in", chats, "--out", templated, "--max-len", "4096"],
                   check=True, capture_output=True)
    with open(templated) as src, open(rows, "w") as out:
        for line in src:
            r = json.loads(line)
            ids = r["input_ids"]
            if len(ids) < SEQ:
                continue
            s = len(ids) - SEQ
            spans = [[max(a - s, 0), b - s] for a, b in r["token_spans"] if b - s > 0]
            out.write(json.dumps({"input_ids": ids[s:], "token_spans": spans, "n_tokens": SEQ, "text": "",
                                  "char_spans": [], "source": r["source"]}) + "\n")
    return rows


def run_stylevn(rows, steps, checkpointing, precision, work, layers=None):
    out = os.path.join(work, f"stylevn-ck{int(checkpointing)}-{precision}-{len(layers or [])}")
    cmd = [STYLEVN, "train", "--base", MODEL_DIR, "--data", rows, "--out", out, "--base-quant", "nf4",
           "--precision", precision,
           "--lora-r", str(RANK), "--lora-alpha", str(ALPHA), "--lora-dropout", "0", "--target-modules", "all-linear",
           "--lr", str(LR), "--micro-batch", str(BATCH), "--grad-accum", "1", "--max-len", str(SEQ),
           "--max-steps", str(steps), "--eval-every", "0", "--save-every", "0", "--val-frac", "0",
           "--gradient-checkpointing", str(checkpointing).lower(), "--json"]
    if layers:
        cmd += ["--layers-to-transform", ",".join(map(str, layers))]
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"stylevn train failed: {' '.join(cmd)}")
    with open(os.path.join(out, "metrics.jsonl")) as f:
        tps = [m["tokens_per_sec"] for m in map(json.loads, f) if m.get("tokens_per_sec")]
    return statistics.median(tps[1:]), usage.ru_maxrss / 1024 ** 2


def top_layers(n):
    """The top `n` decoder layers of the model (PEFT's layers_to_transform)."""
    layers = json.load(open(os.path.join(MODEL_DIR, "config.json")))["num_hidden_layers"]
    return list(range(layers - n, layers))


def peft_worker(rows, steps, variant):
    """Runs in a child process: prints {"tokens_per_sec", "peak_gb"}. A variant ending
    in `-top8` adapts only the top 8 layers; autograd then stops there by itself (no
    tensor below needs a gradient)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    kwargs = {"dtype": torch.float32}
    if variant == "nf4":
        from transformers import BitsAndBytesConfig
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, **kwargs)
    if variant == "f32-ckpt":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    layers = top_layers(8) if variant.endswith("-top8") else None
    model = get_peft_model(model, LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=TARGETS,
                                             layers_to_transform=layers, task_type="CAUSAL_LM"))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    data = [json.loads(l) for l in open(rows)]
    times = []
    for step in range(steps):
        batch = data[step * BATCH:(step + 1) * BATCH]
        ids = torch.tensor([r["input_ids"] for r in batch])
        labels = torch.full_like(ids, -100)
        for i, r in enumerate(batch):
            for a, b in r["token_spans"]:
                labels[i, a:b] = ids[i, a:b]
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant.startswith("bf16-autocast")):
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    print(json.dumps({"tokens_per_sec": BATCH * SEQ / statistics.median(times[1:]), "peak_gb": peak}))


def run_peft(rows, steps, variant):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--peft-worker", variant, "--rows", rows,
                          "--steps", str(steps), "--model", MODEL_KEY], check=True, capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS=str(THREADS)))
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["tokens_per_sec"], r["peak_gb"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--peft-worker")
    ap.add_argument("--rows")
    ap.add_argument("--model", choices=sorted(MODELS), default="smollm2")
    args = ap.parse_args()
    global MODEL_DIR, MODEL_KEY
    MODEL_KEY = args.model
    model_name, MODEL_DIR = MODELS[args.model][0], os.path.join(ROOT, "models", MODELS[args.model][1])
    if args.peft_worker:
        return peft_worker(args.rows, args.steps, args.peft_worker)
    with tempfile.TemporaryDirectory() as work:
        rows = make_data(work)
        results = []
        engines = [
            ("stylevn (NF4 base + LoRA, f32)", lambda: run_stylevn(rows, args.steps, False, "f32", work)),
            ("stylevn (NF4 base + LoRA, bf16 products)", lambda: run_stylevn(rows, args.steps, False, "bf16", work)),
            ("stylevn (bf16, gradient checkpointing)", lambda: run_stylevn(rows, args.steps, True, "bf16", work)),
            ("PEFT (PyTorch f32 base + LoRA)", lambda: run_peft(rows, args.steps, "f32")),
            ("PEFT (f32, gradient checkpointing)", lambda: run_peft(rows, args.steps, "f32-ckpt")),
            ("PEFT (f32 base, bf16 autocast)", lambda: run_peft(rows, args.steps, "bf16-autocast")),
            ("PEFT + bitsandbytes (NF4 QLoRA)", lambda: run_peft(rows, args.steps, "nf4")),
        ]
        if args.model == "qwen":
            engines = [engines[i] for i in (0, 1, 3, 5)] + [
                ("stylevn (bf16, LoRA on the top 8 layers)",
                 lambda: run_stylevn(rows, args.steps, False, "bf16", work, top_layers(8))),
                ("PEFT (bf16 autocast, LoRA on the top 8 layers)",
                 lambda: run_peft(rows, args.steps, "bf16-autocast-top8")),
            ]
        for name, run in engines:
            tps, gb = run()
            print(f"{name}: {tps:.1f} tokens/s, peak RSS {gb:.2f} GB", flush=True)
            results.append((name, tps, gb))
    load = os.getloadavg()[0]
    peft_tps, peft_gb = next((tps, gb) for name, tps, gb in results if name.startswith("PEFT (PyTorch f32"))
    flags = open("/proc/cpuinfo").read().split("flags")[1].split("\n")[0].split()
    features = ", ".join(f for f in ("avx2", "fma", "f16c", "avx512f", "avx512_bf16") if f in flags)
    bf16_kernel = "the VDPBF16PS kernel" if "avx512_bf16" in flags else "no bf16 kernel (f32 products)"
    lines = [
        f"## LoRA training: stylevn vs PEFT ({model_name})",
        "",
        f"`python3 benches/compare_train.py --steps {args.steps} --model {args.model}` on {platform.machine()}, {os.cpu_count()} cores, "
        f"{THREADS} threads each, {model_name}, LoRA r {RANK} alpha {ALPHA} on all linear layers, AdamW, "
        f"batch {BATCH} x {SEQ} tokens of store chats (loss on assistant tokens), median step after the first, "
        f"load average {load:.1f} at the end, {datetime.date.today()}. CPU features: {features}; stylevn's bf16 "
        f"rows ran {bf16_kernel}, its f32 rows candle's gemm; PyTorch's bf16 autocast runs oneDNN's kernels.",
        "",
        "| engine | tokens/s | peak RSS GB | tokens/s vs PEFT f32 | memory vs PEFT f32 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, tps, gb in results:
        lines.append(f"| {name} | {tps:.1f} | {gb:.2f} | {tps / peft_tps:.2f}x | {gb / peft_gb:.2f}x |")
    write_section("train" if args.model == "smollm2" else "train-qwen", "\n".join(lines))


if __name__ == "__main__":
    main()
