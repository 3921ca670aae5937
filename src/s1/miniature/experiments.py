"""The paper's data experiments in miniature, each one command that runs the real stages:
`s1 curate run` (configs/curate-tiny.yaml), `s1 train` (configs/tiny-sft.yaml), `s1 eval` on the
`tiny` benchmark, then a table and a figure with intervals.

    python -m s1.miniature.experiments table2 --out runs/mini/data
    python -m s1.miniature.experiments sizes  --out runs/mini/data

- `table2` (the paper's Table 2): SFT of the base model (the shipped s1-tiny, as the paper starts
  from Qwen2.5-32B-Instruct) on the set `s1 curate` selects (difficulty
  with the base model as the solver, the families' MSC codes, Algorithm 1 on trace length)
  against 1K-random, 1K-diverse, 1K-longest and the full pool, trained alike (configs/tiny-sft.yaml).
- `sizes` (the review's Conjecture 2): the s1 selection at growing sizes, and the full pool.
- `init` (the review's Q5): the same recipe from another starting point, the base model or
  random weights.

Every arm is trained once per seed (the seed draws the selection where it is random, and the
training order). Each command is resumable: a finished curation, model or evaluation is kept
and not redone, so a killed experiment goes on where it stopped; experiments given one `--out`
share what they have in common (table2's s1 arm is sizes' s1-1000 and init's from-base).

Accuracy per arm is the mean over seeds of the accuracy on all 600 benchmark questions, with the
seeds' sd and the 95% interval of the per-question seed means (`question_interval`); each arm is
compared with the reference arm (`random` in table2) on the same questions, seeds averaged per
question: a paired bootstrap interval and the exact paired sign-flip test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from s1.errors import UserError

EVAL_CAP = 256            # thinking characters: past every trace of the benchmark (longest ~150)


@dataclass(frozen=True)
class Arm:
    """One training set and starting point: `strategy` of the select step (`full`: all), `size`."""

    name: str
    strategy: str
    size: int | None = 1000
    filtered: bool = False          # the difficulty filter applied (the paper: s1 only)
    train: tuple[str, ...] = ()     # extra `s1 train` overrides (the starting point)
    init: str = "base"              # what `train` starts from, for the folder names

    @property
    def key(self) -> str:
        """What the arm trains on and from: equal arms of two experiments share their folders."""
        return (f"{self.strategy}-{self.size or 'all'}-{'filtered' if self.filtered else 'unfiltered'}"
                f"-from-{self.init}")


TABLE2 = (Arm("s1", "s1", 1000, filtered=True), Arm("random", "random"), Arm("diverse", "diverse"),
          Arm("longest", "longest"), Arm("full", "full", None))
SIZES = (Arm("s1-100", "s1", 100, True), Arm("s1-300", "s1", 300, True), Arm("s1-1000", "s1", 1000, True),
         Arm("s1-3000", "s1", 3000, True), Arm("full", "full", None))
SCRATCH = ("model.name=null", "model.scratch.hidden_size=128", "model.scratch.num_hidden_layers=4",
           "model.scratch.num_attention_heads=4", "model.scratch.intermediate_size=384",
           "model.scratch.max_position_embeddings=512", "train.learning_rate=2e-3")
INIT = (Arm("from-base", "s1", 1000, True), Arm("from-scratch", "s1", 1000, True, SCRATCH, "scratch"))
EXPERIMENTS = {"table2": (TABLE2, "random"), "sizes": (SIZES, "s1-100"), "init": (INIT, "from-scratch")}


@dataclass
class Experiment:
    arms: tuple[Arm, ...]
    reference: str
    base: Path
    out: Path
    seeds: tuple[int, ...] = (0, 1, 2)
    pool_size: int = 5000
    limit: int | None = None
    threads: int = 1

    # --- running the stages ------------------------------------------------------------------

    def _s1(self, *args: str) -> None:
        """One real `s1` command; its output goes to OUT/logs, a failure stops the experiment."""
        logs = self.out / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        name = "-".join(a for a in args[:2]) + f"-{time.time_ns()}.log"
        cmd = [sys.executable, "-m", "s1.cli", *args]
        print("$ s1 " + " ".join(args), flush=True)
        with open(logs / name, "w") as f:
            done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, text=True)
        if done.returncode:
            raise UserError(f"`s1 {' '.join(args[:2])}` failed (exit {done.returncode}); "
                            f"see {logs / name}")

    def curated(self, arm: Arm, seed: int) -> Path:
        """The arm's training set for this seed (s1K schema), curated once."""
        path = self.out / "sets" / f"{arm.key.rsplit('-from-', 1)[0]}-s{seed}.jsonl"
        if path.exists():
            return path
        work = self.out / "curate"   # one folder: the steps before `select` are cached and shared
        over = [f"out={work}", f"pool.synthetic.size={self.pool_size}",
                f"difficulty.solvers.base.model={self.base}", f"difficulty.tokenizer={self.base}",
                f"select.strategy={arm.strategy}", f"select.seed={seed}"]
        if arm.size:
            over.append(f"select.size={arm.size}")
        if not arm.filtered:
            over.append("difficulty.drop_solved=false")
        self._s1("curate", "run", "--recipe", "curate-tiny", "--quiet", *over)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(work / "s1k.jsonl", str(path) + ".part")
        os.replace(str(path) + ".part", path)
        return path

    def trained(self, arm: Arm, seed: int) -> Path:
        model = self.out / "models" / f"{arm.key}-s{seed}"
        if (model / "s1_train.json").exists():
            return model
        data = self.curated(arm, seed)
        self._s1("train", "--recipe", "tiny-sft", f"model.name={self.base}", f"data.source={data}",
                 f"train.seed={seed}", f"train.threads={self.threads}", f"output_dir={model}",
                 *arm.train)
        return model

    def evaluated(self, name: str, model: Path) -> Path:
        out = self.out / "eval" / name
        args = ["eval", "--model", str(model), "--benchmark", "tiny", "--max-thinking", str(EVAL_CAP),
                "--max-answer", "24", "--threads", str(self.threads), "--batch-size", "64",
                "--out", str(out), "--quiet"]
        if self.limit:
            args += ["--limit", str(self.limit)]
        runs = sorted(out.glob("*/summary.json"))
        if not runs or not json.loads(runs[0].read_text()).get("complete", True):
            self._s1(*args)
            runs = sorted(out.glob("*/summary.json"))
        return runs[0].parent

    def collected(self) -> dict:
        """The results evaluated so far, nothing trained or run: the arms and seeds done."""
        results = {}
        base = sorted((self.out / "eval" / "base").glob("*/records.jsonl"))
        if base:
            results["base"] = {"seeds": {0: _scores(base[0].parent)}}
        for arm in self.arms:
            for seed in self.seeds:
                runs = sorted((self.out / "eval" / f"{arm.key}-s{seed}").glob("*/records.jsonl"))
                model = self.out / "models" / f"{arm.key}-s{seed}"
                if not runs or not (model / "s1_train.json").exists():
                    continue
                _add(results, arm, seed, model, _scores(runs[0].parent))
        if not results:
            raise UserError(f"nothing evaluated yet under {self.out}")
        return results

    def run(self, jobs: int = 1) -> dict:
        """Curate every set, train every model (`jobs` at a time), evaluate each; resumable."""
        from concurrent.futures import ThreadPoolExecutor

        todo = [(arm, seed) for arm in self.arms for seed in self.seeds]
        for arm, seed in todo:   # one at a time: they share the curation folder
            self.curated(arm, seed)
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            models = list(pool.map(lambda job: self.trained(*job), todo))
        results = {"base": {"seeds": {0: _scores(self.evaluated("base", self.base))}}}   # before SFT
        for (arm, seed), model in zip(todo, models):
            scores = _scores(self.evaluated(f"{arm.key}-s{seed}", model))
            _add(results, arm, seed, model, scores)
            print(f"{arm.name} seed {seed}: {100 * sum(scores.values()) / len(scores):.1f}%", flush=True)
        return results


