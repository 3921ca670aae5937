"""Curation recipes: the steps of a run, in order, each with its config, from one YAML file.

```yaml
name: curate-offline
out: runs/curate/offline          # cache/, pipeline.json, s1k.parquet, s1k.jsonl, report.*
steps:                            # run in this order; each takes the previous one's output
  - pool: {sources: [offline]}
  - decontaminate: {benchmarks: [math500, aime24, aime22-24]}
  - quality: {}
  - select: {strategy: s1, size: 1000}
  - output: {trace_column: solution, attempt_column: answer}
```

`input: PATH` (a step directory, Parquet or JSONL) starts from a file instead of a `pool` step.
Overrides: `out=DIR`, `STEP.FIELD=VALUE` (the first step of that name), values parsed as YAML;
a model's settings nest: `traces.teacher.base_url=http://node1:8000/v1,http://node2:8000/v1`,
`difficulty.solvers.qwen7b.model=Qwen/Qwen2.5-7B-Instruct`.
Every step name and field is checked before anything runs. Each step's output is kept under
`out/cache/STEP-KEY/`, KEY hashing the content of its input and its config: a re-run reuses every
step whose input and config did not change, a step with failed model requests runs again (asking
only those) and whatever its new output changes runs after it, and a killed run resumes at the
step (and, for rowwise steps, the shard) it was in.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from s1.curation.steps import (DATA_FILE, STEP_FILE, config_dict, get_step, load_input, make_config,
                               output_fingerprint, read_table, run_step)
from s1.errors import UserError
from s1.jsonl import write_json_atomic
from s1.config import config_path, parse_override


@dataclass
class CurationRecipe:
    name: str
    out: str
    steps: list = field(default_factory=list)        # [(step name, config)]
    input: str | None = None

    def to_dict(self) -> dict:
        d = {"name": self.name, "out": self.out}
        if self.input:
            d["input"] = self.input
        d["steps"] = [{n: config_dict(c)} for n, c in self.steps]
        return d


def recipe_path(name: str) -> Path:
    return config_path(name, kind="curation recipe")


def _entries(raw, path: Path) -> list[tuple[str, dict]]:
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps:
        raise UserError(f"recipe {path}: `steps` must be a non-empty list of {{STEP: {{...}}}}")
    out = []
    for i, entry in enumerate(steps):
        if isinstance(entry, str):
            entry = {entry: {}}
        if not isinstance(entry, dict) or len(entry) != 1:
            raise UserError(f"recipe {path}: steps[{i}] must be one mapping STEP: {{field: value}}")
        (name, values), = entry.items()
        if values is not None and not isinstance(values, dict):
            raise UserError(f"recipe {path}: steps[{i}] ({name}) must map to fields, not {values!r}")
        out.append((str(name), dict(values or {})))
    return out


def set_nested(values: dict, keys: list[str], value, text: str) -> None:
    """values[a][b]...[z] = value for `a.b...z=value` (a model's settings: traces.teacher.model=X)."""
    for k in keys[:-1]:
        inner = values.setdefault(k, {})
        if inner is None:
            inner = values[k] = {}
        if not isinstance(inner, dict):
            raise UserError(f"override {text!r}: {k} is {inner!r}, not a mapping of fields")
        values = inner
    values[keys[-1]] = value


def load_recipe(name: str, overrides: list[str] | tuple[str, ...] = ()) -> CurationRecipe:
    path = recipe_path(name)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"recipe {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise UserError(f"recipe {path} must be a mapping")
    unknown = set(raw) - {"name", "out", "steps", "input"}
    if unknown:
        raise UserError(f"recipe {path} has unknown top-level key(s): {', '.join(sorted(unknown))} "
                        "(known: name, out, input, steps)")
    entries = _entries(raw, path)
    for text in overrides:
        keys, value = parse_override(text)
        if keys in (["out"], ["input"], ["name"]):
            raw[keys[0]] = value
            continue
        if len(keys) < 2:
            raise UserError(f"unknown override key {'.'.join(keys)!r}: use out=DIR or STEP.FIELD=VALUE")
        match = [e for e in entries if e[0] == keys[0]]
        if not match:
            raise UserError(f"override {text!r}: the recipe has no step {keys[0]!r} "
                            f"(steps: {', '.join(n for n, _ in entries)})")
        set_nested(match[0][1], keys[1:], value, text)
    steps = []
    for i, (step_name, values) in enumerate(entries):
        s = get_step(step_name)
        if s.source and i > 0:
            raise UserError(f"recipe {path}: {step_name} makes a pool and can only come first")
        steps.append((step_name, make_config(s, values, step_name)))
    first = get_step(steps[0][0])
    if not first.source and not raw.get("input"):
        raise UserError(f"recipe {path} starts with {steps[0][0]}: begin with a pool step or "
                        "give input: PATH")
    out = raw.get("out") or os.path.join("runs", "curate", path.stem)
    return CurationRecipe(str(raw.get("name") or path.stem), str(out), steps,
                          str(raw["input"]) if raw.get("input") else None)


def _publish(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def run_recipe(recipe: CurationRecipe, progress: bool = True, report: bool = True) -> dict:
    """Run (or resume) every step in order; returns the pipeline record (also pipeline.json)."""
    out = Path(recipe.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"out {out} exists and is not a directory")
    (out / "cache").mkdir(parents=True, exist_ok=True)
    data, fp = (load_input(recipe.input) if recipe.input else (None, "source"))
    stages = []
    for name, config in recipe.steps:
        from s1.curation.steps import cache_key

        key = cache_key(get_step(name), config, fp)
        run = run_step(name, data, fp, config, out / "cache" / f"{name}-{key}", progress=progress,
                       replies_dir=out / "cache" / "replies")
        stages.append({"step": name, "key": run.key, "dir": str(run.out_dir.relative_to(out)),
                       "cached": run.cached, "rows_in": run.record["rows_in"],
                       "rows_out": run.record["rows_out"], "dropped": run.record["dropped"],
                       "stats": run.record["stats"], "seconds": run.record["seconds"],
                       "incomplete": run.record.get("incomplete", "")})
        data, fp = read_table(run.out_dir / DATA_FILE), output_fingerprint(run.record)
        write_json_atomic(out / "pipeline.json", {"recipe": recipe.to_dict(), "stages": stages,
                                                  "complete": False})
    last = out / stages[-1]["dir"]
    published = []
    if recipe.steps[-1][0] == "output":
        _publish(last / DATA_FILE, out / "s1k.parquet")
        _publish(last / "s1k.jsonl", out / "s1k.jsonl")
        published = ["s1k.parquet", "s1k.jsonl"]
    unfinished = [f"{s['step']} ({s['incomplete']})" for s in stages if s["incomplete"]]
    # every step ran; `complete` only when no model request failed (a rerun asks those again)
    record = {"recipe": recipe.to_dict(), "stages": stages, "complete": not unfinished,
              "incomplete": unfinished, "final": str(last.relative_to(out)), "published": published}
    write_json_atomic(out / "pipeline.json", record)
    if report:
        from s1.curation.report import write_report

        for p in write_report(out):
            print(p, file=sys.stderr)
    if unfinished:
        print(f"INCOMPLETE: {'; '.join(unfinished)}: run the recipe again to ask what failed "
              "(the later steps follow)", file=sys.stderr)
    return record


__all__ = ["CurationRecipe", "load_recipe", "run_recipe", "STEP_FILE"]
