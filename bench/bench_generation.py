"""Budget-forcing performance on the embedded model. Prints ratios against baselines measured in
the same run (the machine is shared and noisy; absolute times mean little).

1. Forcing overhead: T tokens with 3 forced "Wait"s vs plain T tokens, same engine and batch.
2. Against the naive way (re-prompt the whole sequence after each "Wait" with a plain
   `model.generate`, no cache reuse, as the paper's README example): 4 rounds of a 1,000-token
   thinking.
3. Batched throughput at batch 16: our decode loop vs transformers' own `model.generate`, both
   also against llama.cpp's single-stream tokens/s on the same GGUF.
4. Sampling at T=1, top-p 0.95, batch 16 vs greedy, same engine, same rows, same token count
   (the choice is made on the device for the whole batch).
5. The remote engine against a llama.cpp server (llama-cpp-python) on loopback serving the same
   GGUF: requests per generation against its forcing events (target ≤ events + 3), throughput
   against the in-process llama.cpp engine (target ≥ 0.5x), streams closed early.
6. The llama.cpp engine at batch 16 against itself one sequence at a time (target ≥ 3x), beside
   llama.cpp's own ceiling on this machine: one decode of 16 sequences against one of a single
   sequence, timed bare (no Python, no forcing, no prompts).
7. A 4-cap greedy sweep over 16 questions on llama.cpp with branching (the largest cap decoded
   once, the smaller ones forked off it) against the same sweep with each cap decoded on its own
   (target ≥ 1.6x); the tokens must be the same.

Usage: .venv/bin/python -u bench/bench_generation.py [--quick] [--part overhead,sampling,remote,...]
"""

from __future__ import annotations

import argparse
import time

import torch

from s1.generation.budget import Budget, LoopGuard, Sampling
from s1.generation.engines import Request, load_engine

QUESTION = "Explain step by step how to compute the sum of the first 100 positive integers."


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def exact(n: int, **kw) -> Budget:
    """Exactly n thinking tokens: every earlier end becomes a "Wait" (min = max = n)."""
    return Budget(max_thinking_tokens=n, min_thinking_tokens=n, max_answer_tokens=1,
                  require_answer=False, loop=LoopGuard("off"), **kw)


# Prompts the embedded model answers at length (no attempt to end within T tokens) and prompts
# it tries to close quickly (each early end becomes a forced "Wait" under min = max = T).
LONG = "Write a long, detailed story about a dragon who learns to count. Story {i}:"
SHORT = "What is {i} + {i}?"


def forcing_overhead(hf, T: int, batch: int) -> float:
    """Same engine, same batch, same T tokens per row: does forcing "Wait" cost throughput?"""
    budget = exact(T)
    rates, waits = {}, {}
    for rep in range(2):
        for name, template in (("plain", LONG), ("forced", SHORT)):
            reqs = [Request(template.format(i=i), id=str(i)) for i in range(batch)]
            trs, s = timed(lambda: hf.generate(reqs, budget))
            rates[name] = max(rates.get(name, 0), sum(t.generated_tokens for t in trs) / s)
            waits[name] = sum(t.waits for t in trs) / len(trs)
    ratio = rates["forced"] / rates["plain"]
    print(f"[1] forcing overhead, batch {batch}, {T} thinking tokens/row: plain {rates['plain']:.1f} tok/s "
          f"({waits['plain']:.1f} Waits/row), forced {rates['forced']:.1f} tok/s ({waits['forced']:.1f} "
          f"Waits/row) → ratio {ratio:.2f} (target ≥ 0.97)")
    return ratio