def _scores(run_dir: Path) -> dict[str, float]:
    return {r["id"]: 1.0 if r.get("correct") else 0.0 for r in _records(run_dir)}


def _add(results: dict, arm: Arm, seed: int, model: Path, scores: dict[str, float]) -> None:
    """One seed of an arm into the results, with what its model's training record says."""
    record = json.loads((model / "s1_train.json").read_text())
    entry = results.setdefault(arm.name, {"seeds": {}, "arm": arm.__dict__})
    entry["seeds"][seed] = scores
    entry.setdefault("examples", record["truncation"]["examples"])
    entry.setdefault("steps", record.get("global_step"))


# ---------------------------------------------------------------------------------------------
# the table and the figure


def summarize(results: dict, reference: str) -> list[dict]:
    """One row per arm: accuracy (mean ± sd over seeds), the 95% interval of the per-question
    seed means, and the paired difference with the reference arm."""
    from s1.evaluation.intervals import mean_sd, paired_bootstrap, question_interval

    def means(entry: dict) -> dict[str, float]:
        seeds = list(entry["seeds"].values())
        ids = sorted(set.intersection(*(set(s) for s in seeds)))
        return {i: sum(s[i] for s in seeds) / len(seeds) for i in ids}

    ref = means(results[reference]) if reference in results else None
    rows = []
    for name, entry in results.items():
        per_q = means(entry)
        accs = [sum(s.values()) / len(s) for s in entry["seeds"].values()]
        mean, sd = mean_sd(accs) if len(accs) > 1 else (accs[0], 0.0)
        low, high = question_interval(list(per_q.values()))
        row = {"arm": name, "examples": entry.get("examples"), "steps": entry.get("steps"),
               "seeds": len(accs), "accuracy": mean, "sd": sd, "low": low, "high": high,
               "per_seed": accs, "questions": len(per_q)}
        if ref is not None and name != reference:
            shared = sorted(set(per_q) & set(ref))
            b = paired_bootstrap([per_q[i] for i in shared], [ref[i] for i in shared])
            row.update(diff=b.difference, diff_low=b.low, diff_high=b.high, p=b.p_value)
        rows.append(row)
    return rows


