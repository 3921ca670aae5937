"""`s1 curate` end to end: recipes, the cache, resume after SIGKILL, the s1K output, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")
ROOT = Path(SRC).parent


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, s1_cli):
    out = tmp_path_factory.mktemp("run") / "offline"
    r = s1_cli("curate", "run", "--recipe", "curate-offline-proxies", f"out={out}", "--quiet",
               "pool.limit_per_source=250", "select.size=200", cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return out, r


def test_offline_recipe_end_to_end(small_run):
    out, r = small_run
    record = json.loads((out / "pipeline.json").read_text())
    assert record["complete"] and [s["step"] for s in record["stages"]] == [
        "pool", "decontaminate", "dedup", "near-dup", "quality", "proxy-columns", "select", "output"]
    for a, b in zip(record["stages"], record["stages"][1:]):
        assert b["rows_in"] == a["rows_out"]          # each step takes the previous one's rows
        assert a["rows_out"] == (a["rows_in"] or a["rows_out"]) - sum(a["dropped"].values())
    s1k = datasets.Dataset.from_parquet(str(out / "s1k.parquet"))
    assert len(s1k) == 200
    assert {"question", "thinking_trajectories", "attempt", "solution", "source_type"} <= set(
        s1k.column_names)
    lines = (out / "s1k.jsonl").read_text().splitlines()
    assert [json.loads(x)["question"] for x in lines] == s1k["question"]
    for name in ("report.md", "report.html", "sources.png", "domains.png"):
        assert (out / name).stat().st_size > 0
    md = (out / "report.md").read_text()
    assert "Counts per stage" in md and "s1K" in md and "PROXIES" in md


def test_s1_train_reads_the_output_as_it_is(small_run):
    from s1.training.data import load_records

    out, _ = small_run
    records = load_records(str(out / "s1k.parquet"))
    assert len(records) == 200 and all(r.trace and r.question for r in records)


def test_rerun_reuses_every_step_and_a_changed_config_reruns_from_there(small_run, s1_cli):
    out, _ = small_run
    r = s1_cli("curate", "run", "--recipe", "curate-offline-proxies", f"out={out}", "--quiet",
               "pool.limit_per_source=250", "select.size=200", "--no-report", cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert all(s["cached"] for s in json.loads((out / "pipeline.json").read_text())["stages"])
    r = s1_cli("curate", "run", "--recipe", "curate-offline-proxies", f"out={out}", "--quiet",
               "pool.limit_per_source=250", "select.size=150", "--no-report", cwd=ROOT)
    stages = json.loads((out / "pipeline.json").read_text())["stages"]
    assert [s["cached"] for s in stages] == [True] * 6 + [False, False]
    assert len(datasets.Dataset.from_parquet(str(out / "s1k.parquet"))) == 150


def test_sigkill_in_a_rowwise_step_resumes_with_nothing_lost_or_duplicated(pool_dir, tmp_path, s1_cli):
    ref = s1_cli("curate", "quality", pool_dir, "--out", tmp_path / "ref", "--quiet",
                 "--shard-rows", "5000")
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "q"
    env = {**os.environ, "PYTHONPATH": SRC, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "s1.cli", "curate", "quality", str(pool_dir),
                             "--out", str(out), "--quiet", "--shard-rows", "100"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done_before = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        partial = list(tmp_path.glob(".q.partial-*/shard-*.parquet"))
        if len(partial) >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            done_before = len(partial)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and done_before >= 3
    assert not (out / "step.json").exists()            # nothing that looks complete
    r = s1_cli("curate", "quality", pool_dir, "--out", out, "--quiet", "--shard-rows", "100")
    assert r.returncode == 0, r.stderr
    record = json.loads((out / "step.json").read_text())
    assert record["stats"]["shards_resumed"] >= done_before   # finished shards were not redone
    got = datasets.Dataset.from_parquet(str(out / "data.parquet"))["question_hash"]
    want = datasets.Dataset.from_parquet(str(tmp_path / "ref" / "data.parquet"))["question_hash"]
    assert got == want                                          # same rows, same order, once each
    drops = (out / "drops.jsonl").read_text().splitlines()
    assert len(drops) == len(set(drops)) == len((tmp_path / "ref" / "drops.jsonl").read_text()
                                                .splitlines())
    assert not list(tmp_path.glob(".q.*"))                       # partial shards cleaned up


def _one_line_exit_2(r):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_bad_input_is_one_line_and_exit_2(tmp_path, s1_cli):
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"problem": "What is 2+2?", "source_type": "x", "question_hash": "a"}\n')
    assert "needs column(s) question" in _one_line_exit_2(
        s1_cli("curate", "quality", missing, "--out", tmp_path / "o"))
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text('{"question": 5, "source_type": "x", "question_hash": "a"}\n')
    assert "must hold text" in _one_line_exit_2(
        s1_cli("curate", "quality", wrong, "--out", tmp_path / "o"))
    assert "not found" in _one_line_exit_2(
        s1_cli("curate", "quality", tmp_path / "nope.jsonl", "--out", tmp_path / "o"))
    assert "unknown field select.sise" in _one_line_exit_2(
        s1_cli("curate", "run", "--recipe", "curate-offline-proxies", "select.sise=3", cwd=ROOT))
    assert "must be int" in _one_line_exit_2(
        s1_cli("curate", "run", "--recipe", "curate-offline-proxies", "select.size=many", cwd=ROOT))
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - pool: {}\n  - audits: {}\n")
    assert "unknown curation step 'audits'" in _one_line_exit_2(
        s1_cli("curate", "run", "--recipe", bad))
    assert "unknown curation step 'traeces'" in _one_line_exit_2(
        s1_cli("curate", "traeces", missing, "--out", tmp_path / "o"))
    bad.write_text("stepz: []\n")
    assert "unknown top-level key" in _one_line_exit_2(s1_cli("curate", "run", "--recipe", bad))
    assert "select.strategy" in _one_line_exit_2(
        s1_cli("curate", "select", missing, "--out", tmp_path / "o", "strategy=best"))
    assert not (tmp_path / "o").exists()


def test_show_prints_the_resolved_recipe(s1_cli):
    r = s1_cli("curate", "run", "--recipe", "curate-offline-proxies", "select.size=10", "--show", cwd=ROOT)
    assert r.returncode == 0 and "size: 10" in r.stdout and "benchmarks:" in r.stdout


def test_sigkill_in_a_whole_step_leaves_nothing_that_looks_complete(pool_dir, tmp_path, s1_cli):
    out = tmp_path / "nd"
    env = {**os.environ, "PYTHONPATH": SRC, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "s1.cli", "curate", "near-dup", str(pool_dir),
                             "--out", str(out), "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(tmp_path.glob(".nd.partial-*/work")):
        time.sleep(0.02)
    time.sleep(0.5)            # inside the step: MinHash over 26K questions takes seconds
    assert proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    r = s1_cli("curate", "near-dup", pool_dir, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    record = json.loads((out / "step.json").read_text())
    assert record["rows_out"] == record["rows_in"] and (out / "near_duplicates.jsonl").exists()
    assert not list(tmp_path.glob(".nd.*"))


# ---------------------------------------------------------------------------------------------
# failed model requests: the step is incomplete, a rerun asks only those, what follows follows

from vllm_like import VLLMLike, vllm_like  # noqa: E402,F401  (fixture)


def test_a_rerun_asks_only_the_failed_requests_and_the_later_steps_follow(vllm_like, tmp_path, capsys):
    from s1.curation.pipeline import load_recipe, run_recipe
    from test_model_steps import gsm8k_file

    src = gsm8k_file(tmp_path / "in.jsonl", 6)
    questions = [json.loads(line)["question"] for line in src.open()]
    recipe = tmp_path / "retry.yaml"
    recipe.write_text(f"""
