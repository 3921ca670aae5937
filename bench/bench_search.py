"""REBASE shares prefixes: a tree of width 16 against 16 independent samples, per question of the
miniature world's `tiny` benchmark, on the tiny transformers model (or the embedded GGUF on
llama.cpp). Both are measured in the same run, the same engine, the same budget; the machine is
shared and noisy, so only the ratios mean much.

- prefix sharing in the engine: every continuation of the tree reads its prompt and the
  thinking so far; the engine evaluates only what is new (the parent's cache is reused). Tokens
  read against tokens evaluated (target ≥ 2x).
- the tree against 16 independent samples: the 16 samples write 16 whole solutions; the tree's
  finished candidates, written out one by one, are its `solution tokens`, and steps they share
  (a node expanded more than once) were evaluated once. Tokens evaluated per solution token,
  independent / tree. How much the tree shares depends on its reward model: where every branch
  scores alike (an exact checker on a model that rarely errs), REBASE spreads the width evenly
  and is 16 independent chains.
- wall time: the tree (one engine call per depth, the reward model between) against the 16
  samples in one call.
- the reward model's share of the search: its scoring time over the search's wall time, and its
  tokens over the tokens the generator evaluated (a step checker here, which runs no network:
  with a neural PRM the FLOPs would follow its size).

Usage: .venv/bin/python bench/bench_search.py [--questions 8] [--width 16] [--threads 1]
       [--engine transformers|llama.cpp] [--scorer module:function]

Measured here (s1-tiny, one thread, a machine at load 11): over the first 12 questions, prefix
sharing 10.9x fewer tokens evaluated than the continuations read; the tree against independent
samples 1.03x per solution token (the exact checker scores nearly every branch of this model
alike, so REBASE spreads its width evenly); wall time tree / independent 1.28x; the reward model
0.1% of the search's time and 80% of the tokens read. Over 8 questions of 8+ steps
(`--min-difficulty 8`): 17.2x, 1.07x, 1.36x.
"""

from __future__ import annotations

import argparse
import time
from typing import Sequence

from s1.evaluation.benchmarks import load_benchmark
from s1.evaluation.prompts import format_prompt
from s1.evaluation.rewards import RewardModel
from s1.evaluation.search import TreeSearch, load_reward_model
from s1.generation.budget import Budget
from s1.generation.engines import Request, load_engine
from s1.miniature.world import benchmark_rows


class LineChecker(RewardModel):
    """Step i scores 1 when it is line i of the question's known solution (the miniature
    world's exact steps), else 0: a process reward model with real signal and no network."""

    name = "line-checker"

    def __init__(self) -> None:
        super().__init__()
        self.solutions = {r["question"]: r["solution"].split("\n") for r in benchmark_rows()}

    def score(self, question: str, candidates: Sequence[Sequence[str]]) -> list[list[float]]:
        solution = self.solutions.get(question, [])
        out = []
        for steps in candidates:
            self.tokens += sum(len(s) for s in steps)
            lines = [s.strip() for s in steps if s.strip()] or [""]
            out.append([float(i < len(solution) and line == solution[i])
                        for i, line in enumerate(lines)])
        return out


