"""Scaling curves from runs: which runs are seeds of one point, which points make one curve, and
the paper's Control / Scaling / Performance over each curve with a bootstrap interval on Scaling.

Identity is the whole run configuration (model, engine, thinking format, benchmark with its
question ids, limit and subset, protocol, judge, the setting with its budget and sampling),
never a few chosen keys, so runs that differ in anything but the seed are never pooled:

- a point is every run whose configuration equals up to the seed (its seeds are averaged);
- a curve is every point whose configuration equals up to the seed and what the method sweeps
  (the thinking cap and num_ignore, a conditional prompt, a rejection threshold, the number of
  parallel samples). An ignore string that a run never uses (no ignore, no minimum) is not part
  of its identity: such a run joins the curve of each ignore string, as the paper's Table 4
  shares the no-Wait baseline.

Curves of one method that differ in something else (temperature, ignore string, limit, ...) are
separate and named by the difference ("budget forcing (temperature=0.6)"). Incomplete runs are
left out unless asked for: a curve mixing 30 questions with 12 compares different tests.
"""

from __future__ import annotations

import copy
import json
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from s1.errors import UserError
from s1.evaluation.intervals import mean_sd, scaling_bootstrap, score_interval
from s1.evaluation.metrics import control, near_ties, performance, scaling, scaling_fit

if TYPE_CHECKING:
    from s1.evaluation.aggregate import RunData

# What each method sweeps along one curve (setting keys; budget keys under "budget").
SWEPT_SETTING = ("name", "params", "a_max", "accept_max", "suffix", "samples", "label")
SWEPT_BUDGET = ("max_thinking_tokens", "num_ignore", "seed")


def point_config(run: "RunData") -> dict:
    """The run's configuration without its seed: equal for the seeds of one point."""
    cfg = copy.deepcopy(run.config)
    cfg.pop("seed", None)
    cfg.get("setting", {}).get("budget", {}).pop("seed", None)
    return cfg


def curve_config(run: "RunData") -> dict:
    """The configuration without the seed and what the method sweeps; an ignore string the run
    never uses is None (it belongs to every ignore string's curve)."""
    cfg = point_config(run)
    setting = cfg.get("setting", {})
    for k in SWEPT_SETTING:
        setting.pop(k, None)
    budget = setting.get("budget", {})
    for k in SWEPT_BUDGET:
        budget.pop(k, None)
    if not run.setting.budget.num_ignore and not run.setting.budget.min_thinking_tokens:
        budget["ignore_strings"] = None
    cfg["label"] = run.setting.label
    return cfg


def _dump(d: dict) -> str:
    return json.dumps(d, sort_keys=True, default=str)


def _flat(d, prefix: str = "") -> dict[str, object]:
    if not isinstance(d, dict):
        return {prefix: _dump(d) if isinstance(d, list) else d}
    out: dict[str, object] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else k))
    return out


# ---------------------------------------------------------------------------------------------


@dataclass
class Point:
    """One point of a scaling curve: a setting (seeds pooled), or majority/best-of at k."""

    name: str
    thinking: float                    # mean thinking tokens per question
    accuracy: float                    # mean over seeds
    sd: float                          # over seeds (nan for one seed)
    low: float                         # Wilson 95% at the seeds' mean, n = questions
    high: float
    correct: int
    total: int
    seeds: int
    a_max: int | None
    flops: float | None                # per question
    tokens: float | None               # prompt + generated per question
    # Per question, averaged over seeds (not written to sweep.json): what the bootstrap
    # resamples and the report's per-question thinking shows.
    scores: dict[str, float] = field(default_factory=dict, repr=False)
    thinking_by_question: dict[str, float] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        # JSON has no NaN: the sd of a single seed is written as null.
        return {k: (None if isinstance(v, float) and v != v else v)
                for k, v in self.__dict__.items()
                if k not in ("scores", "thinking_by_question")}


@dataclass
class Curve:
    benchmark: str
    model: str
    label: str
    points: list[Point]
    control: float | None              # the paper's: points whose mean thinking is in bounds
    scaling: float | None              # pp per thinking token
    scaling_log2: float | None         # pp per doubling (the paper's figures)
    performance: float
    variant: str = ""                  # what sets it apart from curves of the same method
    scaling_low: float | None = None   # bootstrap 95% over questions
    scaling_high: float | None = None
    scaling_log2_low: float | None = None
    scaling_log2_high: float | None = None
    # Beside the paper's mean pairwise slope: the least-squares slope on log2 thinking tokens
    # (pp per doubling, with its bootstrap 95%), which near-ties cannot swing, and the pairs of
    # points closer than 0.1 doublings, whose slopes are mostly noise.
    scaling_log2_fit: float | None = None
    scaling_log2_fit_low: float | None = None
    scaling_log2_fit_high: float | None = None
    near_ties: list[list[str]] = field(default_factory=list)
    # Control over samples: a point's mean can sit inside its bound while many samples overshoot
    control_per_sample: float | None = None
    config: dict = field(default_factory=dict, repr=False)   # the curve's identity

    @property
    def name(self) -> str:
        return f"{self.label} ({self.variant})" if self.variant else self.label

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["points"] = [p.to_dict() for p in self.points]
        d["name"] = self.name
        return d


