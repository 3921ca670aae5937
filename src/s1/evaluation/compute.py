"""Matched compute in one command (`s1 compare-compute`, the review's Conjecture 1): budget
forcing at thinking budgets B against majority@k and oracle best-of-k at B/k thinking tokens per
sample, compared at equal measured FLOPs on the same questions.

One sampled run per cap c = B/k and seed draws max k samples per question at c; majority@k and
the oracle's best-of-k are read from its first k samples (the oracle is right when any of them
is), so both parallel methods see the same samples, and a cap shared by several (B, k) cells is
drawn once per seed. Budget forcing runs greedy at each B (one seed: greedy repeats are
identical). All runs are ordinary `s1 eval` runs in `--out` (resumable, `s1 report` draws them);
the comparison is computed from their records.

Matching the thinking cap is not matching compute: the parallel side pays k prompts and k
answers (at B = 64, k = 4 on a 300-token prompt, 3.2× the FLOPs of budget forcing at B). So each
parallel point is compared with budget forcing at the FLOPs it measured: budget forcing's
accuracy-against-FLOPs curve is interpolated there, per question, linearly in log FLOPs between
the two budgets around it (never extrapolated: a point outside budget forcing's range is shown,
not compared). Differences come with a paired bootstrap 95% interval and an exact paired test
over the questions (seeds averaged per question), and as mean ± sd over the seeds.

With a reward model (`--scorer`, `s1.evaluation.rewards`) the parallel runs are best-of-N runs
by it, and its best-of-k is a third parallel method: read from the same samples, and compared
with budget forcing at the compute it measured plus what the reward model spent reading those k
samples (its FLOPs, or its tokens where compute is counted in tokens). Majority and the oracle
need no reward model, so their compute stays the generator's.

FLOPs come from the model's real shape: the engine's (`describe()`), or a Hugging Face
config.json (`--model-config`, for a remote server that cannot tell), prompts of every sample
included, attention counted as QK plus AV (`metrics.estimate_flops`); without a shape, compute
is counted in tokens (prompt + generated).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from s1.errors import UserError
from s1.evaluation.intervals import mean_sd, paired_bootstrap
from s1.evaluation.metrics import estimate_flops

COMPUTE_JSON, COMPUTE_MD = "compute.json", "compute.md"


@dataclass(frozen=True)
class ComputePlan:
    """budgets: total thinking tokens per question B; ks: ways to split them (B/k each, floor);
    temperature / top_p: how the parallel samples are drawn (budget forcing stays greedy, as the
    paper); num_ignore: budget forcing's ignores of the end of thinking at each B; seeds: runs of
    each parallel setting (mean ± sd over them); scorer: a reward model whose best-of-k joins the
    comparison (its steps split at `step_delimiter`, their scores aggregated by `aggregate`)."""

    budgets: tuple[int, ...]
    ks: tuple[int, ...] = (1, 2, 4)
    temperature: float = 1.0
    num_ignore: int = 0
    seeds: int = 5
    scorer: str | None = None
    aggregate: str = "min"
    step_delimiter: str = "\n\n"

    def __post_init__(self) -> None:
        budgets, ks = tuple(self.budgets), tuple(self.ks)
        if not budgets or any(isinstance(b, bool) or not isinstance(b, int) or b < 1
                              for b in budgets):
            raise UserError(f"--budgets must be positive token counts, not {list(budgets)}")
        if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
            raise UserError(f"--ks must be positive sample counts, not {list(ks)}")
        if len(set(budgets)) != len(budgets) or len(set(ks)) != len(ks):
            raise UserError("--budgets and --ks must not repeat a value")
        for b in budgets:
            for k in ks:
                if b // k < 1:
                    raise UserError(f"a budget of {b} tokens cannot be split {k} ways "
                                    "(each sample needs at least 1 thinking token)")
        if self.temperature <= 0:
            raise UserError("the parallel samples need a temperature above 0 (k greedy samples "
                            "are one sample repeated)")
        if self.num_ignore < 0:
            raise UserError("--num-ignore cannot be negative")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise UserError(f"--seeds must be a positive number of runs, not {self.seeds}")
        object.__setattr__(self, "budgets", tuple(sorted(budgets)))
        object.__setattr__(self, "ks", tuple(sorted(ks)))
        if self.scorer is not None:
            from s1.evaluation.rewards import is_reward_spec

            if not is_reward_spec(self.scorer):
                raise UserError(f"--scorer {self.scorer!r} is not a reward model (majority and the "
                                "oracle are always compared): give programmatic, prm:MODEL, "
                                "orm:MODEL, served:URL or module:function(question, steps)")

    def caps(self) -> dict[int, int]:
        """Thinking cap per sample -> the most samples any cell needs at that cap."""
        out: dict[int, int] = {}
        for b in self.budgets:
            for k in self.ks:
                out[b // k] = max(out.get(b // k, 0), k)
        return dict(sorted(out.items()))

    def methods(self) -> tuple[list, list]:
        """(budget forcing's methods, the parallel ones): run with one seed and `seeds`."""
        from s1.evaluation.methods import BestOfN, BudgetForcing, MajorityVoting

        def parallel(k: int, cap: int):
            if self.scorer is None:
                return MajorityVoting(k, temperature=self.temperature, max_thinking=cap)
            return BestOfN(k, self.scorer, temperature=self.temperature, max_thinking=cap,
                           aggregate=self.aggregate, step_delimiter=self.step_delimiter)

        return [BudgetForcing(list(self.budgets), [self.num_ignore])], [
            parallel(k, c) for c, k in self.caps().items()]


# ---------------------------------------------------------------------------------------------
# the model's shape for FLOPs


def shape_from_config(path: str | Path) -> dict:
    """n_params, n_layers, d_model from a Hugging Face config.json (or a directory holding one),
    for a decoder of the Llama / Qwen / Mistral family (gated MLP, grouped-query attention)."""
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read the model config {p} ({e})") from None
    cfg = cfg.get("text_config", cfg)   # multimodal configs nest the language model's
    try:
        d, layers = int(cfg["hidden_size"]), int(cfg["num_hidden_layers"])
        vocab, inter = int(cfg["vocab_size"]), int(cfg["intermediate_size"])
        heads = int(cfg["num_attention_heads"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{p} lacks {e} (hidden_size, num_hidden_layers, vocab_size, "
                        "intermediate_size, num_attention_heads are needed)") from None
    kv = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or d // heads)
    attention = d * heads * head_dim * 2 + d * kv * head_dim * 2      # q, o; k, v
    if cfg.get("attention_bias") or cfg.get("model_type", "").startswith("qwen2"):
        attention += heads * head_dim + 2 * kv * head_dim              # q, k, v biases
    mlp = 3 * d * inter                                                # gate, up, down
    embed = vocab * d * (1 if cfg.get("tie_word_embeddings") else 2)
    n_params = embed + layers * (attention + mlp + 2 * d) + d          # + the norms
    return {"n_params": float(n_params), "n_layers": layers, "d_model": d}


def _cost(rec, shape: dict | None) -> float:
    """What one sample cost: its FLOPs from the model's shape (plus a search's reward-model
    FLOPs), else the FLOPs it recorded, else its tokens (prompt + generated + reward model's)."""
    c = rec.compute
    if shape and shape.get("n_params"):
        return estimate_flops(shape["n_params"], c.prompt_tokens, c.generated_tokens,
                              shape.get("n_layers"), shape.get("d_model")) + (c.reward_flops or 0.0)
    if c.flops:
        return c.flops
    return float(c.prompt_tokens + c.generated_tokens + (c.reward_tokens or 0))


def _reward_cost(rec, unit: str) -> float:
    """What the reward model spent reading one sample, in the comparison's unit (0 without one)."""
    reward = rec.reward or {}
    return float(reward.get("flops" if unit == "FLOPs" else "tokens") or 0.0)


def _vote(samples: Sequence, answer_type: str) -> bool:
    """Majority over equivalent answers, as a majority run's prediction."""
    from s1.evaluation.methods import Setting
    from s1.generation.budget import Budget

    return Setting("majority", "vote", Budget()).predict(samples, answer_type)["correct"]


def _unit(shape: dict | None, runs: Sequence) -> str:
    known = (shape and shape.get("n_params")) or all(
        r.compute.flops for run in runs for r in run.records)
    return "FLOPs" if known else "tokens"


# ---------------------------------------------------------------------------------------------
# budget forcing at a given compute


@dataclass(frozen=True)
class CurvePoint:
    budget: int
    cost: float                       # mean per question
    scores: dict[str, float]          # question -> 0/1


def interpolate(curve: Sequence[CurvePoint], cost: float
                ) -> tuple[dict[str, float], float] | None:
    """Per-question scores of a curve at `cost`, linear in log cost between the two points
    around it, and the budget there (interpolated alike); None outside the curve's measured
    range (no extrapolation). The points must share their questions."""
    pts = sorted(curve, key=lambda p: (p.cost, p.budget))
    if not pts or not pts[0].cost <= cost <= pts[-1].cost:
        return None
    for lo, hi in zip(pts, pts[1:] or pts):
        if lo.cost <= cost <= hi.cost:
            break
    span = math.log(hi.cost) - math.log(lo.cost)
    w = 0.0 if span <= 0 else (math.log(cost) - math.log(lo.cost)) / span
    scores = {q: (1 - w) * lo.scores[q] + w * hi.scores[q] for q in lo.scores}
    return scores, math.exp((1 - w) * math.log(lo.budget) + w * math.log(hi.budget))


# ---------------------------------------------------------------------------------------------
# the comparison


@dataclass
class Cell:
    """One parallel point (k samples at cap B/k, over the seeds) against budget forcing at the
    compute it measured."""

    budget: int
    k: int
    cap: int
    seeds: int
    questions: int
    cost: tuple[float, float]          # parallel compute per question: mean, sd over seeds
    thinking: float                    # parallel thinking tokens per question (seeds' mean)
    accuracy: dict[str, tuple[float, float]]   # "majority" / "oracle best-of-k" (/ REWARD): mean, sd
    bf_accuracy: float | None = None   # budget forcing at `cost`; None: outside its range
    bf_budget: float | None = None     # the budget there (interpolated)
    differences: dict[str, dict] = field(default_factory=dict)   # "majority" / "oracle" / "reward"
    # With a reward model: what it spent reading the k samples per question (mean, sd over seeds),
    # and budget forcing at the generator's compute plus that.
    reward_cost: tuple[float, float] | None = None
    bf_reward_accuracy: float | None = None
    bf_reward_budget: float | None = None

    def to_dict(self) -> dict:
        d = {"budget": self.budget, "k": self.k, "cap": self.cap, "seeds": self.seeds,
             "questions": self.questions,
             "cost_per_question": {"mean": self.cost[0], "sd": _json_sd(self.cost[1])},
             "thinking_per_question": self.thinking,
             "accuracy": {"budget forcing": self.bf_accuracy,
                          **{m: {"mean": mean, "sd": _json_sd(sd)}
                             for m, (mean, sd) in self.accuracy.items()}},
             "budget_forcing_budget": self.bf_budget, "differences": self.differences}
        if self.reward_cost is not None:
            d["reward_cost_per_question"] = {"mean": self.reward_cost[0],
                                             "sd": _json_sd(self.reward_cost[1])}
            d["budget_forcing_at_reward_cost"] = {"accuracy": self.bf_reward_accuracy,
                                                  "budget": self.bf_reward_budget}
        return d


def _json_sd(sd: float) -> float | None:
    return None if sd != sd else sd    # JSON has no NaN: one seed has no sd


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def compare(runs: Sequence, plan: ComputePlan, shape: dict | None = None,
            resamples: int = 10_000, seed: int = 0) -> tuple[list[Cell], list[CurvePoint], str]:
    """The cells of the comparison from the plan's runs (complete ones, any order), budget
    forcing's curve and the unit of compute ("FLOPs" or "tokens")."""
    shape = shape or next((r.manifest.get("model_shape") for r in runs), None)
    bf = {r.setting.params["max_thinking"]: r for r in runs
          if r.setting.method == "budget" and r.seed == 0}
    par: dict[tuple[int, int], object] = {}   # (cap, seed) -> the run with the most samples
    for r in runs:
        key = (r.setting.params.get("max_thinking"), r.seed)
        if r.setting.method in ("majority", "best-of-n") and (
                key not in par or par[key].setting.samples < r.setting.samples):
            par[key] = r
    scorers = {r.setting.scorer for r in par.values() if r.setting.method == "best-of-n"}
    if len(scorers) > 1 or (scorers and any(r.setting.method == "majority"
                                            for r in par.values())):
        raise UserError("the parallel runs were read by different scorers; give each "
                        "compare-compute its own --out")
    reward = f"best-of-k ({scorers.pop()})" if scorers else None
    for b in plan.budgets:
        if b not in bf:
            raise UserError(f"no budget-forcing run at {b} tokens")
    ids = set.intersection(*(set(bf[b].outcomes_at(None)) for b in plan.budgets))
    samples: dict[tuple[int, int], dict[str, list]] = {}   # (cap, seed) -> id -> samples
    for key, run in par.items():
        by_q: dict[str, list] = {}
        for r in sorted(run.records, key=lambda r: r.sample):
            by_q.setdefault(r.id, []).append(r)
        samples[key] = by_q
    for b in plan.budgets:
        for k in plan.ks:
            cap = b // k
            for s in range(plan.seeds):
                if (cap, s) not in par or par[cap, s].setting.samples < k:
                    raise UserError(f"no run of seed {s} with {k} samples at {cap} thinking "
                                    "tokens")
                ids &= {q for q, v in samples[cap, s].items() if len(v) >= k}
    if not ids:
        raise UserError("budget forcing and the parallel runs share no finished question")
    ids_sorted = sorted(ids)
    unit = _unit(shape, [*bf.values(), *par.values()])
    curve = []
    for b in plan.budgets:
        recs = {r.id: r for r in bf[b].records}
        out = bf[b].outcomes_at(None)
        curve.append(CurvePoint(b, _mean([_cost(recs[q], shape) for q in ids_sorted]),
                                {q: float(out[q]["correct"]) for q in ids_sorted}))
    cells = []
    for b in plan.budgets:
        for k in plan.ks:
            cap = b // k
            costs, reading, thinking = [], [], []
            per_seed: dict[str, list] = {"majority": [], "oracle best-of-k": [],
                                         **({reward: []} if reward else {})}
            for s in range(plan.seeds):
                predicted = par[cap, s].outcomes_at(k)
                used = {q: samples[cap, s][q][:k] for q in ids_sorted}
                costs.append(_mean([sum(_cost(r, shape) for r in used[q]) for q in ids_sorted]))
                reading.append(_mean([sum(_reward_cost(r, unit) for r in used[q])
                                      for q in ids_sorted]))
                thinking.append(_mean([sum(r.thinking_tokens for r in used[q])
                                       for q in ids_sorted]))
                per_seed["majority"].append(
                    {q: float(predicted[q]["correct"] if reward is None
                              else _vote(used[q], used[q][0].answer_type or "math"))
                     for q in ids_sorted})
                per_seed["oracle best-of-k"].append(
                    {q: float(any(r.correct for r in used[q])) for q in ids_sorted})
                if reward:
                    per_seed[reward].append({q: float(predicted[q]["correct"])
                                             for q in ids_sorted})
            cost = mean_sd(costs)
            cell = Cell(b, k, cap, plan.seeds, len(ids_sorted), cost, _mean(thinking),
                        {m: mean_sd([_mean(list(v.values())) for v in seeds])
                         for m, seeds in per_seed.items()})
            matched = interpolate(curve, cost[0])
            if matched is not None:
                bf_scores, cell.bf_budget = matched
                cell.bf_accuracy = _mean(list(bf_scores.values()))
                for name, method in (("majority", "majority"), ("oracle", "oracle best-of-k")):
                    cell.differences[name] = _difference(bf_scores, per_seed[method], ids_sorted,
                                                         resamples, seed)
            if reward:
                cell.reward_cost = mean_sd(reading)
                matched = interpolate(curve, cost[0] + cell.reward_cost[0])
                if matched is not None:
                    bf_scores, cell.bf_reward_budget = matched
                    cell.bf_reward_accuracy = _mean(list(bf_scores.values()))
                    cell.differences["reward"] = _difference(bf_scores, per_seed[reward],
                                                             ids_sorted, resamples, seed)
            cells.append(cell)
    return cells, curve, unit


def _difference(bf_scores: dict[str, float], per_seed: list[dict[str, float]],
                ids: list[str], resamples: int, seed: int) -> dict:
    """Budget forcing minus a parallel method: paired over the questions (seeds averaged per
    question), and as mean ± sd over the seeds."""
    pooled = {q: _mean([v[q] for v in per_seed]) for q in ids}
    res = paired_bootstrap(bf_scores, pooled, n_resamples=resamples, seed=seed)
    bf = _mean(list(bf_scores.values()))
    over_seeds = mean_sd([bf - _mean(list(v.values())) for v in per_seed])
    return {"difference": res.difference, "low": res.low, "high": res.high,
            "p_value": res.p_value, "test": res.test, "bf_better": res.a_better,
            "parallel_better": res.b_better, "seeds_mean": over_seeds[0],
            "seeds_sd": _json_sd(over_seeds[1])}


def table(cells: Sequence[Cell], unit: str = "FLOPs") -> tuple[list[str], list[list[str]]]:
    """The comparison as a table (header, rows): percentages, compute per question."""
    def pm(pair: tuple[float, float], scale: float = 100, fmt: str = "{:.1f}") -> str:
        mean, sd = pair
        return fmt.format(scale * mean) + ("" if sd != sd else " ± " + fmt.format(scale * sd))

    def diff(c: Cell, name: str) -> str:
        d = c.differences.get(name)
        if d is None:
            return "outside BF's range"
        sd = d["seeds_sd"]
        return (f"{100 * d['difference']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}] "
                f"p={d['p_value']:.3f} ({d['bf_better']}:{d['parallel_better']})"
                + ("" if sd is None else f"; seeds {100 * d['seeds_mean']:+.1f} ± {100 * sd:.1f}"))

    header = ["B", "k", "B/k", "questions", "seeds", f"{unit}/q parallel",
              "BF at equal compute %", "BF budget there", "majority@k %", "oracle best-of-k %",
              "BF − maj [95% CI]", "BF − best [95% CI]", "thinking/q parallel"]
    reward = next((m for m in cells[0].accuracy if m.startswith("best-of-k (")), None) \
        if cells else None
    if reward:
        header += [f"{unit}/q reward model", f"{reward} %", "BF there %", "BF − reward [95% CI]"]
    rows = []
    for c in cells:
        rows.append([str(c.budget), str(c.k), str(c.cap), str(c.questions), str(c.seeds),
                     pm(c.cost, 1, "{:.3g}"),
                     "–" if c.bf_accuracy is None else f"{100 * c.bf_accuracy:.1f}",
                     "–" if c.bf_budget is None else f"{c.bf_budget:.0f}",
                     pm(c.accuracy["majority"]), pm(c.accuracy["oracle best-of-k"]),
                     diff(c, "majority"), diff(c, "oracle"), f"{c.thinking:.0f}"])
        if reward:
            rows[-1] += [pm(c.reward_cost, 1, "{:.3g}"), pm(c.accuracy[reward]),
                         "–" if c.bf_reward_accuracy is None
                         else f"{100 * c.bf_reward_accuracy:.1f}", diff(c, "reward")]
    return header, rows


def plot(path: Path, title: str, cells: Sequence[Cell], curve: Sequence[CurvePoint],
         unit: str) -> None:
    """Accuracy against measured compute per question: budget forcing over B, majority@k and
    oracle best-of-k (mean ± sd over seeds) over B/k for each k."""
    from s1.pages import figure, save

    fig, ax = figure()
    pts = sorted(curve, key=lambda p: p.cost)
    ax.plot([p.cost for p in pts], [100 * _mean(list(p.scores.values())) for p in pts], "o-",
            color="black", label="budget forcing at B")
    for i, k in enumerate(sorted({c.k for c in cells})):
        row = sorted((c for c in cells if c.k == k), key=lambda c: c.cost[0])
        for method in row[0].accuracy:
            style = {"majority": "s--", "oracle best-of-k": "^:"}.get(method, "D-.")
            label = {"majority": f"majority@{k}", "oracle best-of-k": f"best-of-{k} (oracle)"}.get(
                method, method.replace("best-of-k", f"best-of-{k}"))
            at = [c.cost[0] + (c.reward_cost[0] if method not in ("majority", "oracle best-of-k")
                               else 0.0) for c in row]   # a reward model's reading is paid too
            sds = [c.accuracy[method][1] for c in row]
            ax.errorbar(at, [100 * c.accuracy[method][0] for c in row],
                        yerr=None if any(sd != sd for sd in sds) else [100 * sd for sd in sds],
                        fmt=style, color=f"C{i}", capsize=2, alpha=0.85, label=label)
    ax.set_xscale("log")
    tops = [100 * (mean + (0 if sd != sd else sd)) for c in cells
            for mean, sd in c.accuracy.values()]   # the bars' ends, not only the points
    ax.set_ylim(-1, max(10.0, min(101.0, 5 + max(
        tops + [100 * _mean(list(p.scores.values())) for p in pts]))))
    save(fig, ax, path, title, f"measured {unit} per question (log)", "accuracy (%)",
         legend_size=7)


def write(out: Path, bench: str, cells: Sequence[Cell], curve: Sequence[CurvePoint],
          unit: str, shape: dict | None) -> list[Path]:
    """compute.json, compute.md and compute-matched-BENCH.png in `out`, each written whole."""
    from s1.pages import render_markdown
    from s1.evaluation.runs import write_json_atomic

    png = out / f"compute-matched-{bench}.png"
    tmp_png = png.with_name(f".{png.name}.tmp.png")
    plot(tmp_png, f"{bench}: budget forcing vs parallel at equal {unit}", cells, curve, unit)
    os.replace(tmp_png, png)
    write_json_atomic(out / COMPUTE_JSON, {
        "benchmark": bench, "model_shape": shape, "unit": unit,
        "budget_forcing": [{"budget": p.budget, "cost_per_question": p.cost,
                            "accuracy": _mean(list(p.scores.values()))} for p in curve],
        "cells": [c.to_dict() for c in cells]})
    header, rows = table(cells, unit)
    md = render_markdown([
        ("h1", f"Matched compute on {bench}"),
        ("p", f"Majority@k and oracle best-of-k at B/k thinking tokens per sample against "
              f"budget forcing (greedy) at the same measured {unit} per question: budget "
              f"forcing's accuracy is interpolated between the two budgets around the parallel "
              f"point's {unit} (linear in log {unit}, per question; never extrapolated: "
              f"\"outside BF's range\" is a point to compare with more or fewer budgets). The "
              f"parallel side pays k prompts and k answers. {unit} count every sample's prompt "
              "and tokens" + (", attention as QK plus AV" if unit == "FLOPs" else "") + ". "
              "Parallel accuracies are mean ± sd over the seeds. Differences are budget forcing "
              "minus the parallel method in points over the questions (seeds averaged per "
              "question), with a paired bootstrap 95% interval; p is an exact paired test "
              "(McNemar's for 0/1 scores, else a sign-flip permutation test), (x:y) the "
              "questions where budget forcing / the parallel method scored higher; then the "
              "difference as mean ± sd over the seeds. A reward model's best-of-k (where one was "
              "given) is compared with budget forcing at the generator's compute plus what the "
              "reward model spent reading the k samples."),
        ("table", header, rows), ("img", png.name, "accuracy against compute")])
    tmp_md = out / f".{COMPUTE_MD}.tmp"
    tmp_md.write_text(md, encoding="utf-8")
    os.replace(tmp_md, out / COMPUTE_MD)
    return [out / COMPUTE_JSON, out / COMPUTE_MD, png]


def matched_compute(plan: ComputePlan, engine_options, benchmark, out: str | Path,
                    max_answer: int | str = "auto", model_config: str | None = None,
                    resamples: int = 10_000, quiet: bool = False) -> dict:
    """Generate what the plan needs (resuming whatever `out` already holds), then compare.

    `benchmark` is a BenchmarkOptions; `engine_options` an EngineOptions. Returns
    {"cells", "files", "shape", "runs"}.
    """
    from s1.evaluation.aggregate import load_run, write_summaries
    from s1.evaluation.benchmarks import load_benchmark
    from s1.evaluation.config import BudgetOptions
    from s1.evaluation.methods import expand
    from s1.evaluation.runs import execute, make_runs

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    if resamples < 1:
        raise UserError("--resamples must be at least 1")
    budget = BudgetOptions(max_answer=max_answer)
    shape = shape_from_config(model_config) if model_config else None
    for methods in plan.methods():             # every setting checked before a model loads
        expand(methods, budget.base())
    b = benchmark
    bench = load_benchmark(b.name, limit=b.limit, subset=b.subset, path=b.file,
                           question_field=b.question_field, answer_field=b.answer_field,
                           answer_type=b.answer_type)
    engine = engine_options.load()
    try:
        if shape is None and engine_options.model and Path(engine_options.model, "config.json").is_file():
            shape = shape_from_config(engine_options.model)   # a local HF model tells its shape
        base = budget.base(engine.describe().get("context_length"))
        sequential, parallel = plan.methods()
        runs = [run for methods, seeds in ((sequential, [0]), (parallel, range(plan.seeds)))
                for run in make_runs(out, engine, engine_options.label, bench,
                                     expand(methods, base), seeds, protocol=b.protocol,
                                     n_params=shape["n_params"] if shape else None,
                                     benchmark_args={"limit": b.limit, "subset": b.subset})]
        execute(runs, engine, progress=not quiet)
    finally:
        engine.close()
    write_summaries(out, [r.dir for r in runs])
    loaded = [load_run(r.dir) for r in runs]
    cells, curve, unit = compare(loaded, plan, shape, resamples=resamples)
    shape = shape or next((r.manifest.get("model_shape") for r in loaded), None)
    files = write(out, bench.name, cells, curve, unit, shape)
    return {"cells": cells, "curve": curve, "unit": unit, "files": files, "shape": shape,
            "runs": [r.name for r in loaded]}
