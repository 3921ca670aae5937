"""The step contract of `s1 curate`, the registry of steps, and the runner that caches, resumes
and logs them.

A step is three things, registered under a name with `@step(...)`:

1. **A config dataclass.** Every field has a default and a comment; `__post_init__` validates and
   raises `UserError` with one sentence. `key=value` on the command line and the step's mapping
   in a recipe fill it (values are YAML, checked against the field types).
2. **A function `fn(data: Dataset, config, ctx: Context) -> StepOutput`.** `data` holds at least
   the columns the step declares in `needs` (the runner checks, so a step never meets a missing
   column). It returns the rows it keeps (it may add columns), a `Drops` record of every row it
   removed and why, `artifacts` (extra files: a list of dicts becomes NAME.jsonl, a dict NAME.json,
   a str NAME as text, bytes as is) and `stats` for the report. Same input and config, same
   output: randomness comes from a seed in the config.
3. **Options:** `needs` (input columns), `rowwise=True` when each row is processed on its own
   (quality rules, teacher traces, solver answers, domain labels): the runner then feeds the
   function shards of `shard_rows` rows and stores each finished shard, so a killed run redoes at
   most one shard; `version` (bump it when the code's output changes, to invalidate caches).
   A long rowwise step with its own per-row cache (e.g. traces keyed by `question_hash`) keeps it
   in `ctx.work_dir`: it survives a kill and is removed once the step completes.

A model step, sketched (the shape `traces` / `difficulty` / `domains` / `audit` take):

    @dataclass
    class TracesConfig:
        server: str | None = None      # base URL(s) of OpenAI-compatible servers; None: embedded
        max_tokens: int = 32768
        def __post_init__(self): ...   # UserError on a bad value

    @step("traces", TracesConfig, needs=("question", "question_hash"), rowwise=True, shard_rows=64)
    def traces(data, config, ctx) -> StepOutput:
        done = {r["question_hash"]: r for r in read_jsonl(ctx.work_dir / "traces.jsonl", repair=True)}
        sink = JsonlAppender(ctx.work_dir / "traces.jsonl")   # s1.jsonl: one fsynced line each
        ... generate the rows not in `done` through an engine, append each as it finishes ...
        failed rows go to Drops with reason "teacher-error" and the error as detail
        return StepOutput(data.add_column("thinking", ...).add_column("attempt", ...), drops,
                          stats={"tokens": ..., "cost": ...})

and its module joins `s1.curation.STEP_MODULES`. Recipes name it like any other step.

The runner (`run_step`) keys each run by sha256(step, version, config, input fingerprint): a step
whose output directory already holds that key, complete, is not run again. The input fingerprint
is the content of what the step read (the sha256 of its input's `data.parquet`, recorded as the
step's `output` in step.json), so a step that reruns and changes its output reruns everything
after it, and one whose output came out the same leaves them cached. A step with failed model
requests returns `incomplete` (a reason): it is recorded as not complete, its reply caches are
kept, and the next run runs it again (asking only what failed). Output directories are
written whole in a temporary directory and renamed into place (`step.json` last), so a killed
step never leaves a directory that looks complete.

Registered here: `pool`, `decontaminate`, `dedup`, `near-dup`, `quality`, `proxy-columns`,
`sample`, `select`, `output`. The model-driven steps (`audit`, `traces`, `difficulty`, `domains`)
follow the same contract and are registered by their own modules (see `s1.curation.STEP_MODULES`
and `s1.curation.modelsteps`, which places their reply caches); a recipe naming a step that is
not registered is a UserError listing the registered ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from s1.errors import UserError
from s1.curation.tables import (column, file_fingerprint, load_input, read_table,  # noqa: F401
                                write_parquet)
from s1.jsonl import write_json_atomic

from s1.curation.tables import DATA_FILE, STEP_FILE  # noqa: E402  (one definition)
DROPS_FILE = "drops.jsonl"


class Drops:
    """What a step removed and why: one record per row (question_hash, source_type, reason, detail)."""

    def __init__(self):
        self.records: list[dict] = []

    def add(self, row: dict, reason: str, detail: str = "") -> None:
        self.records.append({"question_hash": row.get("question_hash"),
                             "source_type": row.get("source_type"), "reason": reason,
                             "detail": detail})

    def counts(self) -> dict[str, int]:
        return dict(Counter(r["reason"] for r in self.records).most_common())

    def __len__(self) -> int:
        return len(self.records)


@dataclass
class StepOutput:
    data: Any                                   # datasets.Dataset of the kept rows
    drops: Drops = field(default_factory=Drops)
    artifacts: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    incomplete: str = ""      # why this output is not final (e.g. "3 teacher requests failed"):
                              # the next run runs the step again, asking only what failed


@dataclass
class Context:
    """What the runner gives a step besides its data and config."""

    work_dir: Path                 # private, survives a kill, removed when the step completes
    show_progress: bool = True
    name: str = ""
    replies_dir: Path | None = None   # model reply caches kept across runs (recipes); None: work_dir

    def progress(self, items: Iterable, total: int | None = None, desc: str | None = None):
        from tqdm import tqdm

        return tqdm(items, total=total, desc=desc or self.name, leave=False,
                    disable=not self.show_progress or None, file=sys.stderr)

    def log(self, message: str) -> None:
        print(f"  {self.name}: {message}", file=sys.stderr)


@dataclass(frozen=True)
class Step:
    name: str
    config: type
    fn: Callable[[Any, Any, Context], StepOutput]
    needs: tuple[str, ...] = ()
    rowwise: bool = False
    shard_rows: int = 2000
    version: int = 1
    source: bool = False          # makes its own data (the pool): takes no input
    help: str = ""


STEPS: dict[str, Step] = {}
#: Names reserved for the model-driven steps, which follow this contract from their own modules.
MODEL_STEPS = ("audit", "traces", "difficulty", "domains")


def step(name: str, config: type, needs: tuple[str, ...] = (), rowwise: bool = False,
         shard_rows: int = 2000, version: int = 1, source: bool = False):
    """Register `fn` as the step `name` (the decorator every step module uses)."""
    def wrap(fn):
        doc = (fn.__doc__ or "").strip().splitlines()
        STEPS[name] = Step(name, config, fn, tuple(needs), rowwise, shard_rows, version, source,
                           doc[0] if doc else "")
        return fn
    return wrap


def get_step(name: str) -> Step:
    from s1.curation import load_steps

    load_steps()
    if name not in STEPS:
        later = (" (a model-driven step: it registers from its own module, not in this build)"
                 if name in MODEL_STEPS else "")
        raise UserError(f"unknown curation step {name!r}{later}; registered: {', '.join(STEPS)}")
    return STEPS[name]


# ---------------------------------------------------------------------------------------------
# configs from mappings


def make_config(s: Step, values: dict | None, where: str):
    """The step's config from a mapping (recipe section or key=value pairs), type-checked."""
    from s1.config import coerce

    import typing

    values = dict(values or {})
    hints = typing.get_type_hints(s.config)
    names = [f.name for f in dataclasses.fields(s.config)]
    out = {}
    for k, v in values.items():
        if k not in names:
            raise UserError(f"unknown field {where}.{k} (fields of {s.name}: {', '.join(names)})")
        hint = hints[k]
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if any(dataclasses.is_dataclass(t) for t in (hint, *args)):
            out[k] = v    # a nested config (a model): its own __post_init__ checks the mapping
        elif hint in (list, tuple) or origin in (list, tuple) or (
                origin is not None and (list in args or tuple in args)):
            if isinstance(v, str) and origin is tuple:
                v = [x.strip() for x in v.split(",") if x.strip()]
            if v is not None and not isinstance(v, list):
                v = [v]   # `benchmarks=math500` on the command line means a list of one
            out[k] = v
        elif hint is dict or origin is dict or (origin is not None and dict in typing.get_args(hint)):
            if v is not None and not isinstance(v, dict):
                raise UserError(f"{where}.{k} must be a mapping, not {v!r}")
            out[k] = v
        else:
            out[k] = coerce(v, hint, f"{where}.{k}")
    try:
        return s.config(**out)
    except TypeError as err:
        raise UserError(f"{where}: {err}") from None


