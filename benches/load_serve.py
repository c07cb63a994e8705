#!/usr/bin/env python3
"""Load test of `stylevn serve` (bounded, loopback only), measured like vLLM's
benchmark_serving: TTFT = first content chunk - send time; ITL = gaps between content
chunks; TPOT = (latency - TTFT) / (output tokens - 1); p50/p95 per metric.

Starts `target/release/stylevn serve` on a free loopback port and runs:
1. one streaming client alone (the single-stream baseline);
2. N concurrent streaming clients (default 16), all started at once: every request must
   complete with no 5xx; aggregate generated tokens/s is compared with (1);
3. the store's system prompt and tool list (from `stylevn synth`) with 4 concurrent users asking
   different questions: p95 TTFT with the prefix cache, and the same with it disabled.
Writes the `serve-load` section of benches/RESULTS.md.

    python3 benches/load_serve.py [--model models/smollm2-135m-instruct] [--clients 16]
"""

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

import openai

from results_md import write_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUESTIONS = [
    "Đổi size có mất phí không shop?",
    "Bao lâu thì nhận được hàng ở Hà Nội?",
    "Shop có nhận thanh toán bằng ví MoMo không?",
    "Em muốn trả hàng thì làm thế nào?",
    "Phí ship đơn dưới 500 nghìn là bao nhiêu?",
    "Hàng giảm giá có được đổi không ạ?",
    "Shop giao hàng vào thứ bảy không?",
    "Em nhận hàng bị lỗi thì phải làm sao?",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model, port, extra):
    cmd = [os.path.join(ROOT, "target/release/stylevn"), "serve", "--model", model, "--port", str(port)] + extra
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if not line.startswith("serving "):
        proc.kill()
        sys.exit(f"server did not start: {line!r}")
    wait_ready(f"http://127.0.0.1:{port}/health")
    return proc


