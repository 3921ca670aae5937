"""The remote engine against a real llama.cpp server (llama-cpp-python) on loopback."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from s1.errors import UserError
from s1.generation.budget import Budget
from s1.generation.engines import Request
from s1.generation.engines.llamacpp import LlamaCppEngine
from s1.generation.engines.remote import RemoteEngine, load_remote_engine
from s1.generation.forcer import Forcer
from s1.generation.formats import FORMATS, ThinkingFormat
from s1.generation.models import embedded_gguf
from s1.serving.proxy import load_upstream
from tests.conftest import SMALL_CTX
from tests.loopback import Flaky

pytestmark = pytest.mark.slow

QUESTIONS = ["What is 7*8?",
             "How many times does the letter r appear in the word raspberry? Think carefully.",
             "Is 91 prime?"]

BUDGETS = {
    "plain": Budget(max_answer_tokens=24),
    "max10": Budget(max_thinking_tokens=10, max_answer_tokens=16),
    "ignore2": Budget(max_thinking_tokens=64, num_ignore=2, max_answer_tokens=16),
    "min50max80": Budget(max_thinking_tokens=80, min_thinking_tokens=50, max_answer_tokens=16),
    "hmm_alternatively": Budget(max_thinking_tokens=64, num_ignore=2,
                                ignore_strings=["Hmm", "Alternatively"], max_answer_tokens=16),
}


@pytest.fixture(scope="module")
def local():
    engine = LlamaCppEngine(str(embedded_gguf()), FORMATS["s1"], batch_size=1)   # the server's one slot
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def remote(llama_server):
    return load_remote_engine(llama_server, concurrency=1, backoff=0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def outcome(trace):
    return trace.thinking_ids, trace.answer_ids, [e.to_dict() for e in trace.events]


# llama.cpp's logits depend on batch shapes and CPU kernels (a server and an in-process engine on
# one machine can differ in the last bits, two machines more), so greedy paths may part where
# the model's two best tokens are a near-tie. Anything further apart is a real difference.
NEAR_TIE = 0.15


def emitted(local, trace) -> list[int]:
    return trace.thinking_ids + local.tokenizer.encode(trace.end) + trace.answer_ids


def assert_same_greedy_path(local, expected, got) -> None:
    """`got` (remote) follows `expected` (in-process) token for token, events included; or both
    agree up to a token where the model's two choices are within NEAR_TIE of its best logit,
    evaluated here, and the events before that point agree."""
    a, b = emitted(local, expected), emitted(local, got)
    if got.meta["retokenized_prompts"]:
        # A continuation prompt did not re-tokenize to our ids, so from that segment on the
        # server saw other tokens (valid output, no parity): compare the first segment only,
        # the thinking up to the first forcing event.
        first = min([e.at for e in expected.events] + [len(expected.thinking_ids)])
        a, b = a[:first], b[:first]
    k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
    if k is None and got.meta["retokenized_prompts"]:
        return
    if k is None:
        assert outcome(got) == outcome(expected)
        assert (got.thinking_finish, got.finish_reason) == (expected.thinking_finish,
                                                            expected.finish_reason)
        return
    local.llm.reset()
    local.llm.eval(local.tokenizer.encode(expected.prompt) + a[:k])
    logits = local._logits().copy()
    best = float(logits.max())
    gaps = best - float(logits[a[k]]), best - float(logits[b[k]])
    assert max(gaps) <= NEAR_TIE, (
        f"remote and in-process part at emitted token {k} ({a[k]} vs {b[k]}), "
        f"{gaps[0]:.3f} and {gaps[1]:.3f} below the best logit: not a near-tie")
    within = min(k, len(expected.thinking_ids))
    before = lambda t: [e.to_dict() for e in t.events if e.at < within]
    assert before(got) == before(expected)


def fresh_start(local, url):
    """Give both engines a cache that shares nothing with the questions (other tests use the
    server too), so both evaluate the first prompt in the same batches."""
    local.forget_cache()
    httpx.post(f"{url}/v1/completions", json={"prompt": "Hello", "max_tokens": 1}, timeout=60)


@pytest.mark.parametrize("name", list(BUDGETS))
def test_greedy_remote_equals_in_process_llama_cpp(name, local, remote, llama_server):
    budget = BUDGETS[name]
    requests = [Request(q, id=str(i)) for i, q in enumerate(QUESTIONS[:2])]
    fresh_start(local, llama_server)
    expected = local.generate(requests, budget)
    got = remote.generate(requests, budget)
    assert remote.dialect == "llama-cpp-python"
    for a, b in zip(expected, got):
        assert_same_greedy_path(local, a, b)
        assert b.meta["guessed_ids"] == 0
        # about one request per forcing event, not one per token
        forcings = sum(e.kind != "loop" for e in b.events)
        assert b.meta["requests"] <= forcings + 3, (b.meta, b.events)
    # the forcing itself, whatever path the tokens took
    kinds = {e.kind for t in got for e in t.events}
    cap = budget.max_thinking_tokens if isinstance(budget.max_thinking_tokens, int) else None
    for t in got:
        assert cap is None or t.thinking_tokens <= cap
        assert t.end and t.finish_reason in ("stop", "length")
        if not budget.min_thinking_tokens:
            assert t.waits <= budget.num_ignore
    if name == "max10":     # the embedded model thinks ~14 tokens on these: 10 forces the end
        assert "forced_end" in kinds and all(t.thinking_tokens == 10 for t in got
                                              if t.thinking_finish == "max")
    if name in ("ignore2", "min50max80", "hmm_alternatively"):
        assert "wait" in kinds
    if name == "min50max80":
        assert all(50 <= t.thinking_tokens <= 80 for t in got)
    if name == "hmm_alternatively":
        assert "Hmm" in got[0].thinking or "Alternatively" in got[0].thinking


def test_trigger_inside_a_segment_is_cut(llama_server):
    """llama-cpp-python cannot stop on a token id, so it generates past the end of thinking.
    With " is" as the trigger this happens a few tokens in (the model thinks "The answer is: ..."):
    what came after the trigger is dropped and the delimiter's remaining tokens forced instead."""
    fmt = ThinkingFormat("is", start="<|im_start|>think", end=" is: so", forced_suffix="")
    budget = Budget(max_thinking_tokens=24, max_answer_tokens=12)
    requests = [Request(QUESTIONS[0])]
    local = LlamaCppEngine(str(embedded_gguf()), fmt, batch_size=1)
    remote = load_remote_engine(llama_server, fmt=fmt, concurrency=1)
    try:
        fresh_start(local, llama_server)
        expected = local.generate(requests, budget)
        got = remote.generate(requests, budget)
        for a, b in zip(expected, got):
            assert_same_greedy_path(local, a, b)
        trigger = local.tokenizer.encode(" is")[0]
    finally:
        local.close()
    for t in got:
        assert t.thinking_finish == "end"             # the model's own " is" ended it
        assert t.end == " is: so"
        assert trigger not in t.thinking_ids          # thinking stops at the first " is"


