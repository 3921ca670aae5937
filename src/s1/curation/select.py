"""Selection: the paper's Algorithm 1, the released notebook's variant, and the ablation sets.

Algorithm 1 (paper §2.3): until |S| = size, draw a domain uniformly at random among the domains
that still have questions, then a question in it with probability proportional to 2^-rank,
rank 0 being the longest trace (ties: the later row ranks first, as the notebook's
`len-1-argsort(argsort(lengths))`). Seeded with numpy's Generator: same seed, same set. The
notebook's numpy RNG was never seeded, so s1K itself cannot be redrawn; `simplescaling/s1K` is
canonical.

`notebook` (the released code, data/filter.ipynb): first every benchmark-related question (GPQA and
AIME sources, and MATH with a trace longer than `math_min_length`, each only if the teacher was
right: `correct_column`, by default the difficulty step's `teacher_correct`), then Algorithm 1, except that from `switch_at` selections
on the domain is drawn from the domain histogram of the GPQA + AIME questions (GPQA weighted
0.5 * |AIME| / |GPQA|). The paper's Algorithm 1 has no such switch. `s1` with
`benchmark_related: true` is the paper's own account: those questions first (its 384), then
Algorithm 1 with no switch.

Ablations (paper Table 2): `random` (uniform), `diverse` (uniform domain, then a uniform question
in it: no length), `longest` (the `size` longest traces), `full` (everything).

The domain comes from the `domains` step (`domain`, the MSC title) and the trace length from the
`difficulty` step (`trace_tokens`: the teacher's thinking in tokens of a chosen tokenizer, as the
paper's `gemini_length`); `length_column: auto` takes `trace_tokens` where it exists, else the
`trace_length` stand-in of `proxy-columns` (runs without models). Any columns can be named.

`sample` (a quick subset before the model steps) draws `size` rows uniformly with a seed and keeps
their order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from s1.curation.steps import Drops, StepOutput, column, step
from s1.errors import UserError

STRATEGIES = ("s1", "notebook", "random", "diverse", "longest", "full")
_UNDERFLOW = 1100   # 2.0**-1075 == 0.0: ranks past this weigh exactly nothing


@dataclass
class SelectConfig:
    """Which strategy, how many, from which columns."""

    strategy: str = "s1"           # s1 (Algorithm 1), notebook, random, diverse, longest, full
    size: int = 1000
    seed: int = 42
    domain_column: str = "domain"
    length_column: str = "auto"    # auto: trace_tokens (difficulty step, the paper's) else trace_length
    benchmark_related: bool = False   # s1: first add the benchmark-related questions, as the paper
                                      # did (its 384; the notebook does it always)
    # the benchmark-related questions (notebook, or s1 with benchmark_related)
    correct_column: str | None = "auto"      # the teacher's grade (isgeminicorrect); auto:
                                             # teacher_correct (difficulty step) where present
    gpqa_sources: list = field(default_factory=lambda: ["Idavidrein/gpqa"])
    aime_sources: list = field(default_factory=lambda: ["qq8933/AIME_1983_2024"])
    math_sources: list = field(default_factory=lambda: ["simplescaling/openaimath", "qfq/openaimath"])
    math_min_length: int = 5600
    switch_at: int = 700

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise UserError(f"select.strategy must be one of {', '.join(STRATEGIES)}, "
                            f"not {self.strategy!r}")
        if self.size < 1:
            raise UserError("select.size must be at least 1")


def _descending(indices: list[int], lengths: np.ndarray) -> list[int]:
    """Longest first; among equal lengths the later row first (the notebook's rank order)."""
    return sorted(indices, key=lambda i: (lengths[i], i), reverse=True)


def algorithm1(domains: list, lengths: np.ndarray | None, size: int, rng: np.random.Generator,
               start: list[int] = (), domain_weights: dict | None = None,
               switch_at: int | None = None) -> list[int]:
    """Indices chosen by Algorithm 1 (lengths None: uniform within a domain, the diverse ablation)."""
    chosen = list(start)
    taken = set(chosen)
    pools: dict = {}
    for i, d in enumerate(domains):
        if i not in taken:
            pools.setdefault(d, []).append(i)
    if lengths is not None:
        pools = {d: _descending(ix, lengths) for d, ix in pools.items()}
    active = sorted(pools, key=str)
    while len(chosen) < size and active:
        p = None
        if domain_weights is not None and switch_at is not None and len(chosen) >= switch_at:
            w = np.array([domain_weights.get(d, 0.0) for d in active], dtype=float)
            p = w / w.sum() if w.sum() > 0 else None
        d = active[rng.choice(len(active), p=p)]
        members = pools[d]
        if lengths is None:
            k = int(rng.integers(len(members)))
        else:
            w = 2.0 ** -np.arange(min(len(members), _UNDERFLOW), dtype=float)
            k = int(rng.choice(len(w), p=w / w.sum()))
        chosen.append(members.pop(k))
        if not members:
            active.remove(d)
    return chosen


def _matches(source: str, prefixes: list) -> bool:
    return any(source == p or source.startswith(p.rstrip("/") + "/") for p in prefixes)


def notebook_start(data, config: SelectConfig, lengths: np.ndarray) -> list[int]:
    sources = column(data, "source_type")
    right = column(data, config.correct_column) if config.correct_column else [True] * len(data)
    start = []
    for i, (s, ok) in enumerate(zip(sources, right)):
        bench = _matches(s, config.gpqa_sources) or _matches(s, config.aime_sources)
        long_math = _matches(s, config.math_sources) and lengths[i] > config.math_min_length
        if (bench or long_math) and bool(ok):
            start.append(i)
    return start


def benchmark_domain_weights(data, config: SelectConfig) -> dict:
    """The domain histogram of GPQA + AIME questions, GPQA weighted 0.5 * |AIME| / |GPQA|."""
    gpqa, aime = {}, {}
    for s, d in zip(column(data, "source_type"), column(data, config.domain_column)):
        if _matches(s, config.gpqa_sources):
            gpqa[d] = gpqa.get(d, 0) + 1
        elif _matches(s, config.aime_sources):
            aime[d] = aime.get(d, 0) + 1
    n_gpqa, n_aime = sum(gpqa.values()), sum(aime.values())
    scale = 0.5 * n_aime / n_gpqa if n_gpqa else 0.0
    return {d: gpqa.get(d, 0) * scale + aime.get(d, 0) for d in set(gpqa) | set(aime)}


LENGTH_COLUMNS = ("trace_tokens", "trace_length")   # `auto`: the real one first, then the proxy
TEACHER_GRADE = "teacher_correct"                  # the difficulty step's grade of the teacher


def resolved(data, config: SelectConfig) -> SelectConfig:
    """`length_column: auto` made concrete for this data."""
    import dataclasses

    if config.correct_column == "auto":
        config = dataclasses.replace(config, correct_column=TEACHER_GRADE if TEACHER_GRADE in
                                     data.column_names else None)
    if config.length_column != "auto":
        return config
    found = [c for c in LENGTH_COLUMNS if c in data.column_names]
    return dataclasses.replace(config, length_column=found[0] if found else LENGTH_COLUMNS[0])


def choose(data, config: SelectConfig) -> tuple[list[int], dict]:
    """The chosen row indices, in the order they were drawn, and facts for the report."""
    config = resolved(data, config)
    n = len(data)
    rng = np.random.default_rng(config.seed)
    needs_len = config.strategy in ("s1", "notebook", "longest")
    lengths = None
    if needs_len:
        try:
            lengths = np.array([float(x) if x is not None else -1.0
                                for x in column(data, config.length_column)], dtype=float)
        except (TypeError, ValueError):
            raise UserError(f"select.length_column {config.length_column!r} must hold numbers") from None
    domains = [str(d) for d in column(data, config.domain_column)] if config.strategy not in (
        "random", "longest", "full") else None
    info = {"strategy": config.strategy, "pool": n}
    if config.strategy == "full":
        return list(range(n)), info
    if config.strategy == "random":
        return [int(i) for i in rng.choice(n, size=min(config.size, n), replace=False)], info
    if config.strategy == "longest":
        return _descending(list(range(n)), lengths)[:config.size], info
    if config.strategy == "diverse":
        return algorithm1(domains, None, config.size, rng), info
    if config.strategy == "s1" and not config.benchmark_related:
        return algorithm1(domains, lengths, config.size, rng), info
    start = notebook_start(data, config, lengths)
    if len(start) > config.size:
        raise UserError(f"select: {len(start)} benchmark-related questions exceed "
                        f"select.size={config.size}")
    info.update(benchmark_related=len(start), graded_by=config.correct_column)
    if config.strategy == "s1":   # the paper: those first, then Algorithm 1 as it is written
        return algorithm1(domains, lengths, config.size, rng, start), info
    weights = benchmark_domain_weights(data, config)
    info.update(benchmark_domains=len(weights))
    return algorithm1(domains, lengths, config.size, rng, start, weights or None,
                      config.switch_at), info


@step("select", SelectConfig, needs=("question_hash", "source_type"))
def select(data, config: SelectConfig, ctx) -> StepOutput:
    """Algorithm 1 (domain uniformly, then 2^-rank of trace length), the notebook variant, or an ablation set."""
    config = resolved(data, config)
    wanted = [config.domain_column] if config.strategy in ("s1", "notebook", "diverse") else []
    wanted += [config.length_column] if config.strategy in ("s1", "notebook", "longest") else []
    related = config.strategy == "notebook" or config.strategy == "s1" and config.benchmark_related
    wanted += [config.correct_column] if related and config.correct_column else []
    missing = [c for c in wanted if c not in data.column_names]
    if missing:
        raise UserError(f"select ({config.strategy}) needs column(s) {', '.join(missing)}: run the "
                        f"domains / difficulty steps (or proxy-columns) first, or name other "
                        f"columns with select.domain_column / select.length_column")
    if related and not config.correct_column:
        ctx.log("no teacher grade (teacher_correct; the difficulty step makes it): every "
                "benchmark-related question is added, not only those the teacher got right")
    chosen, info = choose(data, config)
    if len(chosen) < config.size and config.strategy != "full":
        ctx.log(f"the pool holds only {len(chosen)} selectable questions (size {config.size})")
    picked = set(chosen)
    drops = Drops()
    for i, (h, s) in enumerate(zip(column(data, "question_hash"), column(data, "source_type"))):
        if i not in picked:
            drops.add({"question_hash": h, "source_type": s}, "not-selected")
    out = data.select(chosen).add_column("selection_rank", list(range(len(chosen))))
    if config.domain_column in out.column_names:
        info["domains"] = len(set(column(out, config.domain_column)))
    if config.strategy in ("s1", "notebook", "longest"):
        info["length_column"] = config.length_column
    return StepOutput(out, drops, stats=info)


@dataclass
class SampleConfig:
    """A seeded uniform subset (quick runs: the model steps on a few questions)."""

    size: int = 100
    seed: int = 42

    def __post_init__(self):
        if self.size < 1:
            raise UserError("sample.size must be at least 1")


@step("sample", SampleConfig, needs=("question_hash", "source_type"))
def sample(data, config: SampleConfig, ctx) -> StepOutput:
    """A seeded uniform subset of `size` rows, in their order (quick runs of the model steps)."""
    n = len(data)
    rng = np.random.default_rng(config.seed)
    keep = sorted(int(i) for i in rng.choice(n, size=min(config.size, n), replace=False))
    kept = set(keep)
    drops = Drops()
    for i, (h, s) in enumerate(zip(column(data, "question_hash"), column(data, "source_type"))):
        if i not in kept:
            drops.add({"question_hash": h, "source_type": s}, "not-sampled")
    return StepOutput(data.select(keep), drops, stats={"size": len(keep)})
