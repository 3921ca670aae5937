"""Curation throughput on the shipped pool, and our 8-gram decontamination against s1's own loop.

Per step (run through the real runner into a temporary directory, so writing the output is
counted): rows in, seconds, rows/s. Then the decontamination of the whole pool against MATH500,
AIME24 and AIME 2022-2024, cumulative across sources, two ways in the same run: ours (n-gram
hashes with numpy, hits confirmed on the strings) and a plain re-implementation of s1's approach
(a set of n-gram strings and a Python loop per question, `reference_flags`); they must flag the
same rows, and the ratio of their times is printed. Run: python bench/bench_curation.py
[--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from s1.curation.decontaminate import (DecontaminateConfig, flag_rows, group_of,
                                       load_benchmark_questions, reference_flags, word_ngrams)
from s1.curation.dedup import DedupConfig, NearDupConfig
from s1.curation.pool import PoolConfig
from s1.curation.proxies import ProxyConfig
from s1.curation.quality import QualityConfig
from s1.curation.select import SelectConfig
from s1.curation.steps import DATA_FILE, output_fingerprint, read_table, run_step


def _timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="timings per decontamination method")
    args = ap.parse_args()

    steps = [("pool", PoolConfig()), ("decontaminate", DecontaminateConfig()),
             ("dedup", DedupConfig()), ("near-dup", NearDupConfig(benchmarks=["math500"])),
             ("quality", QualityConfig(required=["question", "solution", "answer"])),
             ("proxy-columns", ProxyConfig()), ("select", SelectConfig())]
    print(f"{'step':15s} {'rows in':>8s} {'rows out':>8s} {'seconds':>8s} {'rows/s':>9s}")
    with tempfile.TemporaryDirectory() as tmp:
        data, fp = None, "source"
        for name, config in steps:
            t0 = time.perf_counter()
            run = run_step(name, data, fp, config, Path(tmp) / name, progress=False, quiet=True)
            dt = time.perf_counter() - t0
            rows_in = run.record["rows_in"] or run.record["rows_out"]
            print(f"{name:15s} {rows_in:8d} {run.record['rows_out']:8d} {dt:8.2f} "
                  f"{rows_in / dt:9.0f}")
            if name == "pool":
                pool = read_table(run.out_dir / DATA_FILE)
            data, fp = read_table(run.out_dir / DATA_FILE), output_fingerprint(run.record)

    questions = list(pool["question"])
    groups = [group_of(s, "family") for s in pool["source_type"]]
    refs = [q for _, _, q in load_benchmark_questions(["math500", "aime24", "aime22-24"], {})]
    texts = refs + questions

    def ours_confirmed():
        # the fast check plus the string confirmation of every hit, as the step does
        owner, _, _ = flag_rows(questions, groups, refs, 8, True)
        for i in np.nonzero(owner >= 0)[0]:
            theirs = set(word_ngrams(texts[owner[i]], 8))
            if not any(g in theirs for g in word_ngrams(questions[i], 8)):
                owner[i] = -1
        return owner

    t_ours, owner = _timed(ours_confirmed, args.repeat)
    t_s1, flags = _timed(lambda: reference_flags(questions, groups, refs, 8, True), args.repeat)
    ours = [bool(o >= 0) for o in owner]
    if ours != flags:
        sys.exit(f"MISMATCH: ours flags {sum(ours)}, s1's loop flags {sum(flags)}")
    print(f"\n8-gram decontamination of {len(questions)} questions against {len(refs)} benchmark "
          f"questions, cumulative over {len(set(groups))} sources: {sum(flags)} flagged by both")
    print(f"  s1's loop (baseline): {t_s1:.2f}s ({len(questions) / t_s1:,.0f} q/s)")
    print(f"  ours (numpy hashes):  {t_ours:.2f}s ({len(questions) / t_ours:,.0f} q/s)")
    print(f"  speedup: {t_s1 / t_ours:.1f}x (median of {args.repeat}; ours includes the string "
          "confirmation of every hit)")


if __name__ == "__main__":
    main()
