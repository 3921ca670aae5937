"""Teacher traces through real engines: a llama.cpp server on loopback (chat and completions),
the in-process embedded model, a kill -9 in the middle of a run, and a loopback stand-in for a
hosted API's rate limiting and failures (429 / 500 cannot be provoked from llama.cpp)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datasets import Dataset

from s1.curation.llm import LLM, LLMConfig, split_thinking
from s1.curation.traces import TracesConfig, question_hash, trace_usage, traces
from s1.errors import UserError
from s1.jsonl import read_jsonl

from hosted_api import HostedAPI, hosted  # noqa: F401  (fixture)

GSM8K = Path(__file__).parents[2] / "src" / "s1" / "data" / "benchmarks" / "gsm8k_test.jsonl"


def questions(n: int) -> Dataset:
    rows = [json.loads(line) for _, line in zip(range(n), GSM8K.open())]
    return Dataset.from_list([{"question": r["question"], "answer": r["answer"].split("####")[-1].strip()}
                              for r in rows])


def test_thinking_is_split_from_reasoning_content_or_think_tags():
    assert split_thinking("42", "let me think") == ("let me think", "42")
    assert split_thinking("<think>\nhmm\n</think>\n\nThe answer is 4", None) == ("hmm", "The answer is 4")
    assert split_thinking("hmm</think>4", None) == ("hmm", "4")   # template opened <think>
    assert split_thinking("just 4", None) == ("", "just 4")


def test_config_is_validated():
    with pytest.raises(UserError, match="unknown LLM api"):
        LLMConfig(api="grpc")
    with pytest.raises(UserError, match="needs base_url"):
        LLMConfig(api="chat")
    with pytest.raises(UserError, match="S1_TEST_NO_SUCH_KEY is not set"):
        LLMConfig(api="chat", base_url="http://127.0.0.1:9/v1", api_key_env="S1_TEST_NO_SUCH_KEY")
    with pytest.raises(UserError, match="{question}"):
        TracesConfig(prompt_template="Solve it.")


def test_unreachable_teacher_is_one_clear_error(tmp_path):
    cfg = TracesConfig(teacher=LLMConfig(api="chat", base_url="http://127.0.0.1:9/v1"),
                       cache=str(tmp_path / "t.jsonl"))
    with pytest.raises(UserError) as err:
        traces(questions(2), cfg)
    assert str(err.value).startswith("cannot reach the model server at http://127.0.0.1:9/v1")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "t.jsonl").exists()


@pytest.mark.slow
@pytest.mark.parametrize("api", ["chat", "completions"])
def test_traces_from_a_real_llama_server_are_cached_and_not_asked_twice(llama_server, tmp_path, api):
    cache = tmp_path / "traces.jsonl"
    teacher = LLMConfig(api=api, base_url=llama_server + "/v1", max_tokens=12, concurrency=2,
                        price_in_per_mtok=1.0, price_out_per_mtok=4.0)
    ds = questions(3)
    # a bare question on /v1/completions often gets an immediate end of text from a small model:
    # completions users give a template, as here
    template = "{question}" if api == "chat" else "Question: {question}\nAnswer:"
    # 12 tokens cut nearly every reply: kept here, flagged
    config = TracesConfig(teacher=teacher, cache=str(cache), prompt_template=template,
                          keep_truncated=True)
    out = traces(ds, config)
    assert out.column_names[-5:] == ["thinking_trajectories", "attempt", "teacher", "teacher_error",
                                     "teacher_truncated"]
    assert len(out) == 3 and not any(out["teacher_error"])
    assert all(isinstance(t, list) and len(t) == 1 for t in out["thinking_trajectories"])
    assert all(a.strip() for a in out["attempt"]) and not any(out["teacher_error"])
    records = read_jsonl(cache, key="question_hash")
    assert [r["question_hash"] for r in sorted(records, key=lambda r: r["question_hash"])] == \
        sorted(question_hash(q) for q in ds["question"])
    usage = json.loads((tmp_path / "traces.jsonl.usage.json").read_text())
    assert usage == trace_usage(cache)
    assert 0 < usage["completion_tokens"] <= 3 * 12 and usage["prompt_tokens"] > 0
    assert usage["cost"] == pytest.approx((usage["prompt_tokens"] + 4 * usage["completion_tokens"]) / 1e6)
    # A rerun on the same cache asks nothing and gives the same columns.
    with LLM(teacher) as llm:
        again = traces(ds, config, llm=llm)
        assert llm.requests == 0
    assert again["attempt"] == out["attempt"]
    assert len(read_jsonl(cache)) == 3


KILL_SCRIPT = """
import json, sys
from datasets import Dataset
from s1.curation.llm import LLMConfig
from s1.curation.traces import TracesConfig, traces
rows = [json.loads(l) for l in open(sys.argv[3])][:int(sys.argv[4])]
ds = Dataset.from_list([{"question": r["question"]} for r in rows])
teacher = LLMConfig(api="chat", base_url=sys.argv[1], max_tokens=24, concurrency=1,
                    api_key_env=sys.argv[5] or None)
