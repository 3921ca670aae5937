"""A budget-forcing sweep shares the batch: 4 budgets over N GSM8K questions on the in-process
transformers engine at batch 16, all submitted at once through `s1 eval`'s own code path (runs,
grading, records on disk), against running each question alone (one request per generate call,
the same budgets). Both are measured in the same run; the machine is shared and noisy, so only
the ratio means much. Target: ≥ 4x.

Usage: .venv/bin/python bench/bench_sweep.py [--questions 16] [--budgets 16,32,64,128] [--threads 1]
(about 4 minutes on 2 idle CPU cores; give --threads 1 when other jobs keep the cores busy).
With tiny budgets the ~100-token prompt prefill, which batching cannot save, dominates and the
ratio drops (8,16,24,32 at one thread: 2.7x).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from s1.evaluation.benchmarks import load_benchmark
from s1.evaluation.methods import BudgetForcing, expand
from s1.evaluation.prompts import format_prompt
from s1.evaluation.runs import execute, make_runs
from s1.generation.budget import Budget
from s1.generation.engines import Request, load_engine


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--budgets", default="16,32,64,128")
    ap.add_argument("--max-answer", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (1 on a machine other jobs keep busy: two "
                         "threads waiting on each other there run ~6x slower)")
    args = ap.parse_args()
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)

    budgets = [int(b) for b in args.budgets.split(",")]
    bench = load_benchmark("gsm8k", limit=args.questions)
    base = Budget(max_answer_tokens=args.max_answer)
    settings = expand([BudgetForcing(budgets)], base)
    engine = load_engine(engine="transformers", batch_size=args.batch_size)
    n = len(bench) * len(settings)
    import torch
    print(f"{len(bench)} questions × {len(settings)} budgets ({args.budgets}) = {n} generations, "
          f"transformers engine, batch {args.batch_size}, max answer {args.max_answer}, "
          f"{torch.get_num_threads()} torch thread(s)")

    # Warm-up: first calls pay for lazy initialisation that neither side should be charged.
    engine.generate([Request("What is 1+1?")], base.with_(max_thinking_tokens=4))

    with tempfile.TemporaryDirectory() as tmp:
        runs = make_runs(Path(tmp), engine, "smollm2-135m", bench, settings, [0])
        t = time.perf_counter()
        execute(runs, engine, progress=False)
        shared = time.perf_counter() - t
        together = {(r.setting.name, rec.id): rec.trace["thinking_ids"] + rec.trace["answer_ids"]
                    for r in runs for rec in r.done.values()}
        gen_shared = sum(rec.compute.generated_tokens for r in runs for rec in r.done.values())

    # Alone: one question per call, the same budgets and prompts, graded the same way.
    from s1.evaluation.grading import grade
    t = time.perf_counter()
    same = gen_alone = 0
    for s in settings:
        for item in bench:
            [tr] = engine.generate([Request(format_prompt(item), seed=0)], s.budget)
            grade(tr.answer, item)
            gen_alone += tr.generated_tokens
            same += together[(s.name, item.id)] == tr.thinking_ids + tr.answer_ids
    alone = time.perf_counter() - t
    engine.close()

    q_shared, q_alone = n / shared, n / alone
    print(f"sweep submitted together: {shared:.1f}s, {q_shared:.2f} questions/s "
          f"({gen_shared / shared:.0f} generated tok/s)")
    print(f"each question alone:      {alone:.1f}s, {q_alone:.2f} questions/s "
          f"({gen_alone / alone:.0f} generated tok/s)")
    print(f"→ ratio {q_shared / q_alone:.2f}x (target ≥ 4x); identical greedy tokens in "
          f"{same}/{n} generations")


if __name__ == "__main__":
    main()