def test_concurrent_requests_all_complete_in_order(llama_server):
    engine = load_remote_engine(llama_server, concurrency=3, backoff=0.05)
    budget = Budget(max_thinking_tokens=24, num_ignore=1, max_answer_tokens=8)
    requests = [Request(QUESTIONS[i % 3], id=f"q{i}") for i in range(5)]
    seen = []
    traces = engine.generate(requests, budget, on_trace=lambda i, t: seen.append((i, t.id)))
    assert [t.id for t in traces] == [r.id for r in requests]
    assert sorted(seen) == [(i, f"q{i}") for i in range(5)]
    for t in traces:
        assert t.finish_reason in ("stop", "length")
        assert 0 < t.thinking_tokens <= 24
        assert t.end and t.answer_tokens >= 1


def test_unreachable_server_is_one_clear_user_error_fast():
    port = free_port()    # nothing listens there
    started = time.monotonic()
    with pytest.raises(UserError, match=f"cannot reach the server at http://127.0.0.1:{port}"):
        RemoteEngine(f"http://127.0.0.1:{port}", FORMATS["s1"], tokenizer=None, retries=2,
                     backoff=0.05)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("status", [503, 429, 408])
def test_retries_after_server_errors_give_the_same_result(llama_server, remote, status):
    budget = Budget(max_thinking_tokens=16, max_answer_tokens=8)
    request = Request(QUESTIONS[0])
    direct = remote.generate([request], budget)[0]
    flaky = Flaky(llama_server, failures=2, status=status, headers={"Retry-After": "0"})
    try:
        engine = load_remote_engine(flaky.url, concurrency=1, backoff=0.05, retries=3,
                                    context_length=8192)    # no context probe through Flaky
        got = engine.generate([request], budget)[0]
    finally:
        flaky.close()
    assert got.meta["failed_requests"] == 2 and not got.error
    assert flaky.calls == got.meta["requests"]          # every POST counted, failed ones too
    assert outcome(got) == outcome(direct)