class Timed(RewardModel):
    """A reward model with its scoring time counted."""

    def __init__(self, inner: RewardModel) -> None:
        super().__init__()
        self.inner, self.name, self.process, self.seconds = inner, inner.name, inner.process, 0.0

    def score(self, question, candidates):
        t = time.perf_counter()
        out = self.inner.score(question, candidates)
        self.seconds += time.perf_counter() - t
        self.tokens, self.flops = self.inner.tokens, self.inner.flops
        return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=8)
    ap.add_argument("--min-difficulty", type=int, default=1,
                    help="only questions of at least this many steps (where the model errs, "
                         "REBASE prunes and its branches share more)")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--softmax-temperature", type=float, default=0.2)
    ap.add_argument("--max-thinking", type=int, default=200)
    ap.add_argument("--engine", default="transformers", choices=("transformers", "llama.cpp"))
    ap.add_argument("--scorer", default=None, help="module:function returning a RewardModel "
                                                   "(default: the exact line checker)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    engine = load_engine("s1-tiny" if args.engine == "transformers" else None,
                         engine=args.engine, threads=args.threads, batch_size=args.width)
    rm = Timed(load_reward_model(args.scorer) if args.scorer else LineChecker())
    delimiter = "\n" if args.engine == "transformers" else "\n\n"
    budget = Budget(max_thinking_tokens=args.max_thinking, max_answer_tokens=16).with_(
        temperature=1.0)
    params = {"step_delimiter": delimiter, "aggregate": "last", "max_depth": 40,
              "width": args.width, "softmax_temperature": args.softmax_temperature}
    bench = [item for item in load_benchmark("tiny")
             if int(item.meta.get("difficulty", 1)) >= args.min_difficulty][: args.questions]
    tree = {"evaluated": 0, "solution": 0, "wall": 0.0, "candidates": 0, "depth": 0, "read": 0,
            "branches": 0}
    indep = {"evaluated": 0, "solution": 0, "wall": 0.0}
    for k, item in enumerate(bench):
        request = Request(format_prompt(item, "s1"), budget=budget, seed=k, id=item.id).resolve()
        t = time.perf_counter()
        res = TreeSearch(engine, rm, "rebase", params, request, item.question).run()
        tree["wall"] += time.perf_counter() - t
        tree["evaluated"] += res.evaluated_tokens
        tree["candidates"] += len(res.candidates)
        tree["depth"] += res.depth
        tree["read"] += res.prompt_tokens + res.generated_tokens
        tree["branches"] += res.branches
        # each candidate as if written alone: its whole thinking, delimiter and answer
        # (a continuation's prompt tokens hold its prefix: prompt + generated is the whole)
        tree["solution"] += sum(c.trace.prompt_tokens + c.trace.generated_tokens
                                for c in res.candidates)
        before, t = engine.tokens_fed, time.perf_counter()
        traces = engine.generate([Request(request.prompt, budget=budget, seed=k * 1000 + s,
                                          id=f"{item.id}/{s}") for s in range(args.width)])
        indep["wall"] += time.perf_counter() - t
        indep["evaluated"] += engine.tokens_fed - before
        indep["solution"] += sum(tr.prompt_tokens + tr.generated_tokens for tr in traces)

    n = len(bench)
    per_tree = tree["evaluated"] / tree["solution"]
    per_indep = indep["evaluated"] / indep["solution"]
    print(f"{n} questions of tiny, {args.engine}, REBASE width {args.width} "
          f"(T {args.softmax_temperature}, {tree['candidates'] / n:.1f} answers, depth "
          f"{tree['depth'] / n:.1f} per question) vs {args.width} independent samples")
    print(f"prefix sharing: the tree's {tree['branches']} continuations read "
          f"{tree['read']} tokens, the engine evaluated {tree['evaluated']} → "
          f"{tree['read'] / tree['evaluated']:.2f}x fewer (target ≥ 2x)")
    print(f"tokens evaluated: tree {tree['evaluated']} for {tree['solution']} solution tokens "
          f"({per_tree:.3f} each); independent {indep['evaluated']} for {indep['solution']} "
          f"({per_indep:.3f} each)")
    print(f"→ independent / tree: {per_indep / per_tree:.2f}x tokens evaluated per solution "
          f"token; raw totals {indep['evaluated'] / tree['evaluated']:.2f}x")
    print(f"wall time: tree {tree['wall']:.1f}s, independent {indep['wall']:.1f}s → "
          f"tree / independent {tree['wall'] / indep['wall']:.2f}x")
    print(f"reward model: {rm.seconds:.2f}s of the tree's {tree['wall']:.1f}s "
          f"({100 * rm.seconds / tree['wall']:.1f}%), {rm.tokens} tokens read "
          f"({100 * rm.tokens / (rm.tokens + tree['evaluated']):.0f}% of all tokens read), "
          f"{rm.flops:.3g} FLOPs")


if __name__ == "__main__":
    main()
