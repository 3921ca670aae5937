"""`s1 regrade DIR`: grade the stored answers of finished (or half-finished) runs again, without
generating a token — after a grader fix, with or without an LLM judge.

What a run generated is its identity (model, engine, format, benchmark, setting, seed); how it
was graded is not (`runs.GRADING`), so a regraded run still resumes with `s1 eval`. Each run's
records.jsonl is rewritten whole through a rename, then its manifest (the grading it now has,
and a line in its `regraded` history), then summary.json and the sweep's sweep.json: a kill
leaves the old grades or the new ones, never a mix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from s1.errors import UserError
from s1.evaluation.benchmarks import Item
from s1.evaluation.grading import grade_many
from s1.evaluation.methods import load_scorer
from s1.evaluation.records import Record
from s1.evaluation.runs import MANIFEST, RECORDS
from s1.generation.trace import Trace
from s1.jsonl import write_json_atomic, write_jsonl_atomic


@dataclass
class Regraded:
    """What regrading changed in one run."""

    run: str
    dir: Path
    records: int
    right_to_wrong: int
    wrong_to_right: int
    extracted_changed: int
    accuracy_before: float | None
    accuracy_after: float | None
    judge: str | None

    @property
    def flipped(self) -> int:
        return self.right_to_wrong + self.wrong_to_right

    def to_dict(self) -> dict:
        return {**{k: v for k, v in self.__dict__.items() if k != "dir"},
                "dir": str(self.dir), "flipped": self.flipped}


def _item(rec: Record) -> Item:
    # The record holds all a grader reads (gold, answer type); the question is not needed (the
    # judge is not sent it by default, and GPQA's questions are not in the records anyway).
    return Item(rec.id, "", rec.gold, rec.answer_type or "math")


def _run_dirs(dirs: Sequence[str | Path]) -> list[Path]:
    out = []
    for p in map(Path, dirs):
        if not p.is_dir():
            raise UserError(f"{p} is not a directory")
        found = [p] if (p / MANIFEST).is_file() else sorted(m.parent for m in p.rglob(MANIFEST))
        if not found:
            raise UserError(f"{p} holds no runs (no */{MANIFEST})")
        out.extend(found)
    return out


def regrade(dirs: Sequence[str | Path], judge_url: str | None = None,
            judge_model: str | None = None, timeout: float = 5.0,
            dry_run: bool = False) -> list[Regraded]:
    """Regrade every run under `dirs` with today's grader (and the judge, when given); rewrite
    records, manifest and summaries unless `dry_run`. Returns what changed per run."""
    from s1.evaluation.aggregate import load_run, write_summaries

    if (judge_url is None) != (judge_model is None):
        raise UserError("give both --judge-url and --judge-model, or neither")
    judge = None
    if judge_url:
        from s1.evaluation.judge import Judge
        judge = Judge(judge_url, judge_model)
    run_dirs = _run_dirs(dirs)
    runs = [load_run(d) for d in run_dirs]          # every run readable before any is touched
    results = []
    try:
        for run in runs:
            results.append(_regrade_run(run, judge, judge_model, timeout, dry_run))
    finally:
        if judge is not None:
            judge.close()
    if not dry_run:
        # summary.json per run, sweep.json per directory that holds runs (a sweep's top).
        by_parent: dict[Path, list[Path]] = {}
        for d in run_dirs:
            by_parent.setdefault(d.parent, []).append(d)
        for parent, ds in by_parent.items():
            write_summaries(parent, ds)
    return results


def _regrade_run(run, judge, judge_model: str | None, timeout: float,
                 dry_run: bool) -> Regraded:
    records = run.records
    before = run.summary.accuracy if records else None
    grades = grade_many([(r.trace.get("answer", ""), _item(r)) for r in records], judge=judge,
                        timeout=timeout)
    # A reward model read the thinking, which a regrade does not change: its scores stay.
    scorer = (load_scorer(run.setting.scorer)
              if run.setting.scorer and run.setting.aggregate is None else None)
    new: list[Record] = []
    r2w = w2r = changed = 0
    for rec, g in zip(records, grades):
        score = rec.score
        if scorer is not None:     # an oracle's score is the grade itself
            score = float(scorer(_item(rec), Trace.from_dict(rec.trace), g))
        r2w += rec.correct and not g.correct
        w2r += g.correct and not rec.correct
        changed += rec.extracted != g.extracted
        new.append(replace(rec, correct=g.correct, extracted=g.extracted, reason=g.reason,
                           score=score))
    from s1.evaluation.aggregate import RunData

    after = RunData(run.dir, run.manifest, new, run.failed).summary.accuracy if records else None
    result = Regraded(run.name, run.dir, len(records), r2w, w2r, changed, before, after,
                      judge_model)
    if dry_run or not records:
        return result
    # the engine's error records stay as they are: ungraded, for a resume to ask again
    write_jsonl_atomic(run.dir / RECORDS, [r.to_dict() for r in new + run.failed])
    manifest = json.loads((run.dir / MANIFEST).read_text(encoding="utf-8"))
    manifest["config"]["judge"] = judge_model
    manifest.setdefault("regraded", []).append({
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "judge": judge_model,
        "right_to_wrong": r2w, "wrong_to_right": w2r})
    write_json_atomic(run.dir / MANIFEST, manifest)
    return result