def test_a_refused_sequence_is_a_failed_trace_and_the_batch_goes_on(llama_server):
    """A 4xx other than 408/429 fails that sequence only (not retried); the others complete."""
    flaky = Flaky(llama_server, failures=1, status=400)
    try:
        engine = load_remote_engine(flaky.url, concurrency=1, backoff=0.05, context_length=8192)
        traces = engine.generate([Request(QUESTIONS[0], id="a"), Request(QUESTIONS[2], id="b")],
                                 Budget(max_thinking_tokens=8, max_answer_tokens=8))
    finally:
        flaky.close()
    bad, good = traces
    assert bad.finish_reason == "error" and bad.meta["requests"] == 1
    assert bad.error == ("the server at " + flaky.url + " failed a completion: "
                         "HTTP 400: busy, try later")
    assert bad.to_dict()["error"] == bad.error
    assert good.error == "" and "error" not in good.to_dict()
    assert good.finish_reason in ("stop", "length") and good.end


def test_a_refused_api_key_stops_the_batch_with_one_clear_error(llama_server):
    flaky = Flaky(llama_server, failures=10, status=401)
    try:
        engine = load_remote_engine(flaky.url, concurrency=1, backoff=0.05, context_length=8192)
        with pytest.raises(UserError, match=r"refused a completion \(HTTP 401: busy, try later\) "
                                            r"\(give it with --api-key"):
            engine.generate([Request(QUESTIONS[0])], Budget(max_thinking_tokens=8))
        # in proxy mode the key is the upstream's: the hint names that flag
        proxied = load_upstream(flaky.url, context_length=8192)
        with pytest.raises(UserError, match=r"give it with --upstream-api-key or \$S1_UPSTREAM_API_KEY"):
            proxied.generate([Request(QUESTIONS[0])], Budget(max_thinking_tokens=8))
    finally:
        flaky.close()
    assert flaky.calls == 2


def test_the_servers_own_context_and_single_slot_are_found(small_llama_server, capsys):
    """llama-cpp-python tells neither its context nor that it serves one request at a time
    (a new one interrupts the running stream): both are found, and the defaults follow."""
    capsys.readouterr()
    engine = load_remote_engine(small_llama_server, backoff=0.05)
    assert engine.context_length == SMALL_CTX          # not the GGUF's trained 8192
    assert engine.concurrency == 1
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and "one request at a time" in said[0], said
    budget = Budget(max_thinking_tokens=32, max_answer_tokens=8)
    traces = engine.generate([Request(q, id=q) for q in QUESTIONS[:2]], budget)
    # (concurrency 8 here took 71 requests for 2 questions: the streams cut each other)
    assert all(t.meta["interrupted"] == 0 and not t.error for t in traces)
    assert sum(t.meta["requests"] for t in traces) <= 2 * 3, [t.meta for t in traces]
    # a prompt over the server's context fails with the status a proxy answers, not "length"
    [long] = engine.generate([Request("cat " * 1500)], budget)
    assert long.finish_reason == "error" and long.meta["status"] == 400, long.error


class BansAfterWait(Forcer):
    """The contract's `banned()` (issue 11 part 3), for testing the engine's side alone: the
    end delimiter's first token and EOS are banned at the step right after an ignore string."""

    def banned(self) -> frozenset[int]:
        if self._queue or not self.events or self.events[-1].kind != "wait":
            return frozenset()
        wait = self.ids.ignore[(self._waits - 1) % len(self.ids.ignore)]
        if self.thinking_tokens != self.events[-1].at + len(wait):
            return frozenset()
        return frozenset({self.ids.trigger, *self.ids.eos})


def with_bans(prepare):
    """An engine's `prepare` whose Forcers ban as BansAfterWait does."""
    def prepare_with_bans(self, request):
        prompt, ids, f = prepare(self, request)
        return prompt, ids, BansAfterWait(f.budget, f.ids, f.max_thinking_tokens)
    return prepare_with_bans


def test_a_banned_id_the_server_samples_is_asked_again_with_logit_bias(llama_server, monkeypatch):
    """llama-cpp-python has no min_tokens for our ids: when it samples an end right after
    "Wait", the stream is cut there and that position asked again with the ids biased out."""
    engine = load_remote_engine(llama_server, concurrency=1)
    monkeypatch.setattr(type(engine), "prepare", with_bans(type(engine).prepare))
    # after "The end." the embedded model ends at once, every time (unbanned: ends at 2, 5, 8...)
    budget = Budget(max_thinking_tokens=30, min_thinking_tokens=12, max_answer_tokens=4,
                    ignore_strings=["The end."])
    n = len(engine.tokenizer.encode("The end."))
    [tr] = engine.generate([Request(QUESTIONS[0])], budget)
    ats = [e.at for e in tr.events if e.kind == "wait"]
    assert ats and not tr.error
    assert all(b - a > n for a, b in zip(ats, ats[1:]))     # never an end right after it
    assert tr.meta["banned_segments"] >= 1                  # the model did try
    assert tr.meta["requests"] <= len(ats) + tr.meta["banned_segments"] + 3
