"""The real `s1 curate` steps on the miniature world (configs/curate-tiny.yaml, shrunk): the
generator's traces read as the teacher's, domains from each family's MSC code, the difficulty step
with a real tiny model as solver, Algorithm 1 over the families."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

from s1.curation.domains import DomainsConfig, domains, msc
from s1.curation.traces import TracesConfig, traces
from s1.miniature.world import benchmark_questions, generate
from tests.curation.conftest import _s1_cli

RECIPE = Path(__file__).parents[2] / "configs" / "curate-tiny.yaml"


def _pool(n: int, seed: int) -> Dataset:
    rows = generate(n, seed, exclude=benchmark_questions())
    return Dataset.from_list([{"question": r["question"], "answer": r["answer"],
                               "metadata": json.dumps({"trace": r["trace"], "msc": r["msc"]})}
                              for r in rows])


def test_traces_from_the_pool_are_the_generators_and_a_row_without_one_is_dropped():
    ds = _pool(12, seed=5)
    rows = ds.to_list()
    rows[3]["metadata"] = json.dumps({"msc": "97"})          # no trace
    dropped = []
    out = traces(Dataset.from_list(rows), TracesConfig(from_pool="trace"),
                 on_drop=lambda row, why: dropped.append(why))
    assert len(out) == 11 and dropped == ["teacher failed: the pool row has no 'trace' in its metadata"]
    want = {r["question"]: r for r in generate(12, 5, exclude=benchmark_questions())}
    for row in out:
        assert row["thinking_trajectories"] == [want[row["question"]]["trace"]]
        assert row["attempt"] == "Answer: " + want[row["question"]]["answer"]
        assert row["teacher"] == "pool:trace" and row["teacher_error"] == ""


def test_domains_from_metadata_are_each_familys_msc_code_and_a_bad_code_drops():
    ds = _pool(12, seed=6)
    rows = ds.to_list()
    rows[0]["metadata"] = json.dumps({"msc": "99"})          # not an MSC code
    dropped = []
    out = domains(Dataset.from_list(rows), DomainsConfig(method="metadata"),
                  on_drop=lambda row, why: dropped.append(why))
    assert len(out) == 11 and dropped == ["no MSC code in the row's metadata"]
    codes = {r["question"]: r["msc"] for r in generate(12, 6, exclude=benchmark_questions())}
    assert [r["domain_code"] for r in out] == [codes[q] for q in out["question"]]
    assert set(out["domain_source"]) == {"metadata"}


@pytest.mark.slow
def test_curate_tiny_recipe_runs_every_step_with_a_real_solver(tmp_path):
    """The shipped recipe, shrunk (48 problems, 16 selected), its solver the shipped s1-tiny: what
    the solver answers right is gone, the traces are the teacher's, and Algorithm 1 spreads the
    set over the families."""
    recipe = RECIPE.read_text() \
        .replace("size: 5000, seed: 1", "size: 48, seed: 3").replace("size: 1000", "size: 16")
    (tmp_path / "r.yaml").write_text(recipe)
    done = _s1_cli("curate", "run", "--recipe", tmp_path / "r.yaml", f"out={tmp_path / 'out'}",
                   "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "out" / "s1k.jsonl").open()]
    assert len(rows) == 16
    pool = {r["question"]: r for r in generate(48, 3, exclude=benchmark_questions())}
    for r in rows:
        assert r["thinking_trajectories"] == [pool[r["question"]]["trace"]]
        assert r["domain"] == msc()[pool[r["question"]]["msc"]]       # the MSC title, as s1K
    stages = {s["step"]: s for s in json.loads((tmp_path / "out" / "pipeline.json").read_text())["stages"]}
    solved = stages["difficulty"]
    assert solved["dropped"].get("solved-by-base", 0) > 0          # what the solver got right is gone
    assert solved["rows_out"] == solved["rows_in"] - solved["dropped"]["solved-by-base"]
    assert solved["stats"]["teacher_correct"] == solved["stats"]["teacher_graded"] == 48
    import pandas as pd
    left = pd.read_parquet(tmp_path / "out" / stages["domains"]["dir"] / "data.parquet")
    assert len(set(left["domain"])) >= 4
    # Algorithm 1 draws a domain first: every family the filters left is in the set
    assert {r["domain"] for r in rows} == set(left["domain"])


def test_where_a_trace_states_its_answer():
    from s1.miniature.experiments import answer_before_end

    assert answer_before_end("7+6=13\nWait, 7+6=13", "13") == {"rechecked": True, "value": True}
    assert answer_before_end("7+6=12\nWait, 7+6=13", "13") == {"rechecked": False, "value": False}
    assert answer_before_end("a 1\nb 1\na 2\nb 2", "2") == {"rechecked": False, "value": True}
    assert answer_before_end("", "2") == {"rechecked": False, "value": False}


def test_experiments_refuse_a_missing_model_or_run_in_one_line(tmp_path, capsys):
    from s1.miniature.experiments import main

    assert main(["table2", "--base", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert main(["confound", "--run", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert main(["table2", "--base", str(tmp_path), "--out", str(tmp_path / "o"), "--arms", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert not (tmp_path / "o").exists()
