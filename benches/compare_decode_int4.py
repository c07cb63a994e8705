"""4-bit decode and prefill on this CPU, side by side: stylevn's int4 checkpoint (the
AutoAWQ gemm format; RTN, as AWQ only changes the values, not the bytes or the kernel)
against llama.cpp's Q4_0 and Q4_K_M GGUFs made by llama.cpp's own quantizer from the
GGUF the registries carry, on Qwen2.5-Coder-0.5B-Instruct and SmolLM2-135M-Instruct.
Batch 1, greedy, 2 threads, the same ~230-token prompt, engines interleaved round by
round (the machine is shared: drift hits every engine alike), median of the rounds.

Each row names the CPU features and kernels it ran. stylevn's AVX2 rows run with
`STYLEVN_CPU_CAP=avx2` (the kernels an AVX2-only machine selects; this machine's
memory). llama.cpp's kernels are fixed when it is built (GGML_NATIVE: this CPU's).
The roofline is the weight bytes one decoded token reads over the read bandwidth
measured here in the same run (numpy, 2 threads, a buffer larger than the caches).

    python3 benches/compare_decode_int4.py [--rounds 3] [--new-tokens 64]

Needs `scripts/fetch-models.sh`, `cargo build --release`, and (by hand, never in CI)
a Python with `pip install llama-cpp-python gguf numpy` (built from source for this
CPU). Rewrites the "decode-int4" section of benches/RESULTS.md.
"""

import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time

from results_md import write_section

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.path.join(ROOT, "target", "release", "stylevn")
WORK = os.path.join(ROOT, "target", "bench-int4")
THREADS = 2
# A store conversation of about 230 tokens: Vietnamese for Qwen, English for SmolLM2
# (English-only: its tokenizer spends 2.7x the tokens on the Vietnamese text).
VI_PROMPT = ("Khách: Chào shop, tuần trước mình đặt một áo thun cotton size M mà chưa nhận được hàng. "
             "Shop kiểm tra giúp mình đơn đang ở đâu và khi nào giao được không? Mình cần gấp cho cuối tuần. ") * 5
EN_PROMPT = ("Customer: Hello, I ordered a cotton t-shirt in size M last week and the parcel has not arrived yet. "
             "Could you tell me where it is and when it will be delivered? ") * 6 + "Assistant:"
MODELS = {
    "qwen": ("Qwen2.5-Coder-0.5B-Instruct", "qwen2.5-coder-0.5b-instruct", "Qwen2.5-Coder-0.5B-Instruct.gguf", 128,
             VI_PROMPT),
    "smollm2": ("SmolLM2-135M-Instruct", "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf", 64, EN_PROMPT),
}


def features():
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    keep = ["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni"]
    return " ".join(k for k in keep if k in flags)


def read_bandwidth_gbs(mb=1024, repeats=5):
    import numpy as np
    halves = [np.ones(mb * (1 << 20) // 16, dtype=np.int64) for _ in range(THREADS)]
    best = 0.0
    for _ in range(repeats):
        threads = [threading.Thread(target=np.add.reduce, args=(h,)) for h in halves]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        best = max(best, mb * (1 << 20) / (time.perf_counter() - t0) / 1e9)
    return best


def stylevn_checkpoint(key):
    _, hf_dir, _, group, _ = MODELS[key]
    out = os.path.join(WORK, f"{key}-rtn-g{group}")
    if not os.path.exists(os.path.join(out, "config.json")):
        subprocess.run([BIN, "quantize", "--model", os.path.join(ROOT, "models", hf_dir), "--out", out,
                        "--method", "rtn", "--group-size", str(group)], check=True, capture_output=True)
    return out


def llama_gguf(key, kind):
    import llama_cpp
    _, _, src, _, _ = MODELS[key]
    out = os.path.join(WORK, f"{key}-{kind}.gguf")
    if not os.path.exists(out):
        p = llama_cpp.llama_model_quantize_default_params()
        p.ftype = {"q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0, "q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M}[kind]
        p.allow_requantize = True
        p.nthread = THREADS
        if llama_cpp.llama_model_quantize(os.path.join(ROOT, "models", src).encode(), out.encode(), ctypes.byref(p)):
            raise SystemExit(f"llama.cpp could not quantize {src} to {kind}")
    return out


def gguf_decode_bytes(path):
    """Bytes of the tensors one decoded token reads: all but the embedding table (one row)."""
    import gguf
    reader = gguf.GGUFReader(path)
    types = {}
    total = 0
    names = {t.name: t.tensor_type.name for t in reader.tensors}
    types["head " + names.get("output.weight", names["token_embd.weight"])] = 1
    for t in reader.tensors:
        if t.name == "token_embd.weight" and any(u.name == "output.weight" for u in reader.tensors):
            continue
        if t.name.startswith("blk.") and len(t.shape) == 2:
            types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
        total += int(t.n_bytes)
    return total, types


def run_stylevn(model_dir, prompt, new_tokens, lm_head, cap):
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS))
    env.pop("STYLEVN_CPU_CAP", None)
    if cap:
        env["STYLEVN_CPU_CAP"] = cap
    out = subprocess.run(
        [BIN, "generate", "--model", model_dir, "--raw", "--prompt", prompt, "--temperature", "0",
         "--max-new-tokens", str(new_tokens), "--ignore-eos", "--json", "--lm-head", lm_head],
        check=True, capture_output=True, text=True, env=env).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return (r["prompt_tokens"], r["prefill_tokens_per_sec"], r["decode_tokens_per_sec"],
            r["weight_bytes_per_token"], r["cpu_features"])


