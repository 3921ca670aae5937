"""Runs: (model, engine, benchmark, method setting, seed) → a directory of per-question records.

    DIR/<run-name>/manifest.json   what to reproduce it: config, versions, git revision, command
    DIR/<run-name>/records.jsonl   one line per question × sample, appended and fsynced as it ends
                                   (in question order once the run is complete)
    DIR/<run-name>/summary.json    accuracy, intervals, tokens, compute (written at the end)

Re-running the same command resumes: records already on disk (by key) are not generated again,
a torn last line left by a kill is dropped, and a changed configuration for an existing run
directory is refused rather than mixed. A sample the engine failed (`finish_reason` "error": a
server error, a prompt over the context) is recorded ungraded and leaves its run incomplete; a
resume asks it again, its error record replaced rather than added to. Every pending generation
of every run of a sweep goes to the engine in one call, so the transformers engine keeps its
batch full across budgets.

GPQA's questions stay out of the records: a record holds the question id, the gold answer and
the model's output; the prompt (which contains the question) is replaced by its SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

from s1.errors import UserError
from s1.jsonl import JsonlAppender, read_jsonl, write_json_atomic, write_jsonl_atomic
from s1.evaluation.benchmarks import Benchmark, Item
from s1.evaluation.grading import Grade, grade
from s1.evaluation.methods import SEARCHES, Setting, load_scorer
from s1.evaluation.metrics import estimate_flops
from s1.evaluation.prompts import format_prompt
from s1.evaluation.records import Compute, Record
from s1.evaluation.rewards import load_reward_model, score_solution
from s1.generation.engines.base import Engine, Request
from s1.generation.models import TRAIN_RECORD
from s1.generation.trace import Trace

RECORDS, MANIFEST, SUMMARY = "records.jsonl", "manifest.json", "summary.json"
SWEEP = "sweep.json"
VERSIONED = ("s1", "torch", "transformers", "llama_cpp_python", "math-verify", "numpy")


# ---------------------------------------------------------------------------------------------
# small file helpers


def read_records(path: Path, repair: bool = False) -> list[Record]:
    """Records of a run in file order (a torn last line dropped; cut off the file when `repair`)."""
    return [Record.from_dict(d) for d in read_jsonl(
        path, repair=repair, key="key",
        damaged="the run directory is damaged: move it away and run again")]


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_revision() -> str | None:
    """The checkout's commit (with "-dirty" when it has local changes), or None outside git."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=10)
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def model_shape(engine: Engine) -> dict | None:
    """Parameters, layers and width of the engine's model, for FLOPs; None when unknown."""
    shape = {k: engine.describe().get(k) for k in ("n_params", "n_layers", "d_model")}
    return shape if shape["n_params"] else None


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


# How a run is graded, not what it generated: `s1 regrade` changes these without a token generated
# again, so they are no part of which run a directory holds.
GRADING = ("judge",)
SCORING = ("on_failure",)   # of the setting: how a question that gave up scores


def generation_identity(config: dict) -> dict:
    """A run's config without its grading and scoring choices: what resuming must match."""
    ident = {k: v for k, v in config.items() if k not in GRADING}
    if isinstance(ident.get("setting"), dict):
        ident["setting"] = {k: v for k, v in ident["setting"].items() if k not in SCORING}
    return ident


def is_gpqa(bench_name: str, item: Item | None = None) -> bool:
    return "gpqa" in bench_name.lower() or (item is not None and item.id.startswith("gpqa"))


# ---------------------------------------------------------------------------------------------
# one run


