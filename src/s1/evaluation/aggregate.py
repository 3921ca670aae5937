"""Metrics of runs and sweeps, computed from the records on disk (never from memory), so a
resumed run and an uninterrupted one summarise identically.

Per run: accuracy of the method's prediction with its Wilson interval, pass@k / maj@k / cov@k
where there are k samples, thinking-token statistics, forcing events, compute (prompt and
generated tokens, FLOPs). Per sweep (the runs of one method on one benchmark and model): one
point per setting (seeds averaged, mean ± sd), and the paper's Control, Scaling (linear and
log2, in percentage points) and Performance over those points.

Thinking tokens on the x axis are per question: for parallel methods the sum over the samples a
prediction used (majority at k pays for k thinkings), so sequential and parallel scaling sit on
one axis. FLOPs, likewise per question, are what the matched-compute comparison plots.
"""

from __future__ import annotations

import functools
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from s1.errors import UserError
from s1.evaluation.methods import Setting
from s1.evaluation.curves import Curve, Point, curves, incomplete_runs  # noqa: F401
from s1.evaluation.metrics import accuracy, control, pass_at_k, thinking_stats
from s1.evaluation.records import Record, RunSummary
from s1.evaluation.runs import MANIFEST, RECORDS, read_records


@dataclass
class RunData:
    dir: Path
    manifest: dict
    records: list[Record]              # graded samples: what every metric reads
    failed: list[Record] = field(default_factory=list)   # samples the engine failed (ungraded)
    setting: Setting = field(init=False)

    def __post_init__(self) -> None:
        self.setting = Setting.from_dict(self.manifest["config"]["setting"])

    @functools.cached_property
    def summary(self) -> RunSummary:
        """Computed once per loaded run: summary.json, sweep.json and the curves share it."""
        return summarize_run(self)

    def outcomes_at(self, k: int | None = None) -> dict[str, dict]:
        """`outcomes(self, k)`, computed once per k (a vote clusters answers in the grader)."""
        cache = self.__dict__.setdefault("_outcomes", {})
        if k not in cache:
            cache[k] = outcomes(self, k)
        return cache[k]

    @property
    def name(self) -> str:
        return self.manifest.get("name", self.dir.name)

    @property
    def config(self) -> dict:
        return self.manifest["config"]

    @property
    def seed(self) -> int:
        return self.config["seed"]


def load_run(path: str | Path) -> RunData:
    path = Path(path)
    if not (path / MANIFEST).is_file():
        raise UserError(f"{path} is not a run directory (no {MANIFEST})")
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path / MANIFEST} is unreadable ({e})") from None
    graded, failed = split_failed(read_records(path / RECORDS))
    return RunData(path, manifest, graded, failed)


def split_failed(records: Sequence[Record]) -> tuple[list[Record], list[Record]]:
    """(graded records, the engine's error records of keys with no graded record): an error is
    no answer, so it is never scored, and a retried key counts once."""
    graded = [r for r in records if not r.failed]
    keys = {r.key for r in graded}
    return graded, [r for r in records if r.failed and r.key not in keys]


def find_runs(paths: Sequence[str | Path]) -> list[RunData]:
    """Every run under the given directories (a run directory itself, or a sweep of them)."""
    runs = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise UserError(f"{p} is not a directory")
        if (p / MANIFEST).is_file():
            runs.append(load_run(p))
            continue
        found = sorted(m.parent for m in p.rglob(MANIFEST))
        if not found:
            raise UserError(f"{p} holds no runs (no */{MANIFEST}); run `s1 eval --out {p}` first")
        runs.extend(load_run(d) for d in found)
    return runs


# ---------------------------------------------------------------------------------------------
# per question


def _by_question(records: Sequence[Record]) -> dict[str, list[Record]]:
    out: dict[str, list[Record]] = {}
    for r in sorted(records, key=lambda r: r.sample):
        out.setdefault(r.id, []).append(r)
    return out


def outcomes(run: RunData, k: int | None = None) -> dict[str, dict]:
    """Per question: the prediction from its first k samples, and what those samples cost."""
    out = {}
    for qid, samples in _by_question(run.records).items():
        used = samples[:k] if k else samples
        answer_type = used[0].answer_type or "math"
        pred = run.setting.predict(used, answer_type)
        flops = [s.compute.flops for s in used]
        out[qid] = {
            "correct": pred["correct"], "extracted": pred["extracted"], "gold": used[0].gold,
            "thinking_tokens": sum(s.thinking_tokens for s in used),
            "prompt_tokens": sum(s.compute.prompt_tokens for s in used),
            "generated_tokens": sum(s.compute.generated_tokens for s in used),
            "flops": sum(flops) if all(f is not None for f in flops) else None,
            "samples": len(used),
        }
        if any(s.reward for s in used):    # what the reward model spent reading them
            out[qid]["reward_tokens"] = sum((s.reward or {}).get("tokens", 0) for s in used)
            out[qid]["reward_flops"] = sum((s.reward or {}).get("flops", 0.0) for s in used)
    return out


