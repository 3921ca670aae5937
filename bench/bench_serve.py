"""`s1 serve` under load, on loopback, against baselines measured in the same run.

1. 16 requests one after another, then the same 16 at once: the throughput ratio shows the
   continuous batching (it must be well above 1).
2. 64 concurrent clients: every one must be answered (0 errors).
3. The engine called in-process on the same 16 requests, batched: the server's overhead is the
   in-process throughput over the server's.

Usage: python bench/bench_serve.py [--requests 16] [--clients 64] [--max-tokens 8] [--threads N]
       [--repeat 3]   (each measurement is the best of --repeat interleaved rounds)
Numbers are tokens/s of completion tokens (thinking + delimiter + answer), greedy decoding.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from s1.generation.budget import Budget
from s1.generation.engines import Request, load_engine
from s1.serving.app import ServeConfig, create_app

DATA = Path(__file__).resolve().parents[1] / "src/s1/data/benchmarks/gsm8k_test.jsonl"


def questions(n: int) -> list[str]:
    lines = DATA.read_text().splitlines()
    return [json.loads(lines[i % len(lines)])["question"] for i in range(n)]


def payload(q: str, args) -> dict:
    return {"model": "smollm2-135m", "messages": [{"role": "user", "content": q}],
            "temperature": 0, "max_tokens": args.max_tokens,
            "min_thinking_tokens": args.thinking, "max_thinking_tokens": args.thinking}


async def run_clients(url: str, qs: list[str], args, concurrent: bool) -> tuple[float, int, int]:
    """(wall seconds, completion tokens, errors)"""
    async with httpx.AsyncClient(timeout=1800, limits=httpx.Limits(max_connections=256)) as c:
        async def one(q):
            try:
                r = await c.post(f"{url}/v1/chat/completions", json=payload(q, args))
            except httpx.HTTPError:
                return 0, 1
            if r.status_code != 200:
                return 0, 1
            return r.json()["usage"]["completion_tokens"], 0

        t = time.perf_counter()
        if concurrent:
            got = await asyncio.gather(*(one(q) for q in qs))
        else:
            got = [await one(q) for q in qs]
        return time.perf_counter() - t, sum(g[0] for g in got), sum(g[1] for g in got)


def in_process(engine, qs: list[str], args) -> tuple[float, int, int]:
    budget = Budget(max_thinking_tokens=args.thinking, min_thinking_tokens=args.thinking,
                    max_answer_tokens=args.max_tokens)     # greedy: Sampling's default

    def cap(i, forcer):     # max_tokens counts thinking + delimiter + answer, as the server does
        if len(forcer.thinking_ids) + len(forcer.delimiter_ids) + len(forcer.answer_ids) >= args.max_tokens:
            forcer.stop("length")

    t = time.perf_counter()
    traces = engine.generate([Request(q) for q in qs], budget, on_step=cap)
    return time.perf_counter() - t, sum(tr.generated_tokens for tr in traces), 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--thinking", type=int, default=4, help="min = max thinking tokens")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3, help="rounds; the best of each is kept")
    args = ap.parse_args()

    engine = load_engine(engine="transformers", batch_size=args.requests, threads=args.threads)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(engine, ServeConfig("smollm2-135m", max_queue=max(256, args.clients)))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    qs = questions(args.requests)
    best, errors = {}, {}                   # the best of --repeat rounds, interleaved, so that a
    def keep(name, secs, toks, errs=0):     # burst of load on a shared machine hits every side
        errors[name] = errors.get(name, 0) + errs
        if name not in best or toks / secs > best[name][1] / best[name][0]:
            best[name] = (secs, toks)
    try:
        asyncio.run(run_clients(url, qs[:2], args, concurrent=False))     # warm-up
        in_process(engine, qs[:2], args)
        for _ in range(args.repeat):
            keep("in-process", *in_process(engine, qs, args))
            keep("sequential", *asyncio.run(run_clients(url, qs, args, concurrent=False)))
            keep("concurrent", *asyncio.run(run_clients(url, qs, args, concurrent=True)))
        many_s, many_tok, many_err = asyncio.run(run_clients(url, questions(args.clients), args,
                                                             concurrent=True))
    finally:
        server.should_exit = True
        thread.join(30)
    for name, (secs, toks) in best.items():
        print(f"{name:11s} {args.requests} requests: {secs:7.1f}s {toks:5d} tokens "
              f"{toks / secs:7.1f} tok/s (errors in all rounds: {errors[name]})")
    print(f"concurrent  {args.clients} clients : {many_s:7.1f}s {many_tok:5d} tokens "
          f"{many_tok / many_s:7.1f} tok/s errors {many_err}")
    (seq_s, seq_tok), (con_s, con_tok), (inp_s, inp_tok) = (
        best["sequential"], best["concurrent"], best["in-process"])
    seq, con, inp = seq_tok / seq_s, con_tok / con_s, inp_tok / inp_s
    print(f"batching: {con / seq:.2f}x the sequential throughput (baseline {seq:.1f} tok/s)")
    print(f"server overhead: in-process is {inp / con:.2f}x the server's throughput "
          f"(baseline {inp:.1f} tok/s in-process)")
    print(f"errors with {args.clients} concurrent clients: {many_err}")
    engine.close()


if __name__ == "__main__":
    main()
