#!/usr/bin/env python3
"""Flood test of the store assistant's public route (bounded, loopback only): does one
client hammering `POST /assistant/v1/chat/completions` take the capacity from a polite
one? Measured like vLLM's benchmark_serving (TTFT = first content chunk - send).

Starts `target/release/stylevn serve --model M --db <fresh store db>` and, from two
loopback source addresses (two clients to the per-client limits):
1. the polite client alone: one question every `--gap` seconds, streamed;
2. the same while a flooder (`--flood-workers` requests always in flight) runs, with
   the per-client limits of configs/serve.toml ([limits]);
3. the same flood with the limits off (`--requests-per-minute 0 --tokens-per-minute 0`).
Reports the polite client's p50/p95 TTFT in each, and how the flooder's requests ended
(answered, 429). Writes the `serve-flood` section of benches/RESULTS.md.

    python3 benches/load_flood.py [--model models/smollm2-135m-instruct] [--polite 8]
"""

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time

import openai

try:  # the HTTP client the installed openai package is built on
    import httpx
except ImportError:
    import httpx2 as httpx

from load_serve import QUESTIONS, free_port, pct, stop_server, wait_ready
from results_md import write_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STYLEVN = os.path.join(ROOT, "target/release/stylevn")
REQUEST_TIMEOUT_S = 120  # a request past this counts as timed out (the run stays bounded)


def start_assistant(model, db, port, extra):
    cmd = [STYLEVN, "serve", "--model", model, "--db", db, "--port", str(port)] + extra
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith("serving ") and "/v1" in line:
            break
    else:
        sys.exit("server did not start")
    wait_ready(f"http://127.0.0.1:{port}/health")
    return proc


def client_from(ip, port):
    transport = httpx.AsyncHTTPTransport(local_address=ip)
    http = httpx.AsyncClient(transport=transport, timeout=REQUEST_TIMEOUT_S)
    return openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/assistant/v1", api_key="unused",
                              max_retries=0, http_client=http)


async def ask(client, question, max_tokens):
    """TTFT of one streamed assistant answer, or the HTTP status that refused it
    (`timeout` past REQUEST_TIMEOUT_S)."""
    sent = time.perf_counter()
    try:
        stream = await client.chat.completions.create(
            model="stylevn-assistant", messages=[{"role": "user", "content": question}],
            max_tokens=max_tokens, temperature=0, stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                ttft = time.perf_counter() - sent
                async for _ in stream:
                    pass
                return ttft, 200
        return time.perf_counter() - sent, 200
    except openai.APIStatusError as e:
        return None, e.status_code
    except (openai.APITimeoutError, httpx.TimeoutException):
        return None, "timeout"


async def scenario(port, polite_n, gap, flood_workers, max_tokens):
    polite = client_from("127.0.0.2", port)
    flooder = client_from("127.0.0.3", port)
    done = asyncio.Event()
    flood_statuses = []

    async def flood_worker(w):
        i = 0
        while not done.is_set():
            _, status = await ask(flooder, QUESTIONS[(w + i) % len(QUESTIONS)] + f" (flood {w}-{i})", max_tokens)
            flood_statuses.append(status)
            i += 1
            if status == 429:
                await asyncio.sleep(0.05)  # a retry loop that ignores Retry-After, as a bad client would

    workers = [asyncio.create_task(flood_worker(w)) for w in range(flood_workers)]
    if workers:
        await asyncio.sleep(2.0)  # the flood is under way before the polite client asks
    ttfts, refused = [], 0
    for i in range(polite_n):
        ttft, status = await ask(polite, QUESTIONS[i % len(QUESTIONS)] + f" (khách {i})", max_tokens)
        if status == 200:
            ttfts.append(ttft * 1e3)
        else:
            refused += 1
        await asyncio.sleep(gap)
    done.set()
    await asyncio.gather(*workers)
    for c in (polite, flooder):
        await c.close()
    return ttfts, refused, flood_statuses


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/smollm2-135m-instruct")
    parser.add_argument("--polite", type=int, default=8, help="polite client's questions per scenario")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between the polite client's questions")
    parser.add_argument("--flood-workers", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()
    name = os.path.basename(args.model.rstrip("/"))
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "stylevn.db")
        subprocess.run([STYLEVN, "db", "init", "--db", db], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        plan = [("polite client alone, limits on", [], 0),
                (f"with a flooder ({args.flood_workers} in flight), limits on", [], args.flood_workers),
                (f"with a flooder ({args.flood_workers} in flight), limits off",
                 ["--requests-per-minute", "0", "--tokens-per-minute", "0"], args.flood_workers)]
        for label, extra, workers in plan:
            port = free_port()
            proc = start_assistant(args.model, db, port, extra + ["--max-num-seqs", "16"])
            try:
                ttfts, refused, flood = asyncio.run(scenario(port, args.polite, args.gap, workers, args.max_tokens))
            finally:
                stop_server(proc)
            results[label] = (ttfts, refused, flood)
            print(f"{label}: polite TTFT ms {[round(t) for t in ttfts]}, refused {refused}; flooder {len(flood)} "
                  f"requests", flush=True)
            answered, limited = flood.count(200), flood.count(429)
            other = len(flood) - answered - limited
            rows.append(f"| {label} | {len(ttfts)}/{args.polite} | {pct(ttfts, 50):.0f} | {pct(ttfts, 95):.0f} | "
                        f"{answered} | {limited} | {other} |")
    alone = pct(results[plan[0][0]][0], 95)
    on, off = pct(results[plan[1][0]][0], 95), pct(results[plan[2][0]][0], 95)
    load = os.getloadavg()[0]
    body = "\n".join([
        f"## Flood test: the assistant route on {name}",
        "",
        f"`python3 benches/load_flood.py --polite {args.polite} --gap {args.gap} --flood-workers {args.flood_workers} "
        f"--max-tokens {args.max_tokens}` on {platform.machine()}, {os.cpu_count()} cores (load average {load:.1f} at "
        f"the end: more than this script means the machine was shared), {time.strftime('%Y-%m-%d')}. A polite client "
        f"(127.0.0.2) asks one store question every {args.gap} s; a flooder (127.0.0.3) keeps {args.flood_workers} "
        "requests in flight and retries a 429 after 50 ms, ignoring Retry-After. Limits: configs/serve.toml [limits] "
        "(per client: 20 requests/min in bursts of 10, 4096 max_tokens/min in bursts of 2048, 2 in flight). "
        "TTFT in milliseconds "
        f"(the assistant streams its verified answer, so TTFT is the turn's latency); a request past "
        f"{REQUEST_TIMEOUT_S} s counts as timed out (\"other\").",
        "",
        "| scenario | polite answered | polite TTFT p50 | polite TTFT p95 | flooder answered | flooder 429 | flooder other |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"- polite client's p95 TTFT: alone {alone:.0f} ms; under the flood with the limits {on:.0f} ms "
        f"(**{on / alone:.2f}x**), without them {off:.0f} ms ({off / alone:.2f}x)",
    ])
    write_section("serve-flood", body)
    print(body)
    # The limits' promise: with them on, the polite client is always answered.
    polite_refused = results[plan[0][0]][1] + results[plan[1][0]][1]
    return 0 if polite_refused == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
