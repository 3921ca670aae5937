"""`evaluate(config)`: what `s1 eval` does, callable from Python — a validated EvalConfig in,
runs on disk and their summaries out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from s1.errors import UserError
from s1.evaluation.config import EvalConfig
from s1.evaluation.records import RunSummary


@dataclass
class EvalResult:
    out: Path
    run_dirs: list[Path]
    summaries: list[RunSummary]   # one per run of this command (summary.json)
    curves: list[dict]            # every curve under `out` (sweep.json)


def evaluate(cfg: EvalConfig) -> EvalResult:
    from s1.evaluation.aggregate import write_summaries
    from s1.evaluation.benchmarks import load_benchmark
    from s1.evaluation.methods import expand
    from s1.evaluation.rewards import check_questions
    from s1.evaluation.runs import SWEEP, execute, make_runs

    out = Path(cfg.run.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {cfg.run.out} exists and is not a directory")
    settings = expand([cfg.method.build(cfg.budget.temperature, cfg.budget.top_p)],
                      cfg.budget.base())
    b = cfg.benchmark
    files = b.files()
    # Every benchmark loads (and fails) before the model does; each gets its own runs, and all
    # of them go to the engine in one call.
    benches = [load_benchmark(name, limit=b.limit, subset=b.subset, path=files.get(name),
                              question_field=b.question_field, answer_field=b.answer_field,
                              answer_type=b.answer_type) for name in b.names()]
    if len({bench.name for bench in benches}) != len(benches):
        raise UserError(f"--benchmark {b.name} names one benchmark twice")
    for s in settings:
        if s.aggregate is not None:           # a reward model reads the thinking
            for bench in benches:
                check_questions(s.scorer, [item.question for item in bench][:1])
    judge = None
    if cfg.run.judge_url:
        from s1.evaluation.judge import Judge
        judge = Judge(cfg.run.judge_url, cfg.run.judge_model)
    engine = cfg.engine.load()
    try:
        if cfg.budget.max_answer == "auto":   # the answer may use the rest of the model's context
            settings = expand([cfg.method.build(cfg.budget.temperature, cfg.budget.top_p)],
                              cfg.budget.base(engine.describe().get("context_length")))
        runs = [run for bench in benches for run in make_runs(
            out, engine, cfg.engine.label, bench, settings, range(cfg.run.seeds),
            protocol=b.protocol, judge_model=cfg.run.judge_model, n_params=cfg.run.model_params,
            system=b.system,
            benchmark_args={"limit": b.limit, "subset": b.subset})]
        execute(runs, engine, judge=judge, progress=not cfg.run.quiet)
    finally:
        engine.close()
    summaries = write_summaries(out, [r.dir for r in runs])
    curves = json.loads((out / SWEEP).read_text())["curves"]
    return EvalResult(out, [r.dir for r in runs], summaries, curves)
