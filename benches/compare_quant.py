"""Quantization of SmolLM2-135M-Instruct on this CPU: `stylevn quantize` wall time
(RTN and AWQ, default configs/quantize.toml), perplexity of the full-precision, RTN
and AWQ models on held-out text, and decode tokens/s with peak resident memory of
stylevn f32, stylevn AWQ and llama.cpp on the Q4_1 GGUF (llama-cpp-python), 2 threads.

    python3 benches/compare_quant.py [--runs 3] [--new-tokens 128]

Held-out text: the store's policy pages (data/policies/*.md, never used for
calibration) and 40 conversations from `stylevn synth --offline --seed 1234` that are
not in the calibration file data/chats.jsonl. Needs `cargo build --release`,
data/chats.jsonl (`stylevn synth --offline --out data/chats.jsonl`) and
llama-cpp-python. Rewrites the "quantize" section of benches/RESULTS.md.
"""

import argparse
import glob
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
MODEL_DIR = os.path.join(ROOT, "models", "smollm2-135m-instruct")
GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
THREADS = 2
PROMPT = ("Customer: Hello, I ordered a cotton t-shirt in size M last week and the parcel has not arrived yet. "
          "Could you tell me where it is and when it will be delivered? ") * 6 + "Assistant:"
ENV = dict(os.environ, RAYON_NUM_THREADS=str(THREADS))


def timed(cmd):
    """Runs cmd; returns (stdout, wall seconds, peak RSS of the child in MB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "MAXRSS_KB=%M"] + cmd, check=True, capture_output=True, text=True,
                         env=ENV)
    secs = time.perf_counter() - t0
    rss_kb = next(int(l.split("=")[1]) for l in out.stderr.splitlines() if l.startswith("MAXRSS_KB="))
    del before
    return out.stdout, secs, rss_kb / 1024


def heldout_chats(path):
    seen = {json.dumps(json.loads(l)["messages"], ensure_ascii=False) for l in open(os.path.join(ROOT, "data", "chats.jsonl"))}
    raw = path + ".all"
    subprocess.run([STYLEVN, "synth", "--offline", "--n", "300", "--seed", "1234", "--out", raw], check=True,
                   capture_output=True)
    kept = [l for l in open(raw) if json.dumps(json.loads(l)["messages"], ensure_ascii=False) not in seen][:40]
    with open(path, "w") as f:
        f.writelines(kept)
    return len(kept)


def perplexity(model, data):
    out, _, _ = timed([STYLEVN, "eval", "perplexity", "--model", model, "--json", "--data"] + data)
    return json.loads(out.strip().splitlines()[-1])


def decode_stylevn(model, new_tokens):
    out, _, rss = timed([STYLEVN, "generate", "--model", model, "--raw", "--prompt", PROMPT, "--temperature", "0",
                         "--max-new-tokens", str(new_tokens), "--ignore-eos", "--json"])
    return json.loads(out.strip().splitlines()[-1])["decode_tokens_per_sec"], rss


LLAMA_CPP = """
import json, sys, time, resource
import numpy as np
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_threads=2, n_threads_batch=2, n_ctx=1024, n_batch=512, verbose=False)
ids = llm.tokenize(sys.argv[2].encode(), add_bos=False)
n = int(sys.argv[3])
llm.eval(ids)
nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
t0 = time.perf_counter()
for _ in range(n - 1):
    llm.eval([nxt])
    nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