name: retry
input: {src}
out: {tmp_path / 'out'}
steps:
  - traces:
      teacher: {{api: chat, base_url: {vllm_like}, retries: 0, concurrency: 1, max_failure_rate: 0.5}}
  - sample: {{size: 100}}
  - output: {{}}
""")
    VLLMLike.down = set(questions[:2])            # the teacher fails on two questions
    first = run_recipe(load_recipe(str(recipe)), progress=False, report=False)
    assert not first["complete"] and first["incomplete"] == ["traces (2 teacher requests failed)"]
    assert first["stages"][0]["dropped"] == {"teacher-error": 2}
    assert first["stages"][-1]["rows_out"] == 4
    assert "INCOMPLETE: traces (2 teacher requests failed)" in capsys.readouterr().err

    # still down: the step runs again (only the two are asked), its output is the same, so the
    # steps after it are reused
    second = run_recipe(load_recipe(str(recipe)), progress=False, report=False)
    assert [s["cached"] for s in second["stages"]] == [False, True, True]
    assert {q: VLLMLike.asked[q] for q in questions} == {q: 1 + (q in VLLMLike.down) for q in questions}

    # back up: the two are asked once more, and the set now holds all six (keyed by content, the
    # later steps rerun; before, they were keyed by the traces step's config and stayed stale)
    VLLMLike.down = set()
    third = run_recipe(load_recipe(str(recipe)), progress=False, report=False)
    assert third["complete"] and [s["cached"] for s in third["stages"]] == [False, False, False]
    assert [VLLMLike.asked[q] for q in questions] == [3, 3, 1, 1, 1, 1]
    assert third["stages"][-1]["rows_out"] == 6
    assert len(datasets.Dataset.from_parquet(str(tmp_path / "out" / "s1k.parquet"))) == 6
    fourth = run_recipe(load_recipe(str(recipe)), progress=False, report=False)
    assert all(s["cached"] for s in fourth["stages"]) and sum(VLLMLike.asked.values()) == 10


def test_the_same_table_is_written_to_the_same_bytes(pool, tmp_path):
    """The next step is keyed by the content of the previous one's Parquet: a rerun with the same
    output must give the same fingerprint."""
    from s1.curation.steps import file_fingerprint, write_parquet

    part = pool.select(range(500))
    write_parquet(part, tmp_path / "a.parquet")
    write_parquet(datasets.Dataset.from_list(part.to_list()), tmp_path / "b.parquet")
    assert file_fingerprint(tmp_path / "a.parquet") == file_fingerprint(tmp_path / "b.parquet")