def _points(runs: list["RunData"]) -> list[Point]:
    """Seeds of one configuration pooled into points (at several k for parallel methods)."""
    groups: dict[str, list[RunData]] = {}
    for run in runs:
        groups.setdefault(_dump(point_config(run)), []).append(run)
    points = []
    for group in groups.values():
        setting = group[0].setting
        ks: list[int | None] = [None]
        if setting.samples > 1 and all(r.summary.at_k for r in group):
            ks = [int(k) for k in group[0].summary.at_k]
        for k in ks:
            outs = [r.outcomes_at(k) for r in group]
            acc = [statistics.fmean(o["correct"] for o in out.values()) for out in outs]
            acc_mean, acc_sd = mean_sd(acc)
            total = sum(len(out) for out in outs)
            # n is the questions, not questions × seeds: seeds re-ask the same questions, and
            # the mean over seeds is the mean of the per-question means.
            low, high = score_interval(min(1.0, acc_mean), round(total / len(outs)))
            shared = sorted(set.intersection(*(set(out) for out in outs)))
            flops = [statistics.fmean(o["flops"] for o in out.values())
                     if all(o["flops"] is not None for o in out.values()) else None
                     for out in outs]
            points.append(Point(
                setting.name if k is None else f"{setting.name}@{k}",
                statistics.fmean(statistics.fmean(o["thinking_tokens"] for o in out.values())
                                 for out in outs),
                acc_mean, acc_sd, low, high,
                sum(o["correct"] for out in outs for o in out.values()), total, len(outs),
                setting.a_max if k is None else None,
                statistics.fmean(flops) if all(f is not None for f in flops) else None,
                statistics.fmean(statistics.fmean(o["prompt_tokens"] + o["generated_tokens"]
                                                  for o in out.values()) for out in outs),
                scores={q: statistics.fmean(float(out[q]["correct"]) for out in outs)
                        for q in shared},
                thinking_by_question={q: statistics.fmean(out[q]["thinking_tokens"]
                                                          for out in outs) for q in shared}))
    return sorted(points, key=lambda p: (p.thinking, p.name))


def _groups(runs: Sequence["RunData"]) -> dict[str, list["RunData"]]:
    """Runs by curve configuration; a run that uses no ignore string joins every group that
    differs from it only in the ignore string."""
    groups: dict[str, list[RunData]] = {}
    wild: list[tuple[dict, RunData]] = []
    for run in runs:
        cfg = curve_config(run)
        groups.setdefault(_dump(cfg), []).append(run)
        if cfg["setting"].get("budget", {}).get("ignore_strings", 0) is None:
            wild.append((cfg, run))
    for cfg, run in wild:
        homes = [key for key, members in groups.items() if key != _dump(cfg)
                 and _same_but_ignore(json.loads(key), cfg)]
        if homes:
            groups[_dump(cfg)].remove(run)
            for key in homes:
                groups[key].append(run)
    return {k: v for k, v in groups.items() if v}


def _same_but_ignore(a: dict, b: dict) -> bool:
    a, b = copy.deepcopy(a), copy.deepcopy(b)
    for d in (a, b):
        d["setting"].get("budget", {}).pop("ignore_strings", None)
    return _dump(a) == _dump(b)


def _variants(configs: list[dict]) -> list[str]:
    """What tells apart curves of one method, benchmark and model, e.g. "temperature=0.6"."""
    flats = [_flat(c) for c in configs]
    keys = sorted({k for f in flats for k in f})
    differ = [k for k in keys if len({_dump(f.get(k)) for f in flats}) > 1]
    out = []
    for f in flats:
        parts = []
        for k in differ:
            v = f.get(k)
            leaf = k.rsplit(".", 1)[-1]
            if leaf == "ignore_strings" and isinstance(v, str):
                v = ", ".join(json.loads(v))
                leaf = "ignore string"
            elif isinstance(v, str) and v.startswith("["):
                v = ", ".join(map(str, json.loads(v)))
            parts.append(f"{leaf}={v}" if leaf != "ignore string" else f"{leaf} {v}")
        out.append(", ".join(parts))
    return out


def _bootstrap(pts: list[Point], log2: bool, resamples: int, seed: int,
               least_squares: bool = False) -> tuple[float | None, float | None]:
    ids = set(pts[0].scores)
    if not ids or any(set(p.scores) != ids for p in pts):
        return None, None   # points on different questions cannot be resampled together
    try:
        r = scaling_bootstrap([{q: 100 * v for q, v in p.scores.items()} for p in pts],
                              [p.thinking_by_question for p in pts], log2=log2,
                              n_resamples=resamples, seed=seed, least_squares=least_squares)
    except UserError:
        return None, None
    return r.low, r.high