print(json.dumps({"decode": (n - 1) / (time.perf_counter() - t0)}))
"""


def decode_llama_cpp(new_tokens):
    out, _, rss = timed([sys.executable, "-c", LLAMA_CPP, GGUF, PROMPT, str(new_tokens)])
    return json.loads(out.strip().splitlines()[-1])["decode"], rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=128)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="stylevn-quant-")
    rtn, awq = os.path.join(work, "rtn"), os.path.join(work, "awq")
    q = {}
    for method, out in [("rtn", rtn), ("awq", awq)]:
        stdout, secs, rss = timed([STYLEVN, "quantize", "--method", method, "--model", MODEL_DIR, "--out", out, "--json"])
        q[method] = (json.loads(stdout.strip().splitlines()[-1]), secs, rss)
        print(f"quantize {method}: {secs:.1f}s, peak RSS {rss:.0f} MB", flush=True)
    chats = os.path.join(work, "heldout.jsonl")
    n_chats = heldout_chats(chats)
    sets = [("policies (data/policies/*.md)", sorted(glob.glob(os.path.join(ROOT, "data", "policies", "*.md")))),
            (f"held-out chats ({n_chats} conversations)", [chats])]
    ppl = {}
    for label, model in [("full precision (f32)", MODEL_DIR), ("RTN", rtn), ("AWQ", awq)]:
        ppl[label] = [perplexity(model, data) for _, data in sets]
        print(label, [round(p["perplexity"], 4) for p in ppl[label]], flush=True)
    dec = {}
    for label, fn in [("stylevn f32", lambda: decode_stylevn(MODEL_DIR, a.new_tokens)),
                      ("stylevn AWQ int4", lambda: decode_stylevn(awq, a.new_tokens)),
                      ("llama.cpp Q4_1 GGUF", lambda: decode_llama_cpp(a.new_tokens))]:
        runs = [fn() for _ in range(a.runs)]
        dec[label] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
        print(label, dec[label], flush=True)
    awq_info = q["awq"][0]
    fp = ppl["full precision (f32)"]
    lines = [
        "## Quantization: SmolLM2-135M-Instruct, AWQ vs RTN",
        "",
        f"`python3 benches/compare_quant.py --runs {a.runs} --new-tokens {a.new_tokens}` on {platform.machine()}, "
        f"{os.cpu_count()} cores, {THREADS} threads, {time.strftime('%Y-%m-%d')}, load average "
        f"{os.getloadavg()[0]:.1f} at the end (this script's own jobs count; more means other work shared the machine).",
        "",
        f"4-bit, zero point, group size {awq_info['group_size']} for both methods (128 does not divide the hidden size "
        f"576; see `stylevn quantize --help`). AWQ calibration: {awq_info['calib_sequences']} conversations of "
        f"data/chats.jsonl, {awq_info['calib_tokens']} tokens (configs/quantize.toml). The full-precision model is "
        "the f32 import of the Q4_1 GGUF (models/smollm2-135m-instruct), so its weights already carry Q4_1 rounding.",
        "",
        "| model | " + " | ".join(f"perplexity, {s[0]}" for s in sets) + " |",
        "|---|" + "---:|" * len(sets),
    ]
    for label, ps in ppl.items():
        cells = [f"{p['perplexity']:.3f} ({(p['perplexity'] / f['perplexity'] - 1) * 100:+.1f}%)" for p, f in zip(ps, fp)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| `stylevn quantize` | wall time | peak RSS |",
        "|---|---:|---:|",
    ]
    for method in ["rtn", "awq"]:
        lines.append(f"| --method {method} | {q[method][1]:.1f} s | {q[method][2]:.0f} MB |")
    f32_tps, f32_rss = dec["stylevn f32"]
    lines += [
        "",
        f"Decode, {a.new_tokens} new tokens after a {len(PROMPT.split())}-word prompt, greedy, median of {a.runs} runs; "
        "peak RSS of the whole process:",
        "",
        "| engine | decode tokens/s | vs stylevn f32 | peak RSS | vs stylevn f32 |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, (tps, rss) in dec.items():
        lines.append(f"| {label} | {tps:.1f} | {tps / f32_tps:.2f}x | {rss:.0f} MB | {rss / f32_rss:.2f}x |")
    awq_tps = dec["stylevn AWQ int4"][0]
    lines.append("")
    lines.append(f"stylevn AWQ / llama.cpp Q4_1 decode ratio: {awq_tps / dec['llama.cpp Q4_1 GGUF'][0]:.2f}x.")
    write_section("quantize", "\n".join(lines))


if __name__ == "__main__":
    main()
