"""`s1 regrade`: stored answers graded again without generating, on a real sweep of the embedded
model (GSM8K, llama.cpp): flips counted, records/manifest/summary rewritten, the run still
resumes without a token generated, and a judge change on resume is refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from s1.evaluation.aggregate import load_run, summarize_run

S1 = [sys.executable, "-m", "s1.cli"]
SWEEP = ["eval", "--benchmark", "gsm8k", "--limit", "3", "--method", "budget",
         "--max-thinking", "8,16", "--max-answer", "16", "--engine", "llama.cpp", "--quiet"]
RUNS = ["gsm8k-budget-max8-ign0-s0", "gsm8k-budget-max16-ign0-s0"]


def s1(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*S1, *args], capture_output=True, text=True, timeout=900)


def records(d: Path) -> list[dict]:
    return [json.loads(x) for x in (d / "records.jsonl").read_text().splitlines() if x.strip()]


def write_records(d: Path, recs: list[dict]) -> None:
    (d / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("regrade") / "runs"
    p = s1(*SWEEP, "--out", str(out))
    assert p.returncode == 0, p.stderr
    return out


@pytest.fixture
def copy(sweep, tmp_path) -> Path:
    out = tmp_path / "runs"
    shutil.copytree(sweep, out)
    return out


def _spoil(d: Path, n: int) -> list[dict]:
    """Stored grades as an older, buggier grader left them: the first n records flipped."""
    good = records(d)
    bad = [dict(r, correct=not r["correct"], reason="old grader") if i < n else r
           for i, r in enumerate(good)]
    write_records(d, bad)
    return good


@pytest.mark.slow
def test_regrade_restores_todays_grades_and_counts_the_flips(copy):
    good = {n: _spoil(copy / n, k) for n, k in zip(RUNS, (2, 1))}
    spoiled_r2w = sum(r["correct"] for n in RUNS for r in good[n][: (2 if n == RUNS[0] else 1)])
    p = s1("regrade", str(copy), "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    by_run = {r["run"]: r for r in out["runs"]}
    assert set(by_run) == set(RUNS)
    assert by_run[RUNS[0]]["flipped"] == 2 and by_run[RUNS[1]]["flipped"] == 1
    # what the old grader called right (spoiled from wrong) becomes wrong again, and vice versa
    assert sum(r["wrong_to_right"] for r in out["runs"]) == spoiled_r2w
    assert sum(r["right_to_wrong"] for r in out["runs"]) == 3 - spoiled_r2w
    for n in RUNS:
        now = records(copy / n)
        assert [(r["key"], r["correct"], r["reason"], r["extracted"]) for r in now] == \
               [(r["key"], r["correct"], r["reason"], r["extracted"]) for r in good[n]]
        # the generations are untouched
        assert [r["trace"] for r in now] == [r["trace"] for r in good[n]]
        s = json.loads((copy / n / "summary.json").read_text())
        assert s["correct"] == sum(r["correct"] for r in good[n])
        assert s["grading_reasons"].get("old grader") is None
        m = json.loads((copy / n / "manifest.json").read_text())
        assert m["regraded"][-1]["right_to_wrong"] == by_run[n]["right_to_wrong"]
        assert m["config"]["judge"] is None
    sweep_json = json.loads((copy / "sweep.json").read_text())
    assert {r["name"]: r["correct"] for r in sweep_json["runs"]} == \
           {n: sum(r["correct"] for r in good[n]) for n in RUNS}
    assert not list(copy.rglob(".*.tmp"))      # nothing half-written left behind

    # Resuming generates nothing: every key is on disk, and the bytes stay as regraded.
    before = {n: (copy / n / "records.jsonl").read_bytes() for n in RUNS}
    p = s1(*SWEEP, "--out", str(copy))
    assert p.returncode == 0, p.stderr
    assert {n: (copy / n / "records.jsonl").read_bytes() for n in RUNS} == before
    m = json.loads((copy / RUNS[0] / "manifest.json").read_text())
    assert m["resumed"] == 1 and len(m["regraded"]) == 1   # the history survives a resume


@pytest.mark.slow
def test_dry_run_writes_nothing_and_a_second_regrade_changes_nothing(copy):
    _spoil(copy / RUNS[0], 1)
    before = {f: f.read_bytes() for f in copy.rglob("*") if f.is_file()}
    p = s1("regrade", str(copy / RUNS[0]), "--dry-run")
    assert p.returncode == 0, p.stderr
    assert "1 grades changed in 1 runs (dry run: nothing written)" in p.stdout
    assert {f: f.read_bytes() for f in copy.rglob("*") if f.is_file()} == before
    assert s1("regrade", str(copy)).returncode == 0
    p = s1("regrade", str(copy), "--json")
    assert all(r["flipped"] == 0 and r["extracted_changed"] == 0
               for r in json.loads(p.stdout)["runs"])


@pytest.mark.slow
def test_regrade_with_a_judge_then_resume_needs_the_same_judge(copy, llama_server):
    url = f"{llama_server}/v1"
    p = s1("regrade", str(copy), "--judge-url", url, "--judge-model", "smol", "--json")
    assert p.returncode == 0, p.stderr
    for n in RUNS:
        recs = records(copy / n)
        m = json.loads((copy / n / "manifest.json").read_text())
        assert m["config"]["judge"] == "smol"
        # The judge is asked only about answers the rules call wrong, and says so in the reason.
        asked = [r for r in recs if "judge" in r["reason"]]
        assert all(not r["reason"].startswith(("integer", "answer line")) for r in asked)
        assert summarize_run(load_run(copy / n)).correct == sum(r["correct"] for r in recs)
    # Resuming without the judge would mix graders: refused, one line, nothing touched.
    before = (copy / RUNS[0] / "manifest.json").read_bytes()
    p = s1(*SWEEP, "--out", str(copy))
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "s1 regrade" in p.stderr
    assert (copy / RUNS[0] / "manifest.json").read_bytes() == before
    # With the judge it was regraded with, it resumes (nothing left to generate).
    p = s1(*SWEEP, "--out", str(copy), "--judge-url", url, "--judge-model", "smol")
    assert p.returncode == 0, p.stderr


def test_bad_regrade_input_is_one_line(tmp_path):
    p = s1("regrade", str(tmp_path))
    assert p.returncode == 2 and "holds no runs" in p.stderr
    p = s1("regrade", str(tmp_path), "--judge-url", "http://127.0.0.1:9/v1")
    assert p.returncode == 2 and "both --judge-url and --judge-model" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
