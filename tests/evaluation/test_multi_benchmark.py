"""Several benchmarks in one `s1 eval` (as lm-eval / lighteval take task lists): one set of runs
per benchmark, generated in one engine call, a combined table; bad lists refused up front."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from s1.evaluation.config import EvalConfig
from s1.errors import UserError

S1 = [sys.executable, "-m", "s1.cli"]


def s1(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*S1, *args], capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_three_benchmarks_one_command(tmp_path):
    # A JSONL benchmark of two shipped AIME items stands in for a third named one.
    aime = Path(__file__).parents[2] / "src/s1/data/benchmarks/aime24_nofigures.jsonl"
    mine = tmp_path / "mine.jsonl"
    mine.write_text("".join(aime.read_text().splitlines(keepends=True)[:2]))
    out = tmp_path / "runs"
    p = s1("eval", "--benchmark", f"aime24,math500,{mine}", "--limit", "2",
           "--max-thinking", "4,8", "--max-answer", "8", "--engine", "llama.cpp", "--quiet",
           "--out", str(out), "--answer-field", "answer", "--question-field", "problem",
           "--answer-type", "integer")
    assert p.returncode == 0, p.stderr
    names = sorted(d.name for d in out.iterdir() if d.is_dir())
    assert names == sorted(f"{b}-budget-max{m}-ign0-s0" for b in ("aime24", "math500", "mine")
                           for m in (4, 8))
    for d in out.iterdir():
        if d.is_dir():
            m = json.loads((d / "manifest.json").read_text())
            assert m["config"]["benchmark"]["name"] == d.name.split("-")[0]
            assert len((d / "records.jsonl").read_text().splitlines()) == 2
    # The combined table: one row per run, grouped by benchmark, with its numbers.
    table = [line for line in p.stdout.splitlines() if line.startswith("| ")]
    assert table[0].split("|")[1].strip() == "benchmark" and len(table) == 1 + 6
    sweep = json.loads((out / "sweep.json").read_text())
    by_name = {r["name"]: r for r in sweep["runs"]}
    for row in table[1:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        s = by_name[cells[1]]
        assert cells[0] == s["benchmark"] and cells[2] == f"{100 * s['accuracy']:.1f}"
        assert cells[4] == "2/2"
    assert sorted(c["benchmark"] for c in sweep["curves"]) == ["aime24", "math500", "mine"]


def test_benchmark_lists_are_checked():
    cfg = EvalConfig.load(values={"benchmark": {"name": "aime24, math500"}, "run": {"out": "x"}})
    assert cfg.benchmark.names() == ["aime24", "math500"]
    cfg = EvalConfig.load(values={"benchmark": {"name": ["aime24", "gpqa-diamond"],
                                                "file": "gpqa-diamond=g.csv"},
                                  "run": {"out": "x"}})
    assert cfg.benchmark.files() == {"gpqa-diamond": "g.csv"}
    with pytest.raises(UserError, match="twice"):
        EvalConfig.load(values={"benchmark": {"name": "aime24,aime24"}, "run": {"out": "x"}})
    with pytest.raises(UserError, match="NAME=PATH"):
        EvalConfig.load(values={"benchmark": {"name": "aime24,gpqa-diamond", "file": "g.csv"},
                                "run": {"out": "x"}})
    with pytest.raises(UserError, match="NAME=PATH"):
        EvalConfig.load(values={"benchmark": {"name": "aime24", "file": "math500=m.jsonl"},
                                "run": {"out": "x"}})


def test_an_unknown_benchmark_in_the_list_fails_before_anything_is_written(tmp_path):
    p = s1("eval", "--benchmark", "aime24,nope", "--out", str(tmp_path / "r"))
    assert p.returncode == 2 and "unknown benchmark 'nope'" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