traces(ds, TracesConfig(teacher=teacher, cache=sys.argv[2], keep_truncated=True))
"""


def kill_then_resume(url: str, tmp_path: Path, key_env: str = "") -> None:
    """Start a traces run in a child, SIGKILL it once two replies are on disk, run again here."""
    cache, n = tmp_path / "traces.jsonl", 8
    src = str(Path(__file__).parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, url, str(cache), str(GSM8K), str(n), key_env],
                            env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if cache.exists() and cache.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = read_jsonl(cache, key="question_hash")
    assert 2 <= len(before) < n
    teacher = LLMConfig(api="chat", base_url=url, max_tokens=24, concurrency=1, api_key_env=key_env or None)
    ds = questions(n)
    with LLM(teacher) as llm:
        out = traces(ds, TracesConfig(teacher=teacher, cache=str(cache), keep_truncated=True),
                     llm=llm)
        assert llm.requests == n - len(before)   # only what was missing
    after = read_jsonl(cache, key="question_hash")
    hashes = [r["question_hash"] for r in after]
    assert len(hashes) == len(set(hashes)) == n
    assert after[:len(before)] == before          # what was written before the kill is kept as is
    assert len(out) == n and not any(out["teacher_error"])
    assert sorted(hashes) == sorted(question_hash(q) for q in ds["question"])


@pytest.mark.slow
def test_resume_after_sigkill_loses_and_duplicates_nothing(llama_server, tmp_path):
    kill_then_resume(llama_server + "/v1", tmp_path)


def test_resume_after_sigkill_against_a_hosted_api(hosted, tmp_path):
    HostedAPI.first_call_429, HostedAPI.delay_s = False, 0.3
    kill_then_resume(hosted, tmp_path, key_env="S1_TEST_KEY")


def test_backoff_on_429_key_from_env_and_failures_recorded(hosted, tmp_path):
    ds = Dataset.from_list([{"question": "What is 2+2?"}, {"question": "FAIL on purpose"},
                            {"question": "What is 3+1?"}])
    teacher = LLMConfig(api="chat", base_url=hosted, api_key_env="S1_TEST_KEY", retries=2,
                        backoff_s=0.01, requests_per_minute=6000, price_out_per_mtok=2.0,
                        max_failure_rate=0.5)   # one of three fails on purpose
    dropped = []
    cache = tmp_path / "t.jsonl"
    out = traces(ds, TracesConfig(teacher=teacher, cache=str(cache)),
                 on_drop=lambda row, why: dropped.append((row["question"], why)))
    assert out["question"] == ["What is 2+2?", "What is 3+1?"]
    assert out["thinking_trajectories"] == [["thinking about What is 2+2?"], ["thinking about What is 3+1?"]]
    assert out["attempt"] == ["Answer: 4", "Answer: 4"]
    assert dropped == [("FAIL on purpose", "teacher failed: HTTP 500: {\"error\": \"internal\"}")]
    records = {r["question_hash"]: r for r in read_jsonl(cache)}
    assert records[question_hash("What is 2+2?")]["attempts"] == 2          # one 429, then success
    assert records[question_hash("FAIL on purpose")]["attempts"] == 3       # 1 + 2 retries
    assert trace_usage(cache) == {"replies": 3, "failures": 1, "prompt_tokens": 20,
                                  "completion_tokens": 10, "cost": 2e-05}
    kept = traces(ds, TracesConfig(teacher=teacher, cache=str(cache), keep_failed=True, retry_failed=False))
    assert len(kept) == 3 and kept["teacher_error"][1].startswith("HTTP 500")


def test_a_wrong_key_is_one_clear_error(hosted, monkeypatch):
    monkeypatch.setenv("S1_TEST_KEY", "sk-wrong")
    with pytest.raises(UserError, match="refused the API key"):
        LLM(LLMConfig(api="chat", base_url=hosted, api_key_env="S1_TEST_KEY"))


@pytest.mark.slow
def test_in_process_embedded_teacher(tmp_path):
    teacher = LLMConfig(api="local", max_tokens=24, threads=1)
    out = traces(questions(2), TracesConfig(teacher=teacher, cache=str(tmp_path / "t.jsonl"),
                                            keep_truncated=True))
    assert len(out) == 2 and all(t[0].strip() for t in out["thinking_trajectories"])
    assert all(r["completion_tokens"] > 0 for r in read_jsonl(tmp_path / "t.jsonl"))


# ---------------------------------------------------------------------------------------------
# a vLLM-like server: its context, truncated replies, a server that refuses everything

from vllm_like import CONTEXT, VLLMLike, vllm_like  # noqa: E402,F401  (fixture)


@pytest.mark.parametrize("tokenize", [True, False])
def test_max_tokens_is_kept_inside_the_servers_context(vllm_like, tmp_path, tokenize):
    """curate-s1k asks for 32768 tokens; a server with less context answers 400 to every such
    request (vLLM does). Each request is cut to the context left after its prompt: counted by
    the server's /tokenize where it has one, else bounded by the prompt's bytes."""
    VLLMLike.tokenize = tokenize
    teacher = LLMConfig(api="chat", base_url=vllm_like, model="teacher", max_tokens=32768)
    with LLM(teacher) as llm:
        assert llm.context == CONTEXT
        out = traces(questions(3), TracesConfig(teacher=teacher, cache=str(tmp_path / "t.jsonl")),
                     llm=llm)
        assert llm.capped == 3
    assert len(out) == 3 and not any(out["teacher_error"])
    assert all(0 < m <= CONTEXT - 10 for m in VLLMLike.max_tokens_sent)
    if tokenize:   # the exact room: context minus the prompt, as the server counts it
        assert sorted(VLLMLike.max_tokens_sent) == sorted(
            CONTEXT - (len(q.split()) + 10) for q in questions(3)["question"])


def test_a_server_refusing_every_request_stops_the_step_early_in_one_line(vllm_like, tmp_path, s1_cli):
    from test_model_steps import gsm8k_file, one_line_exit_2

    VLLMLike.refuse_all = True
    src = gsm8k_file(tmp_path / "in.jsonl", 30)
    r = s1_cli("curate", "traces", src, "--out", tmp_path / "t", "--quiet", "teacher.api=chat",
               f"teacher.base_url={vllm_like}", "teacher.concurrency=1", "teacher.retries=0")
    line = one_line_exit_2(r)
    assert "failed, more than max_failure_rate 0.1 of 30" in line and "refused on purpose" in line
    assert sum(VLLMLike.asked.values()) == 4     # stopped at the 4th failure (> 10% of 30)
    assert not (tmp_path / "t" / "step.json").exists()
    # the failures asked so far are kept: a rerun with a higher limit asks only the rest again
    VLLMLike.refuse_all = False
    r = s1_cli("curate", "traces", src, "--out", tmp_path / "t", "--quiet", "teacher.api=chat",
               f"teacher.base_url={vllm_like}", "teacher.concurrency=1", "teacher.retries=0")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "t" / "step.json").read_text())["rows_out"] == 30
    assert sum(VLLMLike.asked.values()) == 4 + 30


def test_truncated_replies_are_dropped_or_flagged_never_kept_as_traces(vllm_like, tmp_path):
    """A reply cut at max_tokens has no answer, and being the longest, Algorithm 1 would pick it
    first: it is dropped as teacher-truncated, or kept with teacher_truncated set."""
    ds = Dataset.from_list([{"question": "What is 2+2?"}, {"question": "A LONG one: 3+1?"}])
    teacher = LLMConfig(api="chat", base_url=vllm_like, max_tokens=64)
    dropped = []
    cache = str(tmp_path / "t.jsonl")
    out = traces(ds, TracesConfig(teacher=teacher, cache=cache),
                 on_drop=lambda row, why: dropped.append((row["question"], why)))
    assert out["question"] == ["What is 2+2?"] and out["teacher_truncated"] == [False]
    assert dropped == [("A LONG one: 3+1?", "teacher truncated: cut at max_tokens (7 tokens)")]
    kept = traces(ds, TracesConfig(teacher=teacher, cache=cache, keep_truncated=True))
    assert kept["teacher_truncated"] == [False, True]
    assert VLLMLike.asked["A LONG one: 3+1?"] == 1       # cached: asking again gives the same


def test_a_prompt_that_fills_the_context_is_cut_not_failed_again_and_again(vllm_like, tmp_path):
    long = "Consider " + "this word " * 300 + "and answer."        # > 512 tokens by the server
    ds = Dataset.from_list([{"question": long}, {"question": "What is 2+2?"}])
    teacher = LLMConfig(api="chat", base_url=vllm_like, max_tokens=64)
    dropped = []
    out = traces(ds, TracesConfig(teacher=teacher, cache=str(tmp_path / "t.jsonl")),
                 on_drop=lambda row, why: dropped.append(why))
    assert out["question"] == ["What is 2+2?"]
    assert dropped == ["teacher truncated: cut at max_tokens (0 tokens)"]   # not a failure to retry
    assert long not in VLLMLike.asked                                      # never sent


def test_a_single_step_with_failures_is_incomplete_and_its_rerun_asks_only_those(vllm_like, tmp_path,
                                                                                  s1_cli):
    from test_model_steps import gsm8k_file

    src = gsm8k_file(tmp_path / "in.jsonl", 5)
    down = json.loads(src.read_text().splitlines()[1])["question"]
    VLLMLike.down = {down}
    args = ["curate", "traces", src, "--out", tmp_path / "t", "--quiet", "teacher.api=chat",
            f"teacher.base_url={vllm_like}", "teacher.retries=0", "teacher.max_failure_rate=0.5"]
    r = s1_cli(*args)
    assert r.returncode == 0, r.stderr
    assert "traces: INCOMPLETE, 1 teacher requests failed" in r.stderr
    record = json.loads((tmp_path / "t" / "step.json").read_text())
    assert not record["complete"] and record["rows_out"] == 4
    VLLMLike.down = set()
    r = s1_cli(*args)
    assert r.returncode == 0 and "INCOMPLETE" not in r.stderr, r.stderr
    record = json.loads((tmp_path / "t" / "step.json").read_text())
    assert record["complete"] and record["rows_out"] == 5
    assert VLLMLike.asked[down] == 2 and sum(VLLMLike.asked.values()) == 6
    assert not list(tmp_path.glob(".t.*"))                  # the kept work directory is gone now