LLAMA_RUN = """
import json, sys, time, numpy as np
from llama_cpp import Llama
path, prompt, new_tokens, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
llm = Llama(model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=1024, n_batch=1024, verbose=False)
ids = llm.tokenize(prompt.encode(), add_bos=False)
llm.reset()
t0 = time.perf_counter(); llm.eval(ids); t1 = time.perf_counter()
nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
for _ in range(new_tokens - 1):
    llm.eval([nxt]); nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
t2 = time.perf_counter()
print(json.dumps([len(ids), len(ids) / (t1 - t0), (new_tokens - 1) / (t2 - t1)]))
"""


def run_llama(path, prompt, new_tokens):
    # A fresh process per run, as stylevn's: no warm state carried between rounds.
    out = subprocess.run([sys.executable, "-c", LLAMA_RUN, path, prompt, str(new_tokens), str(THREADS)],
                         check=True, capture_output=True, text=True).stdout
    n, prefill, decode = json.loads(out.strip().splitlines()[-1])
    return n, prefill, decode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--models", default="qwen,smollm2")
    a = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    bandwidth = read_bandwidth_gbs()
    print(f"read bandwidth {bandwidth:.1f} GB/s", flush=True)
    sections = []
    for key in a.models.split(","):
        title, _, _, group, prompt = MODELS[key]
        ckpt = stylevn_checkpoint(key)
        engines = []
        for head in ["int8", "int4"]:
            for cap in ["", "avx2"]:
                kern = "AVX-512 VNNI" if not cap else "AVX2"
                engines.append((f"stylevn int4 g{group}, {head} LM head ({kern} kernels)",
                                lambda h=head, c=cap: run_stylevn(ckpt, prompt, a.new_tokens, h, c)))
        ggufs = {}
        for kind in ["q4_0", "q4_k_m"]:
            ggufs[kind] = llama_gguf(key, kind)
            engines.append((f"llama.cpp {kind.upper()}", lambda p=ggufs[kind]: run_llama(p, prompt, a.new_tokens) + (None, None)))
        results = {name: [] for name, _ in engines}
        for r in range(a.rounds):
            for name, fn in engines:
                results[name].append(fn())
                print(f"{title} round {r + 1}: {name}: {results[name][-1][:3]}", flush=True)
        rows = []
        for name, runs in results.items():
            n = runs[0][0]
            prefill = statistics.median(x[1] for x in runs)
            decode = statistics.median(x[2] for x in runs)
            if runs[0][3] is not None:
                nbytes, feats = runs[0][3], runs[0][4]
            else:
                kind = name.split()[-1].lower()
                nbytes, types = gguf_decode_bytes(ggufs[kind])
                feats = "GGML_NATIVE build; layers " + ", ".join(
                    f"{k} x{v}" for k, v in sorted(types.items()) if not k.startswith("head")) + "; " + next(
                    k for k in types if k.startswith("head"))
            rows.append((name, n, prefill, decode, nbytes, feats))
        q4_0 = next(r for r in rows if r[0] == "llama.cpp Q4_0")
        q4_k = next(r for r in rows if r[0] == "llama.cpp Q4_K_M")
        lines = [
            f"### {title}",
            "",
            "| engine | prompt tokens | prefill tokens/s | decode tokens/s | vs llama.cpp Q4_0 | vs Q4_K_M "
            "| MB read per token | roofline tokens/s | % of roofline | kernels / CPU features used |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for name, n, prefill, decode, nbytes, feats in rows:
            roof = bandwidth * 1e9 / nbytes
            lines.append(f"| {name} | {n} | {prefill:.1f} | {decode:.1f} | {decode / q4_0[3]:.2f}x | "
                         f"{decode / q4_k[3]:.2f}x | {nbytes / 1e6:.0f} | {roof:.1f} | {100 * decode / roof:.0f}% | "
                         f"{feats} |")
        sections.append("\n".join(lines))
    load = os.getloadavg()[0]
    head = [
        "## Int4 decode: stylevn vs llama.cpp at 4 bits",
        "",
        f"`python3 benches/compare_decode_int4.py --rounds {a.rounds} --new-tokens {a.new_tokens}` on "
        f"{platform.machine()}, {os.cpu_count()} cores, {THREADS} threads each, CPU flags: {features()}; "
        f"{time.strftime('%Y-%m-%d %H:%M')}, load average {load:.1f} at the end (the script's own jobs count). "
        f"Batch 1, greedy, {a.new_tokens} new tokens after the prompt, engines interleaved, median of "
        f"{a.rounds} rounds. Read bandwidth measured in the same run: {bandwidth:.1f} GB/s "
        f"(numpy, {THREADS} threads, 1 GiB); roofline = that / the weight bytes a decoded token reads.",
        "",
        "stylevn's checkpoint is `stylevn quantize --method rtn` (the AutoAWQ gemm format vLLM serves; AWQ "
        "writes the same bytes). Its LM head is fp16 in the file; `--lm-head` rounds it at load (int8: 8.5 bits "
        "a weight, as llama.cpp's Q8_0 head; int4: groups of 64). llama.cpp's GGUFs come from "
        "`llama_model_quantize` on the registry's GGUF (allow_requantize: its weights were already quantized; "
        "the speed does not depend on their values); each row names the head's type llama.cpp chose.",
        "",
    ]
    write_section("decode-int4", "\n".join(head) + "\n" + "\n\n".join(sections))


if __name__ == "__main__":
    main()