@dataclass
class Run:
    """One (setting, seed) of a sweep on one benchmark, backed by its directory."""

    dir: Path
    setting: Setting
    seed: int
    bench: Benchmark
    config: dict
    manifest: dict
    done: dict[str, Record] = field(default_factory=dict)   # key -> record
    failed: dict[str, Record] = field(default_factory=dict)  # key -> the engine's error record
    _file: Any = None

    @property
    def name(self) -> str:
        return self.dir.name

    def key(self, item: Item, sample: int) -> str:
        return f"{item.id}#{sample}"

    def check(self) -> None:
        """Refuse a directory that holds a different run (before anything is written)."""
        path = self.dir / MANIFEST
        if path.exists():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                raise UserError(f"{path} is unreadable; move the run directory away") from None
            was, now = generation_identity(old.get("config", {})), generation_identity(self.config)
            if was != now:
                diff = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
                raise UserError(f"{self.dir} holds a run with a different configuration "
                                f"({', '.join(diff)} differ); use another --out directory or "
                                f"delete it")
            graded_by = old.get("config", {}).get("judge")
            if graded_by != self.config.get("judge") and read_records(self.dir / RECORDS):
                # Mixed graders in one run would be worse than either: regrade, then resume.
                raise UserError(f"{self.dir} was graded with judge {graded_by!r}, not "
                                f"{self.config.get('judge')!r}; run `s1 regrade {self.dir}` with "
                                "the judge you want first, then resume")
            self.manifest["created"] = old.get("created", self.manifest["created"])
            self.manifest["resumed"] = old.get("resumed", 0) + 1
            if "regraded" in old:
                self.manifest["regraded"] = old["regraded"]

    def open(self) -> None:
        """Load the finished records (cutting a torn last line) and write the manifest. Samples
        the engine failed are pending again: their error records leave the file, so a retry
        replaces them rather than adding a second record of the key."""
        path = self.dir / MANIFEST
        self.dir.mkdir(parents=True, exist_ok=True)
        failed = 0
        for rec in read_records(self.dir / RECORDS, repair=True):
            if rec.failed:
                failed += 1
            else:
                self.done.setdefault(rec.key, rec)   # a duplicate never counts twice
        if failed:
            write_jsonl_atomic(self.dir / RECORDS, [r.to_dict() for r in self.done.values()])
        write_json_atomic(path, self.manifest)

    def pending(self) -> list[tuple[Item, int]]:
        return [(item, s) for item in self.bench for s in range(self.setting.samples)
                if self.key(item, s) not in self.done]

    def append(self, record: Record) -> None:
        if self._file is None:
            self._file = JsonlAppender(self.dir / RECORDS)
        self._file.append(record.to_dict())
        if record.failed:
            self.failed[record.key] = record
        else:
            self.done[record.key] = record

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def settle(self) -> None:
        """A finished run's records in question order (they are appended in the order they
        finish, which batching shuffles), rewritten atomically; an unfinished run is left as is."""
        order = [self.key(item, s) for item in self.bench for s in range(self.setting.samples)]
        if order and all(k in self.done for k in order):
            self.close()
            write_jsonl_atomic(self.dir / RECORDS, [self.done[k].to_dict() for k in order])


# ---------------------------------------------------------------------------------------------
# building the runs of a sweep


def model_card(engine: Engine) -> dict | None:
    """How the model was made, when `s1 train` made it: what was trained, on what, how long
    (its `s1_train.json`), so a report can say which model it shows."""
    ref = getattr(engine, "ref", None)
    record = Path(ref.path) / TRAIN_RECORD if ref is not None and not ref.is_gguf else None
    if record is None or not record.is_file():
        return None
    try:
        r = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    recipe = r.get("recipe") or {}
    data = recipe.get("data") or {}
    return {"model": r.get("model"), "recipe": recipe.get("name"),
            "data": data.get("source"), "examples": data.get("max_examples"),
            "world": data.get("synthetic") or None, "steps": r.get("global_step"),
            "seed": (recipe.get("train") or {}).get("seed"),
            "train_seconds": r.get("train_seconds"), "last_loss": r.get("last_loss")}


def run_name(bench: Benchmark, setting: Setting, seed: int) -> str:
    return f"{bench.name}-{setting.name}-s{seed}"