def curves(runs: Sequence["RunData"], include_incomplete: bool = False,
           resamples: int = 10_000, seed: int = 0) -> list[Curve]:
    """One curve per configuration up to seed and swept values, with Control / Scaling /
    Performance, and Scaling's bootstrap 95% interval (resampling questions, all points alike).

    Control is the paper's: the share of points whose mean thinking stays within the bound the
    setting asked for (points without a bound, e.g. "auto", are left out; no bound at all gives
    None); beside it the share of samples that do. Scaling is the mean pairwise slope in
    percentage points per token (linear) and per doubling of thinking tokens (log2, the paper's
    figures); beside it the least-squares slope per doubling and the near-tied pairs of points.
    Performance is the best accuracy.
    Incomplete runs are left out unless `include_incomplete`.
    """
    usable = [r for r in runs if not r.summary.empty
              and (include_incomplete or r.summary.complete)]
    built = []
    for key, group in sorted(_groups(usable).items()):
        summ = group[0].summary
        pts = _points(group)
        bounded = [p for p in pts if p.a_max is not None]
        ctrl = control([p.thinking for p in bounded], [p.a_max for p in bounded]) if bounded else None
        in_bounds = [(rec.thinking_tokens, r.setting.a_max) for r in group
                     if r.setting.a_max is not None for rec in r.records]
        xs, ys = [p.thinking for p in pts], [100 * p.accuracy for p in pts]
        distinct = len(set(xs)) > 1
        positive = distinct and all(x > 0 for x in xs)
        curve = Curve(summ.benchmark, summ.model, summ.label, pts, ctrl,
                      scaling(xs, ys) if distinct else None,
                      scaling(xs, ys, log2=True) if positive else None,
                      100 * performance([p.accuracy for p in pts]), config=json.loads(key))
        if in_bounds:
            curve.control_per_sample = control(*map(list, zip(*in_bounds)))
        if distinct:
            curve.scaling_low, curve.scaling_high = _bootstrap(pts, False, resamples, seed)
        if positive:
            curve.scaling_log2_low, curve.scaling_log2_high = _bootstrap(pts, True, resamples,
                                                                         seed)
            curve.scaling_log2_fit = scaling_fit(xs, ys, log2=True)
            curve.scaling_log2_fit_low, curve.scaling_log2_fit_high = _bootstrap(
                pts, True, resamples, seed, least_squares=True)
            curve.near_ties = [[pts[i].name, pts[j].name] for i, j in near_ties(xs)]
        built.append(curve)
    families: dict[tuple, list[Curve]] = {}
    for c in built:
        families.setdefault((c.benchmark, c.model, c.label), []).append(c)
    for family in families.values():
        if len(family) > 1:
            for c, v in zip(family, _variants([c.config for c in family])):
                c.variant = v
    return sorted(built, key=lambda c: (c.benchmark, c.model, c.label, c.variant))


def incomplete_runs(runs: Sequence["RunData"]) -> list[str]:
    """Names of the runs with records that curves leave out as incomplete."""
    return [r.name for r in runs if not r.summary.empty and not r.summary.complete]


# ---------------------------------------------------------------------------------------------
# the review's L1: how much the curve depends on the ignore string


def ignore_string_spread(cs: Sequence[Curve]) -> list[dict]:
    """Curves that differ only in the ignore string ("Wait", "Hmm", ...), as mean ± sd over
    the strings: of Scaling, of Performance, and of accuracy at each shared point.

    A point is matched across strings by its budget (cap and num_ignore): the point names
    without the string.
    """
    families: dict[str, list[Curve]] = {}
    for c in cs:
        budget = c.config.get("setting", {}).get("budget", {})
        if budget.get("ignore_strings") is None:
            continue
        base = copy.deepcopy(c.config)
        base["setting"]["budget"].pop("ignore_strings")
        families.setdefault(_dump(base), []).append(c)
    out = []
    for family in families.values():
        if len(family) < 2:
            continue
        strings = [", ".join(c.config["setting"]["budget"]["ignore_strings"]) for c in family]

        def spread(values: list[float | None]) -> tuple[float | None, float | None]:
            vals = [v for v in values if v is not None]
            return mean_sd(vals) if len(vals) == len(values) and vals else (None, None)

        by_point: dict[str, list[float]] = {}
        for c, s in zip(family, strings):
            for p in c.points:
                by_point.setdefault(_strip_string(p.name, s), []).append(100 * p.accuracy)
        c0 = family[0]
        out.append({
            "benchmark": c0.benchmark, "model": c0.model, "label": c0.label,
            "strings": strings,
            "scaling_log2": spread([c.scaling_log2 for c in family]),
            "scaling": spread([None if c.scaling is None else 1000 * c.scaling for c in family]),
            "performance": spread([c.performance for c in family]),
            "points": {name: mean_sd(v) for name, v in by_point.items()
                       if len(v) == len(family)},
        })
    return out


def _strip_string(point_name: str, string: str) -> str:
    from s1.evaluation.methods import _slug   # how a setting's name spells its string

    return point_name.replace(f"-{_slug(string)}", "")