def config_dict(config) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def cache_key(s: Step, config, input_fp: str) -> str:
    # a source step's config may name local files: their content is part of its input
    extra = config.fingerprint() if hasattr(config, "fingerprint") else None
    blob = json.dumps({"step": s.name, "version": s.version, "config": config_dict(config),
                       "input": input_fp, "files": extra}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def check_columns(s: Step, data) -> None:
    missing = [c for c in s.needs if c not in data.column_names]
    if missing:
        hint = ("; bring a file into the pool schema with `s1 curate pool FILE --out DIR` first"
                if set(missing) & {"source_type", "question_hash", "metadata"} else "")
        raise UserError(f"step {s.name} needs column(s) {', '.join(missing)}; the input has "
                        f"{', '.join(data.column_names)}{hint}")
    from s1.curation.pool import COLUMNS
    import datasets

    for c in s.needs:
        feat = data.features[c]
        if c in COLUMNS and not (isinstance(feat, datasets.Value) and feat.dtype in ("string", "large_string")):
            raise UserError(f"step {s.name}: column {c} must hold text, not {feat}")


# ---------------------------------------------------------------------------------------------
# running one step


def finished_key(out_dir: Path) -> str | None:
    """The key of the complete step in `out_dir` (None: none, or one with failed requests)."""
    record = out_dir / STEP_FILE
    if record.exists() and (out_dir / DATA_FILE).exists():
        try:
            done = json.loads(record.read_text())
            return done["key"] if done.get("complete", True) else None
        except (ValueError, KeyError):
            return None
    return None


def output_fingerprint(record: dict) -> str:
    """What the next step is keyed by: the content of this step's data (older step.json files
    without it: the key)."""
    return record.get("output") or "step:" + record["key"]


def _write_artifact(path: Path, content) -> None:
    if isinstance(content, list):
        with open(path.with_suffix(".jsonl"), "w", encoding="utf-8") as f:
            for rec in content:
                f.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
    elif isinstance(content, dict):
        path.with_suffix(".json").write_text(json.dumps(content, indent=2, ensure_ascii=False,
                                                        default=str) + "\n", encoding="utf-8")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(str(content), encoding="utf-8")


def _commit(out_dir: Path, result: StepOutput, record: dict) -> None:
    """Write everything into a temporary directory, step.json last, then rename it into place."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write_parquet(result.data, tmp / DATA_FILE)
    # the content, not the config, keys what comes after (pyarrow writes the same table to the
    # same bytes)
    record["output"] = "data:" + file_fingerprint(tmp / DATA_FILE).split(":", 1)[1]
    _write_artifact(tmp / "drops.jsonl", result.drops.records)
    for name, content in result.artifacts.items():
        _write_artifact(tmp / name, content)
    write_json_atomic(tmp / STEP_FILE, record)
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def _run_sharded(s: Step, data, config, ctx: Context, partial: Path, shard_rows: int) -> StepOutput:
    """Rowwise steps: shards are stored as they finish, so a re-run after a kill skips them."""
    import datasets
    import pyarrow.parquet as pq

    meta = partial / "shards.json"
    if meta.exists() and json.loads(meta.read_text()).get("shard_rows") != shard_rows:
        shutil.rmtree(partial)   # another shard size: the finished ranges do not line up
    partial.mkdir(parents=True, exist_ok=True)
    write_json_atomic(meta, {"shard_rows": shard_rows, "rows": len(data)})
    n_shards = max(1, -(-len(data) // shard_rows))
    tables, drops, stats, reused, incomplete = [], Drops(), Counter(), 0, []
    for i in ctx.progress(range(n_shards), total=n_shards, desc=f"{s.name} (shards)"):
        done = partial / f"shard-{i:06d}.parquet"
        side = partial / f"shard-{i:06d}.json"
        if not (done.exists() and side.exists()):
            part = data.select(range(i * shard_rows, min(len(data), (i + 1) * shard_rows)))
            out = s.fn(part, config, ctx)
            write_json_atomic(side, {"drops": out.drops.records, "stats": out.stats,
                                     "incomplete": out.incomplete})
            tmp = done.with_name(f".{done.name}.tmp")
            write_parquet(out.data, tmp)
            os.replace(tmp, done)   # the parquet appears last: its presence means "shard done"
        else:
            reused += 1
        tables.append(pq.read_table(done))
        info = json.loads(side.read_text())
        drops.records.extend(info["drops"])
        stats.update({k: v for k, v in info["stats"].items() if isinstance(v, (int, float))})
        if info.get("incomplete"):
            incomplete.append(f"shard {i}: {info['incomplete']}")
    import pyarrow as pa

    table = pa.concat_tables([t for t in tables if t.num_rows] or tables[:1],
                             promote_options="default")
    stats["shards"], stats["shards_resumed"] = n_shards, reused
    return StepOutput(datasets.Dataset(table), drops, {}, dict(stats), "; ".join(incomplete))


@dataclass
class StepRun:
    name: str
    out_dir: Path
    key: str
    cached: bool
    record: dict


def run_step(name: str, data, input_fp: str, config, out_dir: str | Path,
             progress: bool = True, shard_rows: int | None = None, quiet: bool = False,
             replies_dir: str | Path | None = None) -> StepRun:
    """Run one step into `out_dir`, or reuse it when it already holds this input and config."""
    s = get_step(name)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} exists and is not a directory")
    key = cache_key(s, config, input_fp)
    if finished_key(out_dir) == key:
        record = json.loads((out_dir / STEP_FILE).read_text())
        if not quiet:
            print(f"{name}: cached ({record['rows_in']} -> {record['rows_out']} rows) in {out_dir}",
                  file=sys.stderr)
        return StepRun(name, out_dir, key, True, record)
    if not s.source:
        check_columns(s, data)
    import datasets

    datasets.disable_progress_bars()   # ours is the one progress bar; theirs is per parquet write
    for stale in out_dir.parent.glob(f".{out_dir.name}.tmp-*") if out_dir.parent.exists() else ():
        shutil.rmtree(stale, ignore_errors=True)   # a killed run's half-written output
    partial = out_dir.parent / f".{out_dir.name}.partial-{key}"
    ctx = Context(work_dir=partial / "work", show_progress=progress, name=name,
                  replies_dir=Path(replies_dir) if replies_dir else None)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        if s.rowwise and data is not None:
            result = _run_sharded(s, data, config, ctx, partial, shard_rows or s.shard_rows)
        else:
            result = s.fn(data, config, ctx)
    except BaseException:
        if not any(p.is_file() for p in partial.rglob("*")):
            shutil.rmtree(partial, ignore_errors=True)   # nothing to resume from: no clutter
        raise
    seconds = time.perf_counter() - t0
    rows_in = None if data is None else len(data)
    record = {"step": name, "version": s.version, "key": key, "input": input_fp,
              "config": config_dict(config), "rows_in": rows_in, "rows_out": len(result.data),
              "dropped": result.drops.counts(), "stats": result.stats,
              "seconds": round(seconds, 3), "rows_per_s": round((rows_in or len(result.data))
                                                                / max(seconds, 1e-9), 1),
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "complete": not result.incomplete, "incomplete": result.incomplete}
    _commit(out_dir, result, record)
    if result.incomplete:
        # keep the work directory (its reply caches): the rerun asks only what failed
        for p in partial.iterdir():
            if p != ctx.work_dir:   # finished shards would bring the failures back
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
    else:
        shutil.rmtree(partial, ignore_errors=True)
    if not quiet:
        dropped = ", ".join(f"{k} {v}" for k, v in record["dropped"].items()) or "none dropped"
        print(f"{name}: {rows_in if rows_in is not None else '-'} -> {record['rows_out']} rows "
              f"({dropped}) in {seconds:.1f}s -> {out_dir}", file=sys.stderr)
    if result.incomplete:
        print(f"{name}: INCOMPLETE, {result.incomplete}; run again to ask them again",
              file=sys.stderr)
    return StepRun(name, out_dir, key, False, record)