COMPARED = ("headline", "pass@1", "prediction")   # what `s1 compare --metric` may compare


def compared_scores(run: RunData, metric: str = "headline") -> tuple[dict[str, float], str]:
    """Per-question scores of a run for `s1 compare`, and what they are.

    "prediction": the method's answer per question (cons@n for the R1 protocol, maj@k, best-of-n
    or the single sample); "pass@1": the mean correctness over a question's samples; "headline":
    what the run's table shows (pass@1 for the R1 protocol, the prediction otherwise).
    """
    _check_metric(metric)
    s = run.setting
    if metric == "pass@1" or (metric == "headline" and s.method == "r1"):
        return ({q: statistics.fmean(float(r.correct) for r in v)
                 for q, v in _by_question(run.records).items()},
                f"pass@1 (mean over {s.samples} samples)" if s.samples > 1 else "accuracy")
    label = {"r1": f"cons@{s.samples}", "majority": f"maj@{s.samples}",
             "best-of-n": f"best-of-{s.samples}",
             "weighted-majority": f"weighted maj@{s.samples}"}.get(s.method, "accuracy")
    return {q: float(o["correct"]) for q, o in run.outcomes_at(None).items()}, label


def _check_metric(metric: str) -> None:
    if metric not in COMPARED:
        raise UserError(f"unknown --metric {metric!r}; choose one of {', '.join(COMPARED)}")


def compare_runs(run_a: str | Path, run_b: str | Path, resamples: int = 10_000,
                 seed: int = 0, metric: str = "headline") -> dict:
    """Accuracy of A minus B on their shared questions: a paired bootstrap 95% CI, and the
    p-value of the exact paired test (McNemar's on the discordant questions for 0/1 scores).
    `metric` chooses what is compared (`compared_scores`); the result names it per run."""
    from s1.evaluation.metrics import paired_bootstrap

    if resamples < 1:
        raise UserError("--resamples must be at least 1")
    _check_metric(metric)
    a, b = load_run(run_a), load_run(run_b)
    (sa, what_a), (sb, what_b) = compared_scores(a, metric), compared_scores(b, metric)
    shared = sorted(set(sa) & set(sb))
    if not shared:
        raise UserError(f"{run_a} and {run_b} share no graded question")
    res = paired_bootstrap({q: sa[q] for q in shared}, {q: sb[q] for q in shared},
                           n_resamples=resamples, seed=seed)
    return {"a": a.name, "b": b.name, "metric": metric, "compared_a": what_a,
            "compared_b": what_b,
            "accuracy_a": sum(sa[q] for q in shared) / len(shared),
            "accuracy_b": sum(sb[q] for q in shared) / len(shared),
            "shared": len(shared), "only_a": len(sa) - len(shared), "only_b": len(sb) - len(shared),
            "difference": res.difference, "low": res.low, "high": res.high,
            "p_value": res.p_value, "test": res.test, "a_better": res.a_better,
            "b_better": res.b_better, "resamples": res.resamples}


def _ks(n: int) -> list[int]:
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _by_waits(records: Sequence[Record]) -> dict[str, list[int]]:
    """Samples by the number of ignore strings appended: [correct, samples] for each count."""
    out: dict[str, list[int]] = {}
    for r in sorted(records, key=lambda r: r.waits):
        cell = out.setdefault(str(r.waits), [0, 0])
        cell[0] += bool(r.correct)
        cell[1] += 1
    return out


def _observed_share(records: Sequence[Record], happened) -> float | None:
    """Share of the samples where `happened(record)`, among those whose generation was observed;
    None when none was (imported outputs: how a sample ended is unknown, not "never")."""
    seen = [r for r in records if r.finish_reason != "unknown"]
    return _mean([bool(happened(r)) for r in seen])


def _reward_compute(per_q: Sequence[dict]) -> dict:
    """A reward model's reading, beside the generator's compute (only where one read)."""
    if not any("reward_tokens" in o for o in per_q):
        return {}
    return {"reward_tokens": sum(o.get("reward_tokens", 0) for o in per_q),
            "reward_flops": sum(o.get("reward_flops", 0.0) for o in per_q),
            "reward_flops_per_question": _mean([o.get("reward_flops", 0.0) for o in per_q])}