def write(rows: list[dict], reference: str, out: Path, title: str) -> str:
    lines = [f"| arm | examples | steps | seeds | accuracy (mean ± sd over seeds) | 95% interval | "
             f"vs {reference} (paired, seeds averaged) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        vs = (f"{100 * r['diff']:+.1f} [{100 * r['diff_low']:+.1f}, {100 * r['diff_high']:+.1f}], "
              f"p = {r['p']:.3g}") if "diff" in r else "—"
        lines.append(f"| {r['arm']} | {r['examples'] or '—'} | {r['steps'] or '—'} | {r['seeds']} | "
                     f"{100 * r['accuracy']:.1f} ± {100 * r['sd']:.1f} | "
                     f"[{100 * r['low']:.1f}, {100 * r['high']:.1f}] | {vs} |")
    table = "\n".join(lines)
    (out / "table.md").write_text(f"# {title}\n\n{table}\n")
    (out / "table.json").write_text(json.dumps(rows, indent=1))
    _plot(rows, out / "figure.png", title)
    return table


def _plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 * len(rows) + 2, 3.2))
    xs = range(len(rows))
    acc = [100 * r["accuracy"] for r in rows]
    err = [[100 * (r["accuracy"] - r["low"]) for r in rows], [100 * (r["high"] - r["accuracy"]) for r in rows]]
    ax.bar(xs, acc, yerr=err, capsize=4, color="#6a8fc7")
    for x, r in zip(xs, rows):
        ax.scatter([x] * len(r["per_seed"]), [100 * a for a in r["per_seed"]], color="k", s=8, zorder=3)
    ax.set_xticks(list(xs), [f"{r['arm']}\n({r['examples'] or 'base'})" for r in rows], fontsize=8)
    ax.set_ylabel("accuracy on tiny (%)")
    ax.set_title(title + "\nbars: 95% interval of the seed-averaged questions; dots: seeds", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# analyses of traces: no training


def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]


def _result(line: str) -> str | None:
    """The value a step line ends on ("5*9=45=1" -> "1", "digits reversed: 101" -> "101")."""
    import re
    found = re.search(r"(\d+)\s*$", line)
    return found.group(1) if found else None


def answer_before_end(thinking: str, answer: str) -> dict:
    """Where a trace states its final answer. `rechecked`: the answer reached, then thinking goes
    on to check it (the last line is a "Wait, " re-check that ends on the answer, as a line before
    it did); `value`: the answer's value ends some line before the last one (also as an
    intermediate value that happens to equal it: a running count, a cycle of powers)."""
    raw = _lines(thinking)
    lines = [ln[len("Wait, "):] if ln.startswith("Wait, ") else ln for ln in raw]
    if not lines:
        return {"rechecked": False, "value": False}
    value = any(_result(ln) == answer for ln in lines[:-1])
    rechecked = raw[-1].startswith("Wait, ") and _result(lines[-1]) == answer and \
        len(lines) > 1 and _result(lines[-2]) == answer
    return {"rechecked": rechecked, "value": value}


