"""Proxy mode: `s1 serve --upstream` budget-forces a real llama.cpp server on loopback."""

from __future__ import annotations

import httpx
import pytest

from tests.serving.conftest import start_serve, stop_serve

pytestmark = pytest.mark.slow

Q = "How many times does the letter r appear in the word raspberry? Think carefully."
SHORT = "What is 7*8?"


@pytest.fixture(scope="module")
def proxy(llama_server):
    openai = pytest.importorskip("openai")
    proc, url, log = start_serve("--upstream", llama_server, "--concurrency", "1")
    try:
        yield url, openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=600)
    finally:
        text = stop_serve(proc, log)
        assert "Traceback" not in text, text[-3000:]


def ask(client, model, question, stream=False, **budget):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                          temperature=0, max_tokens=24, stream=stream,
                                          extra_body=budget)


def test_proxy_forces_max_and_min_on_an_engine_that_has_neither(proxy, llama_server):
    url, client = proxy
    [model] = [m.id for m in client.models.list().data]
    upstream = httpx.get(f"{llama_server}/v1/models").json()["data"][0]["id"]
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
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