def summarize_run(run: RunData) -> RunSummary:
    """Everything the report and `s1 compare` need about one run (use `run.summary`: cached)."""
    s = run.setting
    questions = _by_question(run.records)
    expected = run.config["benchmark"]["questions"]
    errors = len(run.failed)
    error_share = errors / (errors + len(run.records)) if errors or run.records else None
    if not questions:
        return RunSummary(name=run.name, questions=0, expected_questions=expected,
                          errors=errors, error_share=error_share)
    outs = run.outcomes_at(None)
    acc = accuracy([o["correct"] for o in outs.values()])
    recs = run.records
    thinking = [r.thinking_tokens for r in recs]
    per_q = list(outs.values())
    flops = [o["flops"] for o in per_q]
    summary = RunSummary(
        name=run.name, method=s.method, label=s.label, setting=s.name,
        params=s.params, seed=run.seed,
        benchmark=run.config["benchmark"]["name"], model=run.config["model"],
        engine=run.config["engine"],
        questions=len(outs), expected_questions=expected,
        complete=(len(outs) == expected and not errors
                  and all(len(v) == s.samples for v in questions.values())),
        samples_per_question=s.samples,
        accuracy=acc.value, wilson_low=acc.low, wilson_high=acc.high, correct=acc.correct,
        a_max=s.a_max,
        thinking=thinking_stats(thinking),
        thinking_per_question=_mean([o["thinking_tokens"] for o in per_q]),
        answer_tokens_mean=_mean([r.answer_tokens for r in recs]),
        waits_mean=_mean([r.waits for r in recs]),
        forced_end_share=_observed_share(recs, lambda r: r.thinking_finish == "max"),
        no_answer=sum(r.extracted is None for r in recs),
        grading_reasons=dict(Counter(r.reason or "unknown" for r in recs)),
        control_per_sample=(control(thinking, s.a_max) if s.a_max is not None else None),
        compute={
            "prompt_tokens": sum(o["prompt_tokens"] for o in per_q),
            "generated_tokens": sum(o["generated_tokens"] for o in per_q),
            "flops": sum(flops) if all(f is not None for f in flops) else None,
            "flops_per_question": _mean(flops) if all(f is not None for f in flops) else None,
            "tokens_per_question": _mean([o["prompt_tokens"] + o["generated_tokens"]
                                          for o in per_q]),
            **_reward_compute(per_q),
        },
        per_question={q: o["correct"] for q, o in outs.items()},
        # The answer ran into the cap (or the context) rather than ending: it may be cut short.
        answer_cut_share=_observed_share(
            recs, lambda r: r.finish_reason == "length" and r.thinking_finish != "context"),
        # The thinking itself filled the context: neither a forced end nor a cut answer.
        context_full_share=_observed_share(recs, lambda r: r.thinking_finish == "context"),
        loop_share=_observed_share(recs, lambda r: any(e.get("kind") == "loop"
                                                       for e in r.events)),
        by_waits=_by_waits(recs),
        errors=errors, error_share=error_share,
    )
    if s.accept_max is not None:
        summary.tries_mean = _mean([r.tries for r in recs])
        summary.tries_max = max(r.tries for r in recs)
        summary.rejection_failed = sum(r.accepted is False for r in recs)
        summary.rejection_on_failure = s.on_failure
        summary.accepted_thinking_mean = _mean([r.thinking_tokens for r in recs if r.accepted])
    if s.samples > 1:
        full = {q: v for q, v in questions.items() if len(v) == s.samples}
        at_k: dict[str, dict] = {}
        for k in _ks(s.samples):
            if not full:
                break
            ok = {q: outcomes_k for q, outcomes_k in run.outcomes_at(k).items() if q in full}
            at_k[str(k)] = {
                "pass": _mean([pass_at_k(len(v), sum(bool(x.correct) for x in v), k)
                               for v in full.values()]),
                "cov": _mean([any(x.correct for x in v[:k]) for v in full.values()]),
                "prediction": _mean([o["correct"] for o in ok.values()]),
                "thinking_per_question": _mean([o["thinking_tokens"] for o in ok.values()]),
                "flops_per_question": (_mean([o["flops"] for o in ok.values()])
                                       if all(o["flops"] is not None for o in ok.values())
                                       else None),
                "tokens_per_question": _mean([o["prompt_tokens"] + o["generated_tokens"]
                                              for o in ok.values()]),
                "correct": sum(o["correct"] for o in ok.values()), "total": len(ok),
            }
        summary.at_k = at_k
    if s.method == "r1":   # the R1 protocol's headline is pass@1, not the vote
        from s1.evaluation.r1 import r1_headline
        r1_headline(summary, questions, outs)
    return summary


# ---------------------------------------------------------------------------------------------
# sweeps


def sweep_summary(runs: Sequence[RunData]) -> dict:
    """What `sweep.json` holds: each run's headline numbers, each curve's metrics, and the runs
    left out of the curves as incomplete."""
    return {"runs": [r.summary.to_dict(per_question=False) for r in runs],
            "curves": [c.to_dict() for c in curves(runs)],
            "incomplete": incomplete_runs(runs)}


def write_summaries(out: str | Path, run_dirs: Sequence[str | Path]) -> list[RunSummary]:
    """summary.json in each run directory and sweep.json over them, each written atomically;
    returns the run summaries (each computed once)."""
    from s1.evaluation.runs import SUMMARY, SWEEP, write_json_atomic

    # The sweep covers every run under `out`, also those of earlier commands (another method
    # on the same questions), so one directory holds one comparable picture.
    everything = {r.dir.resolve(): r for r in find_runs([out])}
    runs = [everything.get(Path(d).resolve()) or load_run(d) for d in run_dirs]
    for run in runs:
        write_json_atomic(run.dir / SUMMARY, run.summary.to_dict())
    write_json_atomic(Path(out) / SWEEP, sweep_summary(list(everything.values())))
    return [run.summary for run in runs]