def make_runs(out: Path, engine: Engine, model_label: str, bench: Benchmark,
              settings: Sequence[Setting], seeds: Sequence[int], protocol: str = "s1",
              judge_model: str | None = None, n_params: float | None = None,
              command: Sequence[str] | None = None, benchmark_args: dict | None = None,
              system: str | None = None) -> list[Run]:
    """The runs of a sweep, their directories checked (nothing is generated yet)."""
    shape = model_shape(engine)
    if n_params:
        shape = {**(shape or {}), "n_params": float(n_params)}
        shape.setdefault("n_layers", None)
        shape.setdefault("d_model", None)
    ids = "\n".join(item.id for item in bench)
    common = {
        "model": model_label, "engine": engine.name,
        "format": engine.fmt.to_dict(),
        "benchmark": {"name": bench.name, "questions": len(bench),
                      "ids_sha256": hashlib.sha256(ids.encode()).hexdigest(),
                      **(benchmark_args or {})},
        "protocol": protocol, "judge": judge_model,
    }
    if system is not None:      # only when given: older runs (no key) still resume
        common["system"] = system
    versions, rev = package_versions(), git_revision()
    card = model_card(engine)
    runs = []
    for setting in settings:
        for seed in seeds:
            config = {**common, "setting": setting.to_dict(), "seed": seed}
            config["setting"]["budget"]["seed"] = seed
            manifest = {
                "name": run_name(bench, setting, seed), "config": config,
                "model_shape": shape, "model_card": card, "versions": versions,
                "git_revision": rev,
                "command": _redacted(list(command) if command is not None else sys.argv),
                "benchmark_source": bench.source, "python": sys.version.split()[0],
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            run = Run(out / run_name(bench, setting, seed), setting, seed, bench, config,
                      manifest)
            runs.append(run)
    return runs


# ---------------------------------------------------------------------------------------------
# generation, grading, recording


@dataclass
class _Job:
    run: Run
    item: Item
    sample: int
    tries: int = 1
    prompt_tokens: int = 0        # summed over tries: every try is compute spent
    generated_tokens: int = 0
    flops: float = 0.0

    def request(self) -> Request:
        s = self.run.setting
        # Distinct, reproducible seeds per (run seed, sample, try); greedy ignores them.
        seed = (self.run.seed * 1_000_003 + self.sample * 10_007 + (self.tries - 1)
                + zlib.crc32(self.item.id.encode()) * 101) % 2**63
        return Request(format_prompt(self.item, self.run.config["protocol"], s.suffix),
                       system=self.run.config.get("system"), seed=seed, id=f"{self.run.name}/{self.run.key(self.item, self.sample)}",
                       budget=s.budget.with_(seed=self.run.seed))


def _redacted(argv: list[str]) -> list[str]:
    """The command line with secrets (--api-key) masked: manifests are shared."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--api-key" and i + 1 < len(out):
            out[i + 1] = "***"
        elif arg.startswith("--api-key="):
            out[i] = "--api-key=***"
    return out


def _generate(engine: Engine, jobs: list[_Job], on_trace: Callable[[_Job, Trace], None]) -> None:
    """Hand every job to the engine in one call, each request carrying its own Budget, so a
    whole sweep shares the batch (transformers) or the concurrency (remote)."""
    if not jobs:
        return
    requests = [j.request() for j in jobs]

    def callback(index: int, trace: Trace) -> None:
        on_trace(jobs[index], trace)

    engine.generate(requests, on_trace=callback)


ENGINE_ERROR = Grade(False, None, "engine_error")   # what a failed sample records: no grade


def _record(job: _Job, trace: Trace, result: Grade, score: float | None, gpqa: bool,
            reward: dict | None = None) -> Record:
    tr = trace.to_dict()
    if gpqa:
        tr["prompt"] = _sha(tr["prompt"])
    accept_max = job.run.setting.accept_max
    return Record(
        key=job.run.key(job.item, job.sample), id=job.item.id, sample=job.sample,
        seed=job.run.seed, request_seed=job.request().seed,
        gold=job.item.answer, answer_type=job.item.answer_type, extracted=result.extracted,
        correct=result.correct, reason=result.reason,
        thinking_tokens=trace.thinking_tokens, answer_tokens=trace.answer_tokens,
        waits=trace.waits, thinking_finish=trace.thinking_finish,
        finish_reason=trace.finish_reason, events=[e.to_dict() for e in trace.events],
        tries=job.tries,
        compute=Compute(job.prompt_tokens, job.generated_tokens, job.flops or None),
        wall_s=round(trace.wall_s, 3), trace=tr,
        accepted=None if accept_max is None else trace.thinking_tokens <= accept_max,
        score=score, reward=reward)


def execute(runs: Sequence[Run], engine: Engine, judge=None, grading_timeout: float = 5.0,
            progress: bool = True) -> None:
    """Generate, grade and record every pending sample of every run, all submitted together.

    Each trace is graded on its answer segment (`trace.answer`: the text after the end of
    thinking, forced "Final Answer:" included) as soon as it finishes, and its record is on
    disk before the next one is handled.
    """
    from tqdm import tqdm

    for run in runs:        # every run checked before any is touched
        run.check()
    for run in runs:
        run.open()
    searches = [run for run in runs if run.setting.method in SEARCHES]
    jobs = [_Job(run, item, s) for run in runs if run.setting.method not in SEARCHES
            for item, s in run.pending()]
    scorers = {r.setting.scorer: load_scorer(r.setting.scorer) for r in runs
               if r.setting.scorer and r.setting.aggregate is None and r.setting.method not in SEARCHES}
    # A reward model is loaded only when a run that reads with it has samples left to score.
    rewards = {j.run.setting.scorer: None for j in jobs if j.run.setting.aggregate is not None}
    for spec in rewards:
        rewards[spec] = load_reward_model(spec, device=getattr(engine, "device", None))
    for job in {j.run.setting.scorer: j for j in jobs if j.run.setting.scorer in rewards}.values():
        rewards[job.run.setting.scorer].check(job.item.question)   # before any generation
    shape = {id(r): r.manifest.get("model_shape") for r in runs}
    done_before = sum(len(r.done) for r in runs)
    total = sum(len(r.bench) * r.setting.samples for r in runs)
    bar = tqdm(total=total, initial=done_before, unit="gen", dynamic_ncols=True,
               disable=not progress, desc="eval", file=sys.stderr)
    started, tokens = time.perf_counter(), 0

    def on_trace(job: _Job, trace: Trace) -> None:
        nonlocal tokens
        job.prompt_tokens += trace.prompt_tokens
        job.generated_tokens += trace.generated_tokens
        s = shape[id(job.run)]
        if s and s.get("n_params"):
            job.flops += estimate_flops(s["n_params"], trace.prompt_tokens,
                                        trace.generated_tokens, s.get("n_layers"),
                                        s.get("d_model"))
        tokens += trace.generated_tokens
        bar.set_postfix_str(f"{tokens / max(1e-9, time.perf_counter() - started):.1f} tok/s",
                            refresh=False)
        setting = job.run.setting
        gpqa = is_gpqa(job.run.bench.name, job.item)
        if trace.finish_reason == "error":
            # Not an answer, so not a wrong one: recorded ungraded, the run stays incomplete and
            # a resume asks again (a server that was down should not lower the accuracy).
            job.run.append(_record(job, trace, ENGINE_ERROR, None, gpqa))
            bar.update(1)
            return
        if not setting.accepts(trace.thinking_tokens, job.tries):
            job.tries += 1
            retries.append(job)
            return
        result = grade(trace.answer, job.item, judge=judge, timeout=grading_timeout)
        reward = None
        if setting.aggregate is not None:      # a reward model reads the thinking's steps
            score, reward = score_solution(rewards[setting.scorer], job.item.question,
                                           trace.thinking or trace.answer, setting.aggregate,
                                           setting.step_delimiter)
        else:
            score = (float(scorers[setting.scorer](job.item, trace, result))
                     if setting.scorer else None)
        job.run.append(_record(job, trace, result, score, gpqa, reward))
        bar.update(1)

    try:
        while jobs:
            retries: list[_Job] = []
            _generate(engine, jobs, on_trace)
            jobs = retries     # rejection sampling: the rejected go round again
        if searches:           # tree searches go question by question (search.py)
            from s1.evaluation.search import execute_searches
            execute_searches(searches, engine, judge, grading_timeout, bar)
        for run in runs:
            run.settle()
    finally:
        bar.close()
        for run in runs:
            run.close()
        for model in rewards.values():
            model.close()
    failed = [r for run in runs for r in run.failed.values()]
    if failed:
        print(f"{len(failed)} sample(s) failed in the engine and were not graded (first: "
              f"{failed[0].trace.get('error') or 'no reason given'}); re-run the same command to "
              "ask them again", file=sys.stderr)
