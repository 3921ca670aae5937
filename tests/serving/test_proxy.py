"""Proxy mode: `s1 serve --upstream` budget-forces a real llama.cpp server on loopback, and
tells its clients when the upstream refuses or fails (a fake vLLM server that can be made to
fail, then killed)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import SMALL_CTX
from tests.serving.conftest import start_serve, stop_serve

pytestmark = pytest.mark.slow

Q = "How many times does the letter r appear in the word raspberry? Think carefully."
SHORT = "What is 7*8?"


@pytest.fixture(scope="module")
def proxy(small_llama_server):
    openai = pytest.importorskip("openai")
    proc, url, log = start_serve("--upstream", small_llama_server)    # concurrency: its default
    try:
        yield url, openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=600)
    finally:
        text = stop_serve(proc, log)
        assert "Traceback" not in text, text[-3000:]
        assert "llama-cpp-python's server runs one request at a time" in text


def ask(client, model, question, stream=False, **budget):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                          temperature=0, max_tokens=24, stream=stream,
                                          extra_body=budget)


def test_proxy_forces_max_and_min_on_an_engine_that_has_neither(proxy, small_llama_server):
    url, client = proxy
    [model] = [m.id for m in client.models.list().data]
    upstream = httpx.get(f"{small_llama_server}/v1/models").json()["data"][0]["id"]
    assert model == upstream        # served under the upstream's own name
    r = ask(client, model, Q, max_thinking_tokens=6)
    info = r.choices[0].model_extra["s1"]
    assert info["thinking_tokens"] == 6 and info["forced_end"]
    assert r.choices[0].message.content.startswith("\nFinal Answer:")
    assert r.usage.completion_tokens_details.reasoning_tokens == 6
    r = ask(client, model, SHORT, min_thinking_tokens=8, max_thinking_tokens=12)
    info = r.choices[0].model_extra["s1"]
    assert 8 <= info["thinking_tokens"] <= 12 and info["waits"] >= 1
    assert "Wait" in r.choices[0].message.model_extra["reasoning_content"]


def test_proxy_streams(proxy):
    url, client = proxy
    model = client.models.list().data[0].id
    reasoning = content = ""
    info = None
    for chunk in ask(client, model, Q, stream=True, max_thinking_tokens=6):
        for c in chunk.choices:
            reasoning += c.delta.model_extra.get("reasoning_content") or ""
            content += c.delta.content or ""
            if c.finish_reason:
                info = c.model_extra["s1"]
    assert info["thinking_tokens"] == 6 and info["forced_end"]
    assert reasoning and content.startswith("\nFinal Answer:")
    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "ok" and health["upstream"] == {"reachable": True}
    assert health["slots"] == 1     # llama-cpp-python serves one request at a time


def test_the_upstreams_own_context_is_used(proxy):
    """The upstream runs with 1024 tokens of the GGUF's 8192: a longer prompt is a 400, not
    an empty "length" answer."""
    url, client = proxy
    openai = pytest.importorskip("openai")
    model = client.models.list().data[0]
    assert model.model_extra["max_model_len"] == SMALL_CTX
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            r = ask(client, model.id, "cat " * 1200, stream=stream, max_thinking_tokens=6)
            list(r) if stream else r
        assert caught.value.code == "context_length_exceeded"


# --- an upstream that fails ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake():
    from s1.generation.models import embedded_gguf
    from tests.fakes.vllm_server import FakeVLLM

    server = FakeVLLM(str(embedded_gguf()), root=str(embedded_gguf()), n_ctx=2048)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def failing(fake):
    openai = pytest.importorskip("openai")
    proc, url, log = start_serve("--upstream", fake.url)
    try:
        yield url, openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=600), log
    finally:
        text = stop_serve(proc, log)
        assert "Traceback" not in text, text[-3000:]


def logged(log) -> str:
    with open(log.name) as f:
        return f.read()


def health(url) -> tuple[int, dict]:
    r = httpx.get(f"{url}/health")
    return r.status_code, r.json()


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_refusal_is_its_4xx(failing, fake, stream):
    url, client, log = failing
    openai = pytest.importorskip("openai")
    fake.fail_next = [422]
    with pytest.raises(openai.UnprocessableEntityError, match="failure 422"):
        r = ask(client, fake.served_name, SHORT, stream=stream, max_thinking_tokens=4)
        list(r) if stream else r
    assert "failed (HTTP 422)" in logged(log)
    assert health(url)[0] == 200        # the client's error: the upstream is fine


@pytest.mark.parametrize("stream", [False, True])
def test_a_failing_upstream_is_a_502_and_health_says_so(failing, fake, stream):
    url, client, log = failing
    openai = pytest.importorskip("openai")
    fake.fail_next = [500] * 4      # the first try and its 3 retries
    with pytest.raises(openai.APIStatusError) as caught:
        r = ask(client, fake.served_name, SHORT, stream=stream, max_thinking_tokens=4)
        list(r) if stream else r
    assert caught.value.status_code == 502 and caught.value.code == "upstream_error"
    assert "failed (HTTP 502)" in logged(log)
    status, body = health(url)
    assert status == 503 and body["status"] == "degraded" and body["last_failure"]["status"] == 502
    r = ask(client, fake.served_name, SHORT, max_thinking_tokens=4)     # it recovers
    assert r.choices[0].model_extra["s1"]["thinking_tokens"] >= 1
    assert health(url)[0] == 200


def test_a_killed_upstream_is_a_503_and_health_says_so(failing, fake):
    url, client, log = failing
    openai = pytest.importorskip("openai")
    fake.server.should_exit = True  # killed (the fixture frees the model afterwards)
    fake.thread.join(10)
    for stream in (False, True):
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as caught:
            r = ask(client, fake.served_name, SHORT, stream=stream, max_thinking_tokens=4)
            list(r) if stream else r
        assert caught.value.status_code == 503 and caught.value.code == "upstream_unavailable"
        assert time.monotonic() - started < 30
    status, body = health(url)
    assert status == 503 and body["status"] == "degraded"
    assert body["upstream"]["reachable"] is False
    assert "failed (HTTP 503)" in logged(log)
