"""Matched compute in one command (`s1 compare-compute`, the review's Conjecture 1): for each
thinking budget B and k = 1, 2, 4, ..., budget forcing at B against majority@k and oracle
best-of-k at B/k, on the same questions, with paired bootstrap differences.

One sampled run per cap c = B/k draws max k samples per question at c; majority@k and the
oracle's best-of-k are read from its first k samples (the oracle is right when any of them is),
so both parallel methods see the same samples, and a cap shared by several (B, k) cells is drawn
once. Budget forcing runs greedy at each B. All runs are ordinary `s1 eval` runs in `--out`
(resumable, `s1 report` draws them); the comparison is computed from their records.

FLOPs come from the model's real shape: the engine's (`describe()`), or a Hugging Face
config.json (`--model-config`, for a remote server that cannot tell), so the x axis is what each
method paid, prompts of every sample included.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from s1.errors import UserError
from s1.evaluation.intervals import paired_bootstrap
from s1.evaluation.metrics import estimate_flops

COMPUTE_JSON, COMPUTE_MD = "compute.json", "compute.md"


@dataclass(frozen=True)
class ComputePlan:
    """budgets: total thinking tokens per question B; ks: ways to split them (B/k each, floor);
    temperature / top_p: how the parallel samples are drawn (budget forcing stays greedy, as the
    paper); num_ignore: budget forcing's ignores of the end of thinking at each B."""

    budgets: tuple[int, ...]
    ks: tuple[int, ...] = (1, 2, 4)
    temperature: float = 1.0
    num_ignore: int = 0

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
        object.__setattr__(self, "budgets", tuple(sorted(budgets)))
        object.__setattr__(self, "ks", tuple(sorted(ks)))

    def caps(self) -> dict[int, int]:
        """Thinking cap per sample -> the most samples any cell needs at that cap."""
        out: dict[int, int] = {}
        for b in self.budgets:
            for k in self.ks:
                out[b // k] = max(out.get(b // k, 0), k)
        return dict(sorted(out.items()))

    def methods(self) -> list:
        from s1.evaluation.methods import BudgetForcing, MajorityVoting

        return [BudgetForcing(list(self.budgets), [self.num_ignore])] + [
            MajorityVoting(k, temperature=self.temperature, max_thinking=c)
            for c, k in self.caps().items()]


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


def _flops(rec, shape: dict | None) -> float | None:
    if not shape or not shape.get("n_params"):
        return rec.compute.flops
    return estimate_flops(shape["n_params"], rec.compute.prompt_tokens,
                          rec.compute.generated_tokens, shape.get("n_layers"),
                          shape.get("d_model"))


# ---------------------------------------------------------------------------------------------
# the comparison


@dataclass
class Cell:
    budget: int
    k: int
    cap: int
    scores: dict[str, dict[str, float]] = field(default_factory=dict)   # method -> id -> 0/1
    flops: dict[str, float | None] = field(default_factory=dict)        # method -> per question
    thinking: dict[str, float] = field(default_factory=dict)            # method -> per question
    differences: dict[str, dict] = field(default_factory=dict)          # "majority" / "oracle"

    def to_dict(self) -> dict:
        n = len(self.scores["budget forcing"])
        return {"budget": self.budget, "k": self.k, "cap": self.cap, "questions": n,
                "accuracy": {m: sum(s.values()) / n for m, s in self.scores.items()},
                "flops_per_question": self.flops, "thinking_per_question": self.thinking,
                "differences": self.differences}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def compare(runs: Sequence, plan: ComputePlan, shape: dict | None = None,
            resamples: int = 10_000, seed: int = 0) -> list[Cell]:
    """The cells of the comparison from the plan's runs (complete ones, any order)."""
    by_name = {r.setting.name: r for r in runs}
    bf = {r.setting.params["max_thinking"]: r for r in runs if r.setting.method == "budget"}
    par = {r.setting.params["max_thinking"]: r for r in runs if r.setting.method == "majority"}
    shape = shape or next((r.manifest.get("model_shape") for r in runs), None)
    cells = []
    for b in plan.budgets:
        if b not in bf:
            raise UserError(f"no budget-forcing run at {b} tokens among {sorted(by_name)}")
        seq = bf[b]
        seq_out = seq.outcomes_at(None)
        seq_recs = {r.id: r for r in seq.records}
        for k in plan.ks:
            cap = b // k
            run = par.get(cap)
            if run is None or run.setting.samples < k:
                raise UserError(f"no run with {k} samples at {cap} thinking tokens")
            samples: dict[str, list] = {}
            for r in sorted(run.records, key=lambda r: r.sample):
                if r.sample < k:
                    samples.setdefault(r.id, []).append(r)
            maj = run.outcomes_at(k)
            ids = sorted(q for q in seq_out if q in maj and len(samples.get(q, ())) == k)
            if not ids:
                raise UserError(f"budget forcing at {b} and {k} samples at {cap} share no "
                                "finished question")
            cell = Cell(b, k, cap)
            cell.scores = {
                "budget forcing": {q: float(seq_out[q]["correct"]) for q in ids},
                "majority": {q: float(maj[q]["correct"]) for q in ids},
                "oracle best-of-k": {q: float(any(r.correct for r in samples[q])) for q in ids}}
            seq_flops = [_flops(seq_recs[q], shape) for q in ids]
            par_flops = [sum(f for f in (_flops(r, shape) for r in samples[q]) if f is not None)
                         if all(_flops(r, shape) is not None for r in samples[q]) else None
                         for q in ids]
            fl_seq = _mean(seq_flops) if None not in seq_flops else None
            fl_par = _mean(par_flops) if None not in par_flops else None
            cell.flops = {"budget forcing": fl_seq, "majority": fl_par, "oracle best-of-k": fl_par}
            th_par = _mean([sum(r.thinking_tokens for r in samples[q]) for q in ids])
            cell.thinking = {"budget forcing": _mean([seq_recs[q].thinking_tokens for q in ids]),
                             "majority": th_par, "oracle best-of-k": th_par}
            for name, method in (("majority", "majority"), ("oracle", "oracle best-of-k")):
                res = paired_bootstrap(cell.scores["budget forcing"], cell.scores[method],
                                       n_resamples=resamples, seed=seed)
                cell.differences[name] = {"difference": res.difference, "low": res.low,
                                          "high": res.high, "p_value": res.p_value}
            cells.append(cell)
    return cells


def table(cells: Sequence[Cell]) -> tuple[list[str], list[list[str]]]:
    """The comparison as a table (header, rows), percentages and FLOPs per question."""
    def pct(x: float) -> str:
        return f"{100 * x:.1f}"

    def diff(d: dict) -> str:
        return (f"{100 * d['difference']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}] "
                f"p={d['p_value']:.2f}")

    def fl(x: float | None) -> str:
        return "–" if x is None else f"{x:.3g}"

    header = ["B", "k", "B/k", "questions", "budget forcing %", "majority@k %",
              "oracle best-of-k %", "BF − maj [95% CI]", "BF − best [95% CI]",
              "FLOPs/q BF", "FLOPs/q parallel", "thinking/q BF", "thinking/q parallel"]
    rows = []
    for c in cells:
        d = c.to_dict()
        acc = d["accuracy"]
        rows.append([str(c.budget), str(c.k), str(c.cap), str(d["questions"]),
                     pct(acc["budget forcing"]), pct(acc["majority"]),
                     pct(acc["oracle best-of-k"]), diff(c.differences["majority"]),
                     diff(c.differences["oracle"]), fl(c.flops["budget forcing"]),
                     fl(c.flops["majority"]), f"{c.thinking['budget forcing']:.0f}",
                     f"{c.thinking['majority']:.0f}"])
    return header, rows


def plot(path: Path, title: str, cells: Sequence[Cell]) -> None:
    """Accuracy against FLOPs (tokens where FLOPs are unknown) per question: budget forcing
    over B, majority@k and oracle best-of-k over B for each k."""
    from s1.pages import figure, save

    use_flops = all(c.flops["budget forcing"] and c.flops["majority"] for c in cells)

    def x(c: Cell, m: str) -> float:
        return c.flops[m] if use_flops else c.thinking[m]

    fig, ax = figure()
    seq = {c.budget: c for c in cells}
    ax.plot([x(c, "budget forcing") for c in seq.values()],
            [100 * _mean(list(c.scores["budget forcing"].values())) for c in seq.values()],
            "o-", color="black", label="budget forcing at B")
    for i, k in enumerate(sorted({c.k for c in cells})):
        row = [c for c in cells if c.k == k]
        color = f"C{i}"
        for method, style in (("majority", "s--"), ("oracle best-of-k", "^:")):
            ax.plot([x(c, method) for c in row],
                    [100 * _mean(list(c.scores[method].values())) for c in row], style,
                    color=color, label=f"{method.replace('-k', f'-{k}')}" if "oracle" in method
                    else f"majority@{k}", alpha=0.85)
    ax.set_xscale("log")
    ax.set_ylim(-1, max(10.0, min(101.0, 5 + max(
        100 * _mean(list(s.values())) for c in cells for s in c.scores.values()))))
    save(fig, ax, path, title,
         "estimated FLOPs per question" if use_flops else "thinking tokens per question",
         "accuracy (%)", legend_size=7)


def write(out: Path, bench: str, cells: Sequence[Cell], shape: dict | None) -> list[Path]:
    """compute.json, compute.md and compute-matched-BENCH.png in `out`, each written whole."""
    from s1.pages import render_markdown
    from s1.evaluation.runs import write_json_atomic

    png = out / f"compute-matched-{bench}.png"
    tmp_png = png.with_name(f".{png.name}.tmp.png")
    plot(tmp_png, f"{bench}: budget forcing vs parallel at matched compute", cells)
    os.replace(tmp_png, png)
    write_json_atomic(out / COMPUTE_JSON, {"benchmark": bench, "model_shape": shape,
                                           "cells": [c.to_dict() for c in cells]})
    header, rows = table(cells)
    md = render_markdown([
        ("h1", f"Matched compute on {bench}"),
        ("p", "Budget forcing at B (greedy) against majority@k and oracle best-of-k at B/k "
              "thinking tokens per sample, on the same questions. Differences are budget forcing "
              "minus the parallel method in points, with a paired bootstrap 95% interval."),
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
    expand(plan.methods(), budget.base())      # every setting checked before a model loads
    b = benchmark
    bench = load_benchmark(b.name, limit=b.limit, subset=b.subset, path=b.file,
                           question_field=b.question_field, answer_field=b.answer_field,
                           answer_type=b.answer_type)
    engine = engine_options.load()
    try:
        if shape is None and engine_options.model and Path(engine_options.model, "config.json").is_file():
            shape = shape_from_config(engine_options.model)   # a local HF model tells its shape
        settings = expand(plan.methods(), budget.base(engine.describe().get("context_length")))
        runs = make_runs(out, engine, engine_options.label, bench, settings, [0],
                         protocol=b.protocol, n_params=shape["n_params"] if shape else None,
                         benchmark_args={"limit": b.limit, "subset": b.subset})
        execute(runs, engine, progress=not quiet)
    finally:
        engine.close()
    write_summaries(out, [r.dir for r in runs])
    loaded = [load_run(r.dir) for r in runs]
    cells = compare(loaded, plan, shape, resamples=resamples)
    shape = shape or next((r.manifest.get("model_shape") for r in loaded), None)
    files = write(out, bench.name, cells, shape)
    return {"cells": cells, "files": files, "shape": shape, "runs": [r.name for r in loaded]}
