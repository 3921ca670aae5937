"""The remote engine's "ids" dialect against a fake vLLM server (tests/fakes/vllm_server.py:
vLLM's documented completions API, backed by the embedded GGUF on loopback)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from s1.errors import UserError
from s1.generation.budget import Budget, Sampling
from s1.generation.engines import Request
from s1.generation.engines.llamacpp import LlamaCppEngine
from s1.generation.engines.remote import _ban_window, load_remote_engine
from s1.generation.formats import FORMATS
from s1.generation.models import embedded_gguf
from tests.fakes.vllm_server import FakeVLLM
from tests.generation.test_remote import QUESTIONS, BansAfterWait, assert_same_greedy_path, with_bans

pytestmark = pytest.mark.slow

N_CTX = 2048


@pytest.fixture(scope="module")
def fake():
    server = FakeVLLM(str(embedded_gguf()), root=str(embedded_gguf()), n_ctx=N_CTX)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def engine(fake):
    return load_remote_engine(fake.url, concurrency=1, backoff=0.01)


@pytest.fixture(scope="module")
def local():
    eng = LlamaCppEngine(str(embedded_gguf()), FORMATS["s1"], n_ctx=N_CTX)
    yield eng
    eng.close()


@pytest.fixture(autouse=True)
def clean(fake):
    fake.fail_next, fake.oov_at = [], None
    yield
    assert fake.errors == []          # no "ASGI callable returned without completing response"


def forcings(trace) -> int:
    return sum(e.kind != "loop" for e in trace.events)


def test_served_model_tokenizer_and_dialect_are_found_and_checked(engine):
    assert engine.dialect == "ids"
    assert engine.model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert engine.context_length == N_CTX                 # vLLM's max_model_len
    assert engine.tokenizer_checked is True               # /tokenize agreed with ours
    assert engine.fmt.name == "s1"


@pytest.mark.parametrize("budget", [
    Budget(max_answer_tokens=16),
    Budget(max_thinking_tokens=10, max_answer_tokens=12),
    Budget(max_thinking_tokens=48, num_ignore=2, max_answer_tokens=12)], ids=["plain", "max10", "ignore2"])
def test_ids_dialect_follows_the_in_process_engine_in_a_few_requests(budget, fake, engine, local):
    requests = [Request(QUESTIONS[0], id="0")]
    aborted = fake.aborted
    [expected] = local.generate(requests, budget)
    [got] = engine.generate(requests, budget)
    assert_same_greedy_path(local, expected, got)
    assert got.meta["requests"] <= forcings(got) + 3, (got.meta, got.events)
    assert got.meta["failed_requests"] == 0 and not got.error
    assert fake.aborted - aborted == got.meta["aborted_streams"]   # each cut closed one stream
    body = fake.bodies[-1]
    assert isinstance(body["prompt"], list) and body["stream"] and body["return_token_ids"]


def test_unset_sampling_fields_are_sent_explicitly(fake, engine):
    engine.generate([Request(QUESTIONS[0])], Budget(max_thinking_tokens=4, max_answer_tokens=2))
    body = fake.bodies[-1]
    assert (body["top_k"], body["min_p"], body["repetition_penalty"]) == (-1, 0.0, 1.0)
    assert fake.effective["top_k"] == 0                   # not the generation config's 20
    sampled = Budget(max_thinking_tokens=4, max_answer_tokens=2,
                     sampling=Sampling(temperature=0.7, top_p=0.9, top_k=5))
    [tr] = engine.generate([Request(QUESTIONS[0], seed=3)], sampled)
    assert (fake.bodies[-1]["top_k"], fake.bodies[-1]["temperature"]) == (5, 0.7)
    assert not tr.error


def test_ids_beyond_the_vocabulary_are_masked_not_sent_back(fake):
    eng = load_remote_engine(fake.url, concurrency=1, backoff=0.01)
    fake.oov_at = 2             # the padded embedding's id wins at the 3rd generated token
    first = len(fake.bodies)
    [tr] = eng.generate([Request(QUESTIONS[0])], Budget(max_thinking_tokens=12, max_answer_tokens=6))
    oov = fake.n_vocab + 3
    assert tr.meta["masked_ids"] == 1 and not tr.error
    assert all(t < fake.n_vocab for t in tr.thinking_ids + tr.answer_ids)
    later = fake.bodies[first + 1:]
    assert later and all(b["logit_bias"][str(oov)] == -100 for b in later)
    assert all(max(b["prompt"]) < fake.n_vocab for b in fake.bodies[first:])


def test_429_is_retried_after_retry_after(fake, engine):
    fake.fail_next = [429, 429]
    [tr] = engine.generate([Request(QUESTIONS[2])], Budget(max_thinking_tokens=6, max_answer_tokens=4))
    assert tr.meta["failed_requests"] == 2 and not tr.error and tr.end


def test_failing_sequences_are_failed_traces_and_the_sweep_goes_on(fake):
    # the client believes in a larger context than the server has: the server refuses the
    # long prompt with vLLM's 400; a prompt too long even for the client fails before sending
    eng = load_remote_engine(fake.url, concurrency=2, backoff=0.01, context_length=N_CTX + 4000)
    long = "Count: " + " ".join(str(i) for i in range(600))
    huge = "Count: " + " ".join(str(i) for i in range(2000))
    traces = eng.generate([Request(long, id="long"), Request(QUESTIONS[2], id="ok"),
                           Request(huge, id="huge")], Budget(max_thinking_tokens=6, max_answer_tokens=4))
    by = {t.id: t for t in traces}
    assert by["long"].finish_reason == "error"
    assert "HTTP 400: This model's maximum context length is 2048 tokens" in by["long"].error
    assert by["long"].meta["requests"] == 1               # a 400 is not retried
    assert by["long"].meta["status"] == by["huge"].meta["status"] == 400   # what a proxy answers
    assert by["huge"].finish_reason == "error" and "leaves no room" in by["huge"].error
    assert by["huge"].meta["requests"] == 0
    assert not by["ok"].error and by["ok"].end


def test_a_stream_longer_than_the_timeout_completes(fake):
    """The timeout bounds the wait for the next byte, not a whole segment (paper-scale
    thinking streams instead of timing out and starting over)."""
    eng = load_remote_engine(fake.url, concurrency=1, timeout=2.0, backoff=0.01)
    budget = Budget(max_thinking_tokens=160, min_thinking_tokens=160, max_answer_tokens=2,
                    ignore_strings=["Wait, let me also write a long list of numbers"])
    [tr] = eng.generate([Request("Write a long story about a dragon.")], budget)
    assert not tr.error and tr.thinking_tokens == 160 and tr.meta["failed_requests"] == 0
    assert tr.wall_s > 2.0, "the generation was too quick to show anything"


def test_a_tokenizer_other_than_the_servers_is_one_clear_error(fake):
    fake.tokenizer_shift = 1
    try:
        with pytest.raises(UserError, match="tokenizer does not match the server's"):
            load_remote_engine(fake.url)
    finally:
        fake.tokenizer_shift = 0


def test_an_unknown_served_model_needs_a_tokenizer(fake):
    name, root = fake.served_name, fake.root
    fake.served_name = fake.root = "private-model"
    try:
        with pytest.raises(UserError, match="cannot tell which tokenizer the served model "
                                            "'private-model' uses; give it with --tokenizer"):
            load_remote_engine(fake.url)
        eng = load_remote_engine(fake.url, tokenizer=str(embedded_gguf()))
        assert eng.model == "private-model" and eng.tokenizer_checked is True
        with pytest.raises(UserError, match="does not serve 'org/other'"):
            load_remote_engine(fake.url, model="org/other")
    finally:
        fake.served_name, fake.root = name, root


def test_banned_ids_go_as_min_tokens_and_stop_the_wait_wait_runs(fake, engine, monkeypatch):
    monkeypatch.setattr(type(engine), "prepare", with_bans(type(engine).prepare))
    # after "The end." the embedded model ends at once, every time (unbanned: ends at 2, 5, 8...)
    budget = Budget(max_thinking_tokens=30, min_thinking_tokens=12, max_answer_tokens=4,
                    ignore_strings=["The end."])
    n = len(engine.tokenizer.encode("The end."))
    first = len(fake.bodies)
    [tr] = engine.generate([Request(QUESTIONS[0])], budget)
    waits = [e for e in tr.events if e.kind == "wait"]
    assert waits and not tr.error
    after_wait = [b for b in fake.bodies[first:] if b.get("min_tokens")]
    assert len(after_wait) == len(waits)
    fids = engine.format_ids(budget)
    ends = {fids.trigger, *fids.eos}
    assert all(b["min_tokens"] == 1 and ends <= set(b["stop_token_ids"]) for b in after_wait)
    # no end right after the ignore string: a model token follows each
    ats = [e.at for e in waits]
    assert all(b - a > n for a, b in zip(ats, ats[1:]))
    assert tr.meta["banned_segments"] == 0          # min_tokens held them back server-side


def test_ban_window_counts_the_banned_steps(engine):
    f = BansAfterWait(Budget(min_thinking_tokens=5, max_thinking_tokens=20),
                      engine.format_ids(Budget()), 20)
    assert _ban_window(f, 100) == (0, set())
    f.step(f.ids.trigger)                       # an end before the minimum: "Wait" queued
    while f.due():
        f.step(None)
    steps, ids = _ban_window(f, 100)
    assert steps == 1 and ids == {f.ids.trigger, *f.ids.eos}


def test_engine_flags_reach_every_command():
    for command in ("generate", "eval"):
        p = subprocess.run([sys.executable, "-m", "s1.cli", command, "--help"], capture_output=True,
                           text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
        for flag in ("--tokenizer", "--concurrency", "--api-key", "--timeout", "--dialect"):
            assert flag in p.stdout, (command, flag)
    p = subprocess.run([sys.executable, "-m", "s1.cli", "generate", "--server", "http://127.0.0.1:9",
                        "--dialect", "grpc", "hi"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        "error: unknown --dialect 'grpc'; choose one of auto, ids, llama-cpp-python"]
