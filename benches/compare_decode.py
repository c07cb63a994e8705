"""Prefill and decode tokens/s of SmolLM2-135M-Instruct on this CPU, side by side:
stylevn (f32), PyTorch transformers (f32) and llama.cpp (llama-cpp-python, the Q4_1 GGUF),
all with 2 threads, same prompt, greedy, same number of new tokens.

    python3 benches/compare_decode.py [--runs 3] [--new-tokens 128]

Needs: `scripts/fetch-models.sh` run, `cargo build --release`, and (by hand, not in CI)
`pip install torch transformers llama-cpp-python`. Rewrites the "decode" section of
benches/RESULTS.md.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import time

from results_md import write_section

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MODEL_DIR = os.path.join(ROOT, "models", "smollm2-135m-instruct")
GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
THREADS = 2
# About 256 tokens of store-like text.
PROMPT = ("Customer: Hello, I ordered a cotton t-shirt in size M last week and the parcel has not arrived yet. "
          "Could you tell me where it is and when it will be delivered? ") * 6 + "Assistant:"


def run_stylevn(new_tokens):
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS))
    out = subprocess.run(
        [os.path.join(ROOT, "target", "release", "stylevn"), "generate", "--model", MODEL_DIR, "--raw",
         "--prompt", PROMPT, "--temperature", "0", "--max-new-tokens", str(new_tokens), "--ignore-eos", "--json"],
        check=True, capture_output=True, text=True, env=env).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return r["prompt_tokens"], r["prefill_tokens_per_sec"], r["decode_tokens_per_sec"]


def run_transformers(new_tokens):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(THREADS)
    tok = AutoTokenizer.from_pretrained(MODEL_DIR)
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32).eval()
    ids = torch.tensor([tok(PROMPT)["input_ids"]])
    with torch.inference_mode():
        t0 = time.perf_counter()
        out = model(ids, use_cache=True)
        t1 = time.perf_counter()
        past, nxt = out.past_key_values, out.logits[0, -1].argmax().view(1, 1)
        for _ in range(new_tokens - 1):
            out = model(nxt, past_key_values=past, use_cache=True)
            past, nxt = out.past_key_values, out.logits[0, -1].argmax().view(1, 1)
        t2 = time.perf_counter()
    return ids.shape[1], ids.shape[1] / (t1 - t0), (new_tokens - 1) / (t2 - t1)


def run_llama_cpp(new_tokens):
    import numpy as np
    from llama_cpp import Llama
    llm = Llama(model_path=GGUF, n_threads=THREADS, n_threads_batch=THREADS, n_ctx=1024, n_batch=512, verbose=False)
    ids = llm.tokenize(PROMPT.encode(), add_bos=False)
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(ids)
    t1 = time.perf_counter()
    nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    for _ in range(new_tokens - 1):
        llm.eval([nxt])
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    t2 = time.perf_counter()
    return len(ids), len(ids) / (t1 - t0), (new_tokens - 1) / (t2 - t1)


def median_of(fn, runs, new_tokens):
    results = [fn(new_tokens) for _ in range(runs)]
    return results[0][0], statistics.median(r[1] for r in results), statistics.median(r[2] for r in results)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=128)
    a = ap.parse_args()
    rows = []
    for name, fn in [("stylevn (f32)", run_stylevn), ("transformers (PyTorch f32)", run_transformers),
                     ("llama.cpp (llama-cpp-python, GGUF Q4_1)", run_llama_cpp)]:
        n, prefill, decode = median_of(fn, a.runs, a.new_tokens)
        rows.append((name, n, prefill, decode))
        print(f"{name}: prompt {n} tokens, prefill {prefill:.1f} tok/s, decode {decode:.1f} tok/s", flush=True)
    ours = rows[0]
    lines = [
        "## Decode and prefill: SmolLM2-135M-Instruct",
        "",
        f"`python3 benches/compare_decode.py --runs {a.runs} --new-tokens {a.new_tokens}` on {platform.machine()}, "
        f"{os.cpu_count()} cores, {THREADS} threads each, greedy, median of {a.runs} runs, "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        "| engine | prompt tokens | prefill tokens/s | decode tokens/s | stylevn decode ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, n, prefill, decode in rows:
        lines.append(f"| {name} | {n} | {prefill:.1f} | {decode:.1f} | {ours[3] / decode:.2f}x |")
    write_section("decode", "\n".join(lines))


if __name__ == "__main__":
    main()