def naive_rounds(hf, llama, thinking: int, rounds: int) -> dict[str, float]:
    """The README's way: after each round, re-tokenize prompt+text+"Wait" and generate from
    scratch (no cache reuse), against ours (one pass, the Waits forced inside the loop)."""
    per = thinking // rounds
    prompt = hf.prepare(Request(QUESTION).resolve(exact(thinking)))[0]

    def naive_hf():
        model, tok, text = hf.model, hf.tokenizer, prompt
        for r in range(rounds):
            ids = torch.tensor([tok.encode(text)])
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=per,
                                 min_new_tokens=per, do_sample=False)
            text += tok.decode(out[0, ids.shape[1]:]) + ("Wait" if r < rounds - 1 else "")

    def naive_llama():
        llm, tok, text = llama.llm, llama.tokenizer, prompt
        for r in range(rounds):
            llm.reset()                               # no cache reuse: prefill everything again
            ids = tok.encode(text)
            llm.eval(ids)
            new = []
            for _ in range(per):
                new.append(int(llama._logits().argmax()))
                llm.eval(new[-1:])
            text += tok.decode(new) + ("Wait" if r < rounds - 1 else "")

    times = {}
    for name, fn in (("naive transformers", naive_hf),
                     ("ours transformers", lambda: hf.generate([Request(QUESTION)], exact(thinking))),
                     ("naive llama.cpp", naive_llama),
                     ("ours llama.cpp", lambda: llama.generate([Request(QUESTION)], exact(thinking)))):
        times[name] = timed(fn)[1]
    same_hf = times["naive transformers"] / times["ours transformers"]
    same_ll = times["naive llama.cpp"] / times["ours llama.cpp"]
    fastest = times["naive transformers"] / times["ours llama.cpp"]
    print(f"[2] {rounds} rounds of a {thinking}-token thinking, batch 1 "
          + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    print(f"    same engine: transformers {same_hf:.2f}x, llama.cpp {same_ll:.2f}x faster; "
          f"plain transformers generate re-prompting vs ours on llama.cpp: {fastest:.2f}x (target ≥ 3x)")
    return {"transformers": same_hf, "llama.cpp": same_ll, "plain-generate-vs-ours": fastest}


def batched_throughput(hf, llama, T: int, batch: int) -> tuple[float, float]:
    reqs = [Request(QUESTION + " " * 0 + f" (case {i})", id=str(i)) for i in range(batch)]
    budget = exact(T)
    trs, s_ours = timed(lambda: hf.generate(reqs, budget))
    ours = sum(t.generated_tokens for t in trs) / s_ours
    n_new = max(t.generated_tokens for t in trs)
    tok = hf.tokenizer.tok
    tok.padding_side = "left"
    prompts = [hf.prepare(r.resolve(budget))[0] for r in reqs]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    _, s_hf = timed(lambda: hf.model.generate(**enc, max_new_tokens=n_new, min_new_tokens=n_new,
                                               do_sample=False, pad_token_id=hf.pad_id))
    theirs = batch * n_new / s_hf
    tr, s_ll = timed(lambda: llama.generate([reqs[0]], budget)[0])
    single = tr.generated_tokens / s_ll
    print(f"[3] batch {batch}, {n_new} new tokens/row: ours {ours:.1f} tok/s, transformers generate "
          f"{theirs:.1f} tok/s → ratio {ours / theirs:.2f} (target ≥ 1.0); llama.cpp single stream "
          f"{single:.1f} tok/s → ours {ours / single:.2f}x, generate {theirs / single:.2f}x of it")
    return ours / theirs, ours / single


def sampling_ratio(hf, T: int, batch: int) -> float:
    """T=1, top-p 0.95 against greedy: what drawing the tokens costs, batch and tokens equal."""
    reqs = [Request(LONG.format(i=i), id=str(i), seed=i) for i in range(batch)]
    rates = {}
    for rep in range(2):
        for name, sampling in (("greedy", Sampling()),
                               ("sampled", Sampling(temperature=1.0, top_p=0.95))):
            trs, s = timed(lambda: hf.generate(reqs, exact(T, sampling=sampling)))
            rates[name] = max(rates.get(name, 0), sum(t.generated_tokens for t in trs) / s)
    ratio = rates["sampled"] / rates["greedy"]
    print(f"[4] sampling, batch {batch}, {T} tokens/row on {hf.device}: greedy {rates['greedy']:.1f} "
          f"tok/s, T=1 top-p 0.95 {rates['sampled']:.1f} tok/s → ratio {ratio:.2f} (target ≥ 0.9)")
    return ratio




def remote_vs_in_process(T: int, questions: int = 4, threads: int = 1) -> tuple[float, float]:
    """Same GGUF, same threads, greedy, one sequence at a time (the server's one slot): in-process llama.cpp vs the
    remote engine against `python -m llama_cpp.server` on loopback."""
    import os
    import socket
    import subprocess
    import sys
    import tempfile

    import httpx

    from s1.generation.engines.llamacpp import LlamaCppEngine
    from s1.generation.engines.remote import load_remote_engine
    from s1.generation.formats import FORMATS
    from s1.generation.models import embedded_gguf

    gguf = str(embedded_gguf())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tempfile.NamedTemporaryFile("w+", prefix="bench_llama_server_", suffix=".log")
    server = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "8192", "--n_threads", str(threads), "--flash_attn", "true"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        local = LlamaCppEngine(gguf, FORMATS["s1"], n_threads=threads, batch_size=1, branching=False)
        remote = load_remote_engine(url, concurrency=1)
        # a mix of forcing: plain, a forced end at the cap, ignored ends ("Wait" appended)
        budgets = [Budget(max_thinking_tokens=T, max_answer_tokens=32),
                   Budget(max_thinking_tokens=T // 4, max_answer_tokens=32),
                   Budget(max_thinking_tokens=T, num_ignore=2, max_answer_tokens=32),
                   Budget(max_thinking_tokens=T, min_thinking_tokens=T // 2, max_answer_tokens=32)]
        reqs = [Request(SHORT.format(i=i + 3), id=f"{i}/{j}", budget=b)
                for i in range(questions) for j, b in enumerate(budgets)]
        rates = {"in-process": 0.0, "remote": 0.0}
        aborted = 0
        for _ in range(2):       # best of two, alternating (a shared, noisy machine)
            for name, eng in (("in-process", local), ("remote", remote)):
                trs, s = timed(lambda: eng.generate(reqs))
                rates[name] = max(rates[name], sum(t.generated_tokens for t in trs) / s)
                print(f"    {name}: {sum(t.generated_tokens for t in trs) / s:.1f} tok/s", flush=True)
                if name == "remote":
                    traces = trs
                    aborted += sum(t.meta["aborted_streams"] for t in trs)
        per = [t.meta["requests"] for t in traces]
        events = [sum(e.kind != "loop" for e in t.events) for t in traces]
        over = max(r - e for r, e in zip(per, events))
        log.flush()
        text = open(log.name).read()
        disconnects, asgi = text.count("Disconnected from client"), text.count("ASGI callable returned")
        local.close()
    finally:
        server.terminate()
        server.wait(10)
        log.close()
    ratio = rates["remote"] / rates["in-process"]
    print(f"[5] remote engine vs in-process llama.cpp, same GGUF, {threads} threads, {len(reqs)} "
          f"generations (caps {T}/{T // 4}, num_ignore 2, min {T // 2}): in-process "
          f"{rates['in-process']:.1f} tok/s, remote {rates['remote']:.1f} tok/s → ratio {ratio:.2f} "
          f"(target ≥ 0.5)")
    print(f"    requests per generation: mean {sum(per) / len(per):.1f}, max {max(per)}; forcing events "
          f"mean {sum(events) / len(events):.1f}; max(requests − events) = {over} (target ≤ 3); "
          f"streams closed early {aborted} (both passes), server log: "
          f"{disconnects} disconnects, {asgi} 'ASGI callable returned without completing response'")
    return ratio, over


def llama_batched(llama, T: int, batch: int) -> float:
    """The llama.cpp engine decoding `batch` rows at once against itself one row at a time."""
    reqs = [Request(f"{QUESTION} (case {i})", id=str(i)) for i in range(batch)]
    budget = exact(T)
    rates = {}
    for rows in (1, batch, 1, batch):            # best of two, alternating
        llama.batch_size = rows
        trs, s = timed(lambda: llama.generate(reqs if rows > 1 else reqs[:4], budget))
        rates[rows] = max(rates.get(rows, 0.0), sum(t.generated_tokens for t in trs) / s)
    ratio = rates[batch] / rates[1]
    # The ceiling: llama.cpp alone (no Python, no forcing), one decode of `batch` sequences × one
    # token against one sequence × one token, each with its logits.
    from s1.generation.engines.llamacpp_batch import Pool

    pool = Pool(llama.llm, 512, batch)
    ids = llama.tokenizer.encode(QUESTION)
    for seq in range(batch):
        pool.decode([(seq, 0, ids, True)])
    step = {}
    for rows in (1, batch):
        best = float("inf")
        for k in range(12):
            t = time.perf_counter()
            pool.decode([(seq, len(ids), ids[k:k + 1], True) for seq in range(rows)])
            best = min(best, time.perf_counter() - t)
            for seq in range(rows):
                pool.drop(seq, len(ids))        # the same context at every step
        step[rows] = best
    pool.close()
    ceiling = batch * step[1] / step[batch]
    print(f"[6] llama.cpp, {T} thinking tokens/row: one sequence at a time {rates[1]:.1f} tok/s, "
          f"batch {batch} {rates[batch]:.1f} tok/s → ratio {ratio:.2f} (target ≥ 3); llama.cpp's own ceiling on "
          f"this machine: a decode of {batch} sequences gives {ceiling:.2f}x the tokens/s of one "
          f"({step[batch] * 1000:.1f} ms against {step[1] * 1000:.1f} ms) → {ratio / ceiling:.0%} of it")
    return ratio


def branching_sweep(llama, caps: tuple[int, ...], questions: int) -> float:
    """A greedy sweep of thinking caps: decode the largest once and branch the smaller caps off
    it, against the same sweep with each cap decoded on its own; the tokens must be the same."""
    reqs = [Request(f"{QUESTION} (case {i})", id=f"{i}@{c}",
                    budget=Budget(max_thinking_tokens=c, max_answer_tokens=8,
                                  loop=LoopGuard("off")))
            for i in range(questions) for c in caps]
    llama.batch_size = 16
    out, times, fed = {}, {}, {}
    for branching in (False, True):
        llama.branching = branching
        before = llama.tokens_fed
        out[branching], times[branching] = timed(lambda: llama.generate(reqs))
        fed[branching] = llama.tokens_fed - before
    same = sum(a.thinking_ids == b.thinking_ids and a.answer_ids == b.answer_ids
               and a.finish_reason == b.finish_reason for a, b in zip(out[False], out[True]))
    ratio = times[False] / times[True]
    print(f"[7] greedy sweep of caps {'/'.join(map(str, caps))} × {questions} questions on llama.cpp, "
          f"batch 16: each cap on its own {times[False]:.1f} s ({fed[False]} tokens evaluated), "
          f"branching {times[True]:.1f} s ({fed[True]}) → ratio {ratio:.2f} (target ≥ 1.6); "
          f"{same}/{len(reqs)} traces token-identical")
    return ratio


PARTS = ("overhead", "naive", "batched", "sampling", "remote", "llama-batch", "branching")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    ap.add_argument("--part", default=",".join(PARTS), help=f"comma-separated: {', '.join(PARTS)}")
    ap.add_argument("--remote-only", action="store_true", help="only [5] (= --part remote)")
    args = ap.parse_args()
    if args.remote_only:
        args.part = "remote"
    parts = set(args.part.split(","))
    if parts - set(PARTS):
        ap.error(f"unknown part(s): {', '.join(sorted(parts - set(PARTS)))}")
    torch.set_num_threads(torch.get_num_threads())
    hf = (load_engine(engine="transformers", batch_size=16)
          if parts & {"overhead", "naive", "batched", "sampling"} else None)
    llama = (load_engine(engine="llama.cpp", batch_size=1)
             if parts & {"naive", "batched", "llama-batch", "branching"} else None)
    T = 64 if args.quick else 256
    for name, run in (("overhead", lambda: forcing_overhead(hf, T, 16)),
                      ("naive", lambda: naive_rounds(hf, llama, 200 if args.quick else 1000, 4)),
                      ("batched", lambda: batched_throughput(hf, llama, T, 16)),
                      ("sampling", lambda: sampling_ratio(hf, T, 16)),
                      ("remote", lambda: remote_vs_in_process(T, questions=1 if args.quick else 4)),
                      ("llama-batch", lambda: llama_batched(llama, T, 16)),
                      ("branching", lambda: branching_sweep(
                          llama, (16, 32, 64, 128) if args.quick else (64, 128, 256, 512), 16))):
        if name in parts:
            run()


if __name__ == "__main__":
    main()