def wait_ready(health_url, timeout_s=300):
    """Polls /health until it answers 200 (the model is loaded)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(health_url, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    sys.exit(f"{health_url} never answered 200")


def stop_server(proc):
    proc.terminate()
    proc.wait(timeout=60)


async def one_request(client, model, messages, max_tokens, tools):
    sent = time.perf_counter()
    first, last, gaps, chunks, usage = None, None, [], 0, None
    extra = {"tools": tools} if tools else {}
    stream = await client.chat.completions.create(
        model=model, messages=messages, max_tokens=max_tokens, temperature=0, stream=True,
        stream_options={"include_usage": True}, **extra,
    )
    async for chunk in stream:
        now = time.perf_counter()
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.choices and chunk.choices[0].delta.content:
            chunks += 1
            if first is None:
                first = now
            else:
                gaps.append(now - last)
            last = now
    end = time.perf_counter()
    out_tokens = usage.completion_tokens if usage else chunks
    ttft = (first or end) - sent
    tpot = (end - sent - ttft) / (out_tokens - 1) if out_tokens > 1 else None
    return {"ttft": ttft, "itl": gaps, "tpot": tpot, "latency": end - sent, "out": out_tokens,
            "prompt": usage.prompt_tokens if usage else 0, "cached": usage.prompt_tokens_details.cached_tokens if usage else 0}


async def run_clients(base_url, model, n_clients, per_client, make_messages, max_tokens, tools=None):
    client = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=600)
    errors = []

    async def worker(w):
        results = []
        for r in range(per_client):
            try:
                results.append(await one_request(client, model, make_messages(w, r), max_tokens, tools))
            except openai.APIStatusError as e:
                errors.append(e.status_code)
            except Exception as e:  # connection failures count as errors too
                errors.append(repr(e))
        return results

    start = time.perf_counter()
    per_worker = await asyncio.gather(*(worker(w) for w in range(n_clients)))
    wall = time.perf_counter() - start
    await client.close()
    results = [r for rs in per_worker for r in rs]
    return results, errors, wall


def pct(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))]


def summary(results, wall):
    ttft = [r["ttft"] * 1e3 for r in results]
    itl = [g * 1e3 for r in results for g in r["itl"]]
    tpot = [r["tpot"] * 1e3 for r in results if r["tpot"] is not None]
    out = sum(r["out"] for r in results)
    return {
        "requests": len(results), "output_tokens": out, "wall_s": wall, "tokens_per_s": out / wall,
        "ttft_p50": pct(ttft, 50), "ttft_p95": pct(ttft, 95), "itl_p50": pct(itl, 50), "itl_p95": pct(itl, 95),
        "tpot_p50": pct(tpot, 50), "tpot_p95": pct(tpot, 95),
        "prompt_tokens": statistics.mean(r["prompt"] for r in results),
        "cached_tokens": statistics.mean(r["cached"] for r in results),
    }


def store_conversation_start():
    """The store's real system prompt and tool list, as `stylevn synth` writes them into
    training data (so the fine-tuned model sees the same prefix in production)."""
    import tempfile
    stylevn = os.path.join(ROOT, "target/release/stylevn")
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "stylevn.db")
        out = os.path.join(tmp, "one.jsonl")
        subprocess.run([stylevn, "db", "init", "--db", db], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([stylevn, "synth", "--offline", "--n", "1", "--db", db, "--out", out], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out) as f:
            convo = json.loads(f.readline())
    system = next(m for m in convo["messages"] if m["role"] == "system")
    return system, convo.get("tools") or []


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    keep = ["avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16"]
    return " ".join(k for k in keep if k in flags) + (f" (capped: STYLEVN_CPU_CAP={os.environ['STYLEVN_CPU_CAP']})"
                                                      if os.environ.get("STYLEVN_CPU_CAP") else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/smollm2-135m-instruct")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-client", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    name = os.path.basename(args.model.rstrip("/"))
    short = lambda w, r: [{"role": "user", "content": QUESTIONS[(w + r) % len(QUESTIONS)]}]
    system, tools = store_conversation_start()
    store = lambda w, r: [system, {"role": "user", "content": QUESTIONS[(w * 3 + r) % len(QUESTIONS)] + f" (khách {w}-{r})"}]

    rows, checks = [], []
    port = free_port()
    proc = start_server(args.model, port, ["--max-num-seqs", str(max(args.clients, 4))])
    base = f"http://127.0.0.1:{port}/v1"
    try:
        single, err1, wall1 = asyncio.run(run_clients(base, name, 1, 4, short, args.max_tokens))
        many, err2, wall2 = asyncio.run(run_clients(base, name, args.clients, args.per_client, short, args.max_tokens))
        # Warm the prefix cache with one store request, then 4 users at once, twice.
        asyncio.run(run_clients(base, name, 1, 1, lambda w, r: store(99, 0), 8, tools))
        cached, err3, wall3 = asyncio.run(run_clients(base, name, 4, 3, store, 32, tools))
    finally:
        stop_server(proc)
    port = free_port()
    proc = start_server(args.model, port, ["--max-num-seqs", "4", "--prefix-cache-tokens", "0"])
    try:
        uncached, err4, wall4 = asyncio.run(run_clients(f"http://127.0.0.1:{port}/v1", name, 4, 3, store, 32, tools))
    finally:
        stop_server(proc)

    s1, sn, sc, su = summary(single, wall1), summary(many, wall2), summary(cached, wall3), summary(uncached, wall4)
    errors = err1 + err2 + err3 + err4
    ratio = sn["tokens_per_s"] / s1["tokens_per_s"]
    for label, s, n in [("1 stream", s1, 1), (f"{args.clients} concurrent streams", sn, args.clients),
                        ("store prompt, 4 users, prefix cache on", sc, 4), ("store prompt, 4 users, prefix cache off", su, 4)]:
        rows.append(f"| {label} | {s['requests']} | {s['prompt_tokens']:.0f} | {s['cached_tokens']:.0f} | "
                    f"{s['tokens_per_s']:.1f} | {s['ttft_p50']:.0f} | {s['ttft_p95']:.0f} | {s['itl_p50']:.1f} | "
                    f"{s['itl_p95']:.1f} | {s['tpot_p50']:.1f} | {s['tpot_p95']:.1f} |")
    checks.append(f"- every request completed, errors: {errors if errors else 'none'} "
                  f"({s1['requests'] + sn['requests'] + sc['requests'] + su['requests']} requests)")
    checks.append(f"- aggregate tokens/s with {args.clients} streams / one stream: **{ratio:.2f}x** (target >= 3x)")
    checks.append(f"- p95 TTFT, store system prompt + tools ({sc['prompt_tokens']:.0f} prompt tokens), 4 users, prefix cache on: "
                  f"**{sc['ttft_p95'] / 1e3:.2f} s** (target < 1.5 s); off: {su['ttft_p95'] / 1e3:.2f} s")
    load = os.getloadavg()[0]
    body = "\n".join([
        f"## Serving load test: {name}",
        "",
        f"`python3 benches/load_serve.py --model {args.model} --clients {args.clients} --per-client {args.per_client} "
        f"--max-tokens {args.max_tokens}` "
        f"on {platform.machine()}, {os.cpu_count()} cores, CPU flags: {cpu_flags()} "
        f"(load average {load:.1f} at the end: the machine was shared), "
        f"loopback, greedy, streaming with include_usage, all clients started at once, {time.strftime('%Y-%m-%d')}. "
        "Timings as vLLM's benchmark_serving: TTFT = first content chunk - send, ITL = gaps between content chunks, "
        "TPOT = (latency - TTFT)/(output tokens - 1); milliseconds.",
        "",
        "| scenario | requests | prompt tokens (mean) | cached tokens (mean) | generated tokens/s | TTFT p50 | TTFT p95 | ITL p50 | ITL p95 | TPOT p50 | TPOT p95 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        *checks,
    ])
    # The default model keeps the section name older runs wrote; others get their own.
    write_section("serve-load" if name == "smollm2-135m-instruct" else f"serve-load-{name}", body)
    print(body)
    json.dump({"single": s1, "concurrent": sn, "store_cached": sc, "store_uncached": su, "errors": errors}, sys.stderr)
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