def q3(size: int, seed: int, runs: list[Path]) -> list[dict]:
    """The review's Q3 in miniature: the share of teacher traces (a generated pool) and of the
    model's own thinking (evaluation runs) that state the final answer before they end."""
    from s1.miniature.world import benchmark_rows, benchmark_questions, generate

    rows = []
    pool = generate(size, seed, exclude=benchmark_questions())
    by = {}
    for r in pool:
        by.setdefault(r["domain"], []).append(answer_before_end(r["trace"], r["answer"]))
    for name, found in [("teacher, all", [x for v in by.values() for x in v])] + \
            [(f"teacher, {d}", v) for d, v in sorted(by.items())]:
        rows.append({"traces": name, "n": len(found),
                     "rechecked": sum(f["rechecked"] for f in found) / len(found),
                     "value": sum(f["value"] for f in found) / len(found)})
    gold = {f"tiny-{i:04d}": r for i, r in enumerate(benchmark_rows())}
    for run in runs:
        found = []
        for rec in _records(run):
            g = gold.get(rec["id"])
            if g is None:
                continue
            thinking = (rec.get("trace") or {}).get("thinking", "")
            found.append(answer_before_end(thinking, rec.get("extracted") or ""))
        if found:
            rows.append({"traces": f"model, {run.name}", "n": len(found),
                         "rechecked": sum(f["rechecked"] for f in found) / len(found),
                         "value": sum(f["value"] for f in found) / len(found)})
    return rows


