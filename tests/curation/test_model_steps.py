"""The model steps (audit, traces, difficulty, domains) under the step contract: the offline recipe
end to end with the embedded model, SIGKILL and resume of `s1 curate traces`, a fleet of servers,
bad recipe keys."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import datasets
import pytest

from hosted_api import HostedAPI, hosted  # noqa: F401  (fixture)

SRC = str(Path(__file__).resolve().parents[2] / "src")
ROOT = Path(SRC).parent
GSM8K = ROOT / "src" / "s1" / "data" / "benchmarks" / "gsm8k_test.jsonl"

STAGES = ["pool", "decontaminate", "dedup", "near-dup", "quality", "sample", "audit", "traces",
          "difficulty", "domains", "select", "output"]


def gsm8k_file(path: Path, n: int) -> Path:
    """n GSM8K test questions in the pool schema (question, question_hash, answer, ...)."""
    from s1.curation.traces import question_hash

    with open(path, "w") as f:
        for _, line in zip(range(n), GSM8K.open()):
            r = json.loads(line)
            f.write(json.dumps({"question": r["question"], "question_hash": question_hash(r["question"]),
                                "answer": r["answer"].split("####")[-1].strip(),
                                "solution": r["answer"], "source_type": "openai/gsm8k",
                                "metadata": "{}"}) + "\n")
    return path


def one_line_exit_2(r) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-2000:]
    return lines[0]


# ---------------------------------------------------------------------------------------------
# the offline recipe, every stage, the embedded model as teacher and solver

@pytest.fixture(scope="module")
def offline_run(tmp_path_factory, s1_cli):
    out = tmp_path_factory.mktemp("model-run") / "offline"
    args = ["curate", "run", "--recipe", "curate-offline", f"out={out}", "--quiet",
            "pool.limit_per_source=150", "sample.size=6", "select.size=3",
            "traces.teacher.max_tokens=24", "difficulty.solvers.smollm2.max_tokens=24",
            "audit.min_similarity=0.05"]   # a low retrieval floor: every question has candidates
    t0 = time.perf_counter()
    r = s1_cli(*args, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, args, time.perf_counter() - t0


@pytest.mark.slow
def test_offline_recipe_runs_every_model_step_end_to_end(offline_run):
    from s1.curation.domains import msc

    out, _, seconds = offline_run
    record = json.loads((out / "pipeline.json").read_text())
    stages = {s["step"]: s for s in record["stages"]}
    assert record["complete"] and [s["step"] for s in record["stages"]] == STAGES
    for a, b in zip(record["stages"], record["stages"][1:]):
        assert b["rows_in"] == a["rows_out"]                       # each takes the previous rows
        assert b["rows_out"] == b["rows_in"] - sum(b["dropped"].values())   # every drop logged
    assert stages["pool"]["rows_out"] == 7 * 150
    assert stages["sample"]["rows_out"] == 6 and stages["sample"]["dropped"] == {
        "not-sampled": stages["sample"]["rows_in"] - 6}
    assert stages["traces"]["stats"]["completion_tokens"] > 0
    assert stages["traces"]["stats"]["teacher"] == "default @ in-process"
    assert set(stages["difficulty"]["dropped"]) <= {"solved-by-smollm2", "solver-error", "no-verdict"}
    assert stages["domains"]["rows_out"] == stages["domains"]["rows_in"]   # offline labels all
    assert stages["select"]["rows_out"] == min(3, stages["select"]["rows_in"]) > 0
    assert stages["select"]["stats"]["length_column"] == "trace_tokens"  # the real one, no proxy
    assert set(stages["audit"]["dropped"]) <= {"paraphrase-contamination"}
    assert (out / stages["audit"]["dir"] / "audit.md").read_text().startswith("# Paraphrase")
    assert list((out / "cache" / "replies").glob("traces-*.jsonl"))  # replies kept across runs

    s1k = datasets.Dataset.from_parquet(str(out / "s1k.parquet"))
    assert len(s1k) == stages["output"]["rows_out"] == stages["select"]["rows_out"]
    assert s1k.column_names[:8] == ["solution", "question", "cot_type", "source_type", "metadata",
                                    "cot", "thinking_trajectories", "attempt"]
    assert all(len(t) == 1 and t[0].strip() for t in s1k["thinking_trajectories"])
    assert set(s1k["domain"]) <= set(msc().values())
    assert all(n > 0 for n in s1k["trace_tokens"])
    report = (out / "report.md").read_text()
    assert "PROXIES" not in report
    # the model steps' figures: the audit's candidate cosines, the teacher's tokens, the solvers
    assert stages["audit"]["stats"]["candidates"] > 0
    assert "## Paraphrase audit" in report and (out / "audit_cosine.png").stat().st_size > 0
    assert f"{stages['traces']['stats']['completion_tokens']} completion tokens" in report
    solved = stages["difficulty"]["dropped"].get("solved-by-smollm2", 0)
    assert f"Dropped as too easy (solved by a solver): smollm2 {solved};" in report
    print(f"offline recipe: {seconds:.0f} s; " + ", ".join(
        f"{s['step']} {s['rows_in']}->{s['rows_out']}" for s in record["stages"]))


@pytest.mark.slow
def test_s1_train_reads_the_model_steps_output(offline_run):
    from s1.training.data import load_records

    out, _, _ = offline_run
    records = load_records(str(out / "s1k.parquet"))
    assert records and all(r.trace and r.question for r in records)


@pytest.mark.slow
def test_rerun_reuses_every_model_step(offline_run, s1_cli):
    out, args, _ = offline_run
    r = s1_cli(*args, "--no-report", cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert all(s["cached"] for s in json.loads((out / "pipeline.json").read_text())["stages"])


# ---------------------------------------------------------------------------------------------
# `s1 curate traces` killed with SIGKILL, then resumed: nothing lost, nothing duplicated

def _kill_and_resume(url: str, tmp_path: Path, s1_cli, extra: list[str]) -> tuple[int, list]:
    from s1.jsonl import read_jsonl

    n = 6
    src = gsm8k_file(tmp_path / "in.jsonl", n)
    out = tmp_path / "traces"
    args = ["curate", "traces", str(src), "--out", str(out), "--quiet", "teacher.api=chat",
            f"teacher.base_url={url}", "teacher.concurrency=1", *extra]
    env = {**os.environ, "PYTHONPATH": SRC, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "s1.cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, before = time.monotonic() + 300, []
    while time.monotonic() < deadline and proc.poll() is None:
        caches = list(tmp_path.glob(".traces.partial-*/work/traces-*.jsonl"))
        if caches and caches[0].read_bytes().count(b"\n") >= 2:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (out / "step.json").exists()                   # nothing that looks complete
    before = read_jsonl(caches[0], key="question_hash")
    assert 2 <= len(before) < n
    r = s1_cli(*args, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    record = json.loads((out / "step.json").read_text())
    got = datasets.Dataset.from_parquet(str(out / "data.parquet"))
    want = datasets.Dataset.from_json(str(src))
    assert got["question_hash"] == want["question_hash"]         # all rows, in order, once each
    assert all(t[0] or a for t, a in zip(got["thinking_trajectories"], got["attempt"]))
    assert record["rows_out"] == n and record["dropped"] == {}
    assert not list(tmp_path.glob(".traces.*"))                  # the work directory is cleaned
    return n, before


def test_traces_step_resumes_after_sigkill_against_a_hosted_api(hosted, tmp_path, s1_cli):
    HostedAPI.first_call_429, HostedAPI.delay_s = False, 0.4
    n, before = _kill_and_resume(hosted, tmp_path, s1_cli, ["teacher.api_key_env=S1_TEST_KEY"])
    asked = HostedAPI.seen
    done_before = {json.loads(line)["question"] for line in (tmp_path / "in.jsonl").open()
                   if json.loads(line)["question_hash"] in {r["question_hash"] for r in before}}
    assert all(asked[f"{q}"] == 1 for q in done_before)          # a kept reply is never asked again
    assert len(asked) == n and sum(asked.values()) <= n + 1       # at most the one in flight twice


@pytest.mark.slow
def test_traces_step_resumes_after_sigkill_against_a_llama_server(llama_server, tmp_path, s1_cli):
    _kill_and_resume(llama_server + "/v1", tmp_path, s1_cli, ["teacher.max_tokens=24",
                                                               "keep_truncated=true"])


# ---------------------------------------------------------------------------------------------
# a fleet: several servers behind one model config

def test_a_fleet_of_servers_shares_the_work(monkeypatch):
    from s1.curation.llm import LLM, LLMConfig

    monkeypatch.setenv("S1_TEST_KEY", "sk-test")
    servers, urls = [], []
    for name in ("A", "B"):
        handler = type(name, (HostedAPI,), {"seen": {}, "first_call_429": False, "delay_s": 0.05})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append((server, handler))
        urls.append(f"http://127.0.0.1:{server.server_address[1]}/v1")
    try:
        config = LLMConfig(api="chat", base_url=",".join(urls), api_key_env="S1_TEST_KEY",
                           concurrency=2)
        assert config.base_url == urls and config.label.endswith("+1 servers")
        with LLM(config) as llm:
            replies = llm.ask([f"What is {i}+1?" for i in range(12)])
        assert all(r.ok and r.text == "Answer: 4" for r in replies)
        counts = [sum(h.seen.values()) for _, h in servers]
        assert sum(counts) == 12 and min(counts) >= 3               # both served a share
    finally:
        for server, _ in servers:
            server.shutdown()


# ---------------------------------------------------------------------------------------------
# bad input: one line, exit 2, nothing left behind

def test_bad_model_step_keys_are_one_line_and_exit_2(tmp_path, s1_cli):
    src = gsm8k_file(tmp_path / "in.jsonl", 2)
    run = ("curate", "run", "--recipe", "curate-offline")
    assert "unknown field traces.teacher.modle" in one_line_exit_2(
        s1_cli(*run, "traces.teacher.modle=x", cwd=ROOT))
    assert "unknown field difficulty.solvers.smollm2.temprature" in one_line_exit_2(
        s1_cli(*run, "difficulty.solvers.smollm2.temprature=0.5", cwd=ROOT))
    assert "unknown grader" in one_line_exit_2(s1_cli(*run, "difficulty.grader=magic", cwd=ROOT))
    assert "unknown domain method" in one_line_exit_2(s1_cli(*run, "domains.method=psychic", cwd=ROOT))
    assert "unknown field audit.embeder" in one_line_exit_2(s1_cli(*run, "audit.embeder=x", cwd=ROOT))
    assert "traces.teacher.max_tokens must be int" in one_line_exit_2(
        s1_cli(*run, "traces.teacher.max_tokens=lots", cwd=ROOT))
    assert "traces.teacher must be a mapping" in one_line_exit_2(
        s1_cli(*run, "traces.teacher=smollm2", cwd=ROOT))
    assert "unknown LLM api" in one_line_exit_2(
        s1_cli("curate", "traces", src, "--out", tmp_path / "o", "teacher.api=grpc"))
    assert "cannot reach the model server at http://127.0.0.1:9/v1" in one_line_exit_2(
        s1_cli("curate", "traces", src, "--out", tmp_path / "o", "teacher.api=chat",
               "teacher.base_url=http://127.0.0.1:9/v1"))
    assert "needs column(s) answer" in one_line_exit_2(
        s1_cli("curate", "difficulty", _without(src, "answer", tmp_path), "--out", tmp_path / "o"))
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))


def _without(src: Path, column: str, tmp_path: Path) -> Path:
    path = tmp_path / f"no-{column}.jsonl"
    rows = [json.loads(line) for line in src.open()]
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != column}) + "\n"
                            for r in rows))
    return path