def _records(run: Path) -> list[dict]:
    with open(run / "records.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


def confound(run: Path, out: Path) -> dict:
    """The trace-length confound in miniature, on one natural-stop run of the `tiny` benchmark:
    across questions, longer thinking goes with LOWER accuracy (harder questions need more
    steps), although on each question more budget raises it (the caps experiment); and the
    model's thinking length per difficulty against its teacher's trace length."""
    import numpy as np

    from s1.evaluation.intervals import wilson_interval
    from s1.miniature.world import benchmark_rows

    gold = {f"tiny-{i:04d}": r for i, r in enumerate(benchmark_rows())}
    recs = [r for r in _records(run) if r["id"] in gold]
    length = np.array([r["thinking_tokens"] for r in recs], dtype=float)
    correct = np.array([bool(r.get("correct")) for r in recs], dtype=float)
    quart = np.quantile(length, [0.25, 0.5, 0.75])
    bins = []
    for lo, hi, label in ((-1, quart[0], "shortest quarter"), (quart[0], quart[1], "second"),
                          (quart[1], quart[2], "third"), (quart[2], np.inf, "longest quarter")):
        m = (length > lo) & (length <= hi)
        k, n = int(correct[m].sum()), int(m.sum())
        lo95, hi95 = wilson_interval(k, n) if n else (0.0, 0.0)
        bins.append({"bin": label, "thinking_max": float(min(hi, length.max())), "n": n,
                     "accuracy": k / n if n else 0.0, "low": lo95, "high": hi95})
    by_d = []
    for d in sorted({gold[r["id"]]["difficulty"] for r in recs}):
        sel = [r for r in recs if gold[r["id"]]["difficulty"] == d]
        teacher = [len(gold[r["id"]]["solution"]) + 1 for r in sel]   # + the line break s1 adds
        by_d.append({"difficulty": d, "n": len(sel),
                     "model_thinking": float(np.mean([r["thinking_tokens"] for r in sel])),
                     "teacher_trace": float(np.mean(teacher)),
                     "accuracy": float(np.mean([bool(r.get("correct")) for r in sel]))})
    r = float(np.corrcoef(length, correct)[0, 1]) if correct.std() and length.std() else 0.0
    result = {"run": str(run), "questions": len(recs), "corr_length_correct": r,
              "by_length": bins, "by_difficulty": by_d}
    out.mkdir(parents=True, exist_ok=True)
    (out / "confound.json").write_text(json.dumps(result, indent=1))
    _plot_confound(result, out / "confound.png")
    return result


def _plot_confound(res: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    bins = res["by_length"]
    a.bar(range(len(bins)), [100 * x["accuracy"] for x in bins],
          yerr=[[100 * (x["accuracy"] - x["low"]) for x in bins], [100 * (x["high"] - x["accuracy"]) for x in bins]],
          capsize=4, color="#c77f6a")
    a.set_xticks(range(len(bins)), [f"{x['bin']}\n(≤{x['thinking_max']:.0f} ch)" for x in bins], fontsize=7)
    a.set_ylabel("accuracy (%)")
    a.set_title("across questions: accuracy by own thinking length", fontsize=9)
    d = res["by_difficulty"]
    b.plot([x["difficulty"] for x in d], [x["model_thinking"] for x in d], "o-", label="model's thinking")
    b.plot([x["difficulty"] for x in d], [x["teacher_trace"] for x in d], "s--", label="teacher's trace (no slip)")
    b.set_xlabel("difficulty (steps)")
    b.set_ylabel("characters")
    b.legend(fontsize=8)
    b.set_title("thinking length: test time vs training traces", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m s1.miniature.experiments",
                                description="The paper's experiments in miniature (docs/miniature.md).")
    sub = p.add_subparsers(dest="experiment", required=True)
    for name in sorted(EXPERIMENTS):
        t = sub.add_parser(name, help=f"train and evaluate the {name} arms")
        t.add_argument("--base", default="s1-tiny", help="the model fine-tuned, and the difficulty step's solver")
        t.add_argument("--out", required=True)
        t.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
        t.add_argument("--arms", default=None, help="only these arms (comma-separated names)")
        t.add_argument("--pool-size", type=int, default=5000)
        t.add_argument("--limit", type=int, default=None, help="benchmark questions (default: all 600)")
        t.add_argument("--threads", type=int, default=1, help="CPU threads of each training and evaluation")
        t.add_argument("--jobs", type=int, default=1, help="trainings run at once (each with --threads)")
        t.add_argument("--report-only", action="store_true",
                       help="only the table and figure of what is evaluated so far (nothing runs)")
    q = sub.add_parser("q3", help="share of traces that state the final answer before they end")
    q.add_argument("--runs", nargs="*", default=[], help="evaluation run folders of the model")
    q.add_argument("--size", type=int, default=3000, help="teacher traces generated")
    q.add_argument("--seed", type=int, default=11)
    c = sub.add_parser("confound", help="thinking length across questions vs within them")
    c.add_argument("--run", required=True, help="a natural-stop evaluation run on the tiny benchmark")
    c.add_argument("--out", required=True)
    a = p.parse_args(argv)
    try:
        if a.experiment == "q3":
            runs = [Path(r) for r in a.runs]
            for r in runs:
                if not (r / "records.jsonl").exists():
                    raise UserError(f"no run at {r} (records.jsonl)")
            print("| traces | n | re-checked after the answer | answer's value before the last line |")
            print("|---|---|---|---|")
            for row in q3(a.size, a.seed, runs):
                print(f"| {row['traces']} | {row['n']} | {100 * row['rechecked']:.1f}% | {100 * row['value']:.1f}% |")
            return 0
        if a.experiment == "confound":
            if not (Path(a.run) / "records.jsonl").exists():
                raise UserError(f"no run at {a.run} (records.jsonl)")
            res = confound(Path(a.run), Path(a.out))
            print(f"correlation of thinking length and correctness across questions: "
                  f"{res['corr_length_correct']:+.2f}")
            for b in res["by_length"]:
                print(f"  {b['bin']:<17} (≤{b['thinking_max']:.0f} ch, n={b['n']}): "
                      f"{100 * b['accuracy']:.1f}% [{100 * b['low']:.1f}, {100 * b['high']:.1f}]")
            for d in res["by_difficulty"]:
                print(f"  difficulty {d['difficulty']}: model {d['model_thinking']:.1f} ch, "
                      f"teacher {d['teacher_trace']:.1f} ch, accuracy {100 * d['accuracy']:.1f}%")
            return 0
        arms, reference = EXPERIMENTS[a.experiment]
        if a.arms:
            wanted = a.arms.split(",")
            unknown = set(wanted) - {arm.name for arm in arms}
            if unknown:
                raise UserError(f"unknown arm(s) {', '.join(sorted(unknown))} of {a.experiment}")
            arms = tuple(arm for arm in arms if arm.name in wanted)
        from s1.generation.models import resolve_model
        base = Path(resolve_model(a.base).path)   # a model directory, or a shipped name (s1-tiny)
        if not (base / "config.json").exists():
            raise UserError(f"no model at {base}: give a model directory or s1-tiny")
        seeds = tuple(int(s) for s in a.seeds.split(","))
        exp = Experiment(arms, reference, base.resolve(), Path(a.out).resolve(), seeds,
                         a.pool_size, a.limit, a.threads)
        results = exp.collected() if a.report_only else exp.run(a.jobs)
        table = write(summarize(results, reference), reference, exp.out, f"{a.experiment} in miniature")
    except (UserError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
