"""Bad input is a 4xx in OpenAI's shape; a killed client, garbage and a full queue leave the
server answering the next request."""

from __future__ import annotations

import asyncio
import socket
import time
from urllib.parse import urlparse

import httpx
import pytest

from tests.serving.conftest import API_KEY

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {API_KEY}"}
MODEL = "smollm2-135m"


def body(**kw):
    return {"model": MODEL, "messages": [{"role": "user", "content": "What is 2+2?"}],
            "temperature": 0, "max_tokens": 4, **kw}


def post(url, payload=None, content=None, path="/v1/chat/completions", **kw):
    kw.setdefault("timeout", 600)
    return httpx.post(f"{url}{path}", json=payload, content=content,
                      headers={**AUTH, "Content-Type": "application/json"}, **kw)


def assert_error(r, status, *words):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    for w in words:
        assert w in err["message"], err["message"]


def assert_answers(url):
    r = post(url, body())
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["s1"]["thinking_tokens"] >= 1


@pytest.mark.parametrize("payload, words", [
    (body(max_thinking_tokenz=10), ["unknown field", "max_thinking_tokenz"]),
    (body(min_thinking_tokens=50, max_thinking_tokens=10), ["min thinking tokens (50) exceed the maximum (10)"]),
    (body(min_thinking_tokens=-1), ["min_thinking_tokens"]),
    (body(max_thinking_tokens=-3), ["max thinking tokens", "non-negative"]),
    (body(max_thinking_tokens=10, thinking_token_budget=20), ["disagree"]),
    (body(num_ignore=2, ignore_strings=[]), ["ignore string"]),
    (body(ignore_strings=[""]), ["cannot be empty"]),
    (body(thinking_format="nope"), ["unknown thinking_format"]),
    (body(temperature=-1), ["temperature"]),
    (body(seed=-5), ["seed"]),
    (body(top_p=0), ["top_p"]),
    (body(n=0), ["n"]),
    (body(max_tokens=0), ["max_tokens"]),
    (body(stop=[""]), ["stop"]),
    (body(messages=[]), ["messages"]),
    (body(messages=[{"role": "wizard", "content": "hi"}]), ["role"]),
    (body(max_tokens=9000), ["context"]),
    (body(presence_penalty=0.5), ["not supported"]),
    ({"messages": [{"role": "user", "content": "hi"}]}, ["missing field", "model"]),
])
def test_bad_requests_are_400s(serve_url, payload, words):
    assert_error(post(serve_url, payload), 400, *words)


def test_unknown_model_wrong_path_and_garbage(serve_url):
    assert_error(post(serve_url, body(model="gpt-4")), 404, "gpt-4")
    assert_error(post(serve_url, content=b"{not json"), 400, "not valid JSON")
    assert_error(post(serve_url, content=b"\xff\xfe\x00garbage"), 400)
    assert_error(post(serve_url, content=b"[1, 2, 3]"), 400)
    assert_error(post(serve_url, content=b'"text"', path="/v1/completions"), 400)
    assert_error(httpx.get(f"{serve_url}/v1/nothing", headers=AUTH), 404)
    assert_error(httpx.get(f"{serve_url}/v1/chat/completions", headers=AUTH), 405)
    assert_answers(serve_url)


def test_oversize_body_and_prompt(serve_url):
    assert_error(post(serve_url, body(messages=[{"role": "user", "content": "x" * 70_000}])),
                 413, "exceeds 65536 bytes")
    # a chunked body (no Content-Length) that grows past the limit
    chunks = (b'{"model": "smollm2-135m", "prompt": "' + b"y" * 10_000 for _ in range(8))
    assert_error(post(serve_url, content=chunks, path="/v1/completions"), 413)
    # fits the body limit, not the 8192-token context
    r = post(serve_url, {"model": MODEL, "prompt": "cat " * 10_000, "max_tokens": 4},
             path="/v1/completions")
    assert_error(r, 400, "no room")
    assert r.json()["error"]["code"] == "context_length_exceeded"
    assert_answers(serve_url)


def test_raw_garbage_on_the_socket(serve_url):
    u = urlparse(serve_url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(b"\x16\x03\x01\x02\x00garbage that is not HTTP\r\n\r\n")
        s.recv(1024)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:   # a body cut short
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n"
                  b"Content-Type: application/json\r\nAuthorization: Bearer " + API_KEY.encode()
                  + b"\r\n\r\n{\"model\": ")
    assert_answers(serve_url)


def wait_idle(url, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = httpx.get(f"{url}/health").json()
        if h["running"] == 0 and h["queued"] == 0:
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"the server is still busy: {h}")


def test_a_killed_client_frees_its_slot_at_once(serve_url):
    long = body(min_thinking_tokens=3000, max_thinking_tokens=4000, max_tokens=5000, stream=True)
    with httpx.stream("POST", f"{serve_url}/v1/chat/completions", json=long, headers=AUTH,
                      timeout=60) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        got = [next(lines) for _ in range(12)]     # some thinking has streamed
        assert any("reasoning_content" in line for line in got)
        assert httpx.get(f"{serve_url}/health").json()["running"] == 1
        killed = time.monotonic()
    assert wait_idle(serve_url, 60) - killed < 20   # thousands of tokens were left: it was cut
    # the same for a non-streamed request whose client gives up
    with pytest.raises(httpx.ReadTimeout):
        post(serve_url, body(min_thinking_tokens=3000, max_thinking_tokens=4000, max_tokens=5000),
             timeout=3)
    wait_idle(serve_url, 60)
    assert_answers(serve_url)


def test_a_full_queue_answers_429_then_recovers(serve_url):
    async def flood():
        async with httpx.AsyncClient(timeout=600, headers=AUTH) as c:
            reqs = [c.post(f"{serve_url}/v1/chat/completions", json=body(max_tokens=6))
                    for _ in range(16)]
            return await asyncio.gather(*reqs)

    codes = [r.status_code for r in asyncio.run(flood())]
    # 4 wait beside those the engine has taken (4 at most): the rest are refused
    assert codes.count(429) >= 1 and codes.count(200) >= 5 and set(codes) <= {200, 429}, codes
    wait_idle(serve_url, 300)
    assert_answers(serve_url)


@pytest.mark.parametrize("payload, param, words", [
    (body(max_thinking_tokens="x"), "max_thinking_tokens", []),
    (body(max_thinking_tokens=True), "max_thinking_tokens", []),     # not 1 token
    (body(max_tokens=True), "max_tokens", []),
    (body(messages=[{"role": "wizard", "content": "hi"}]), "messages[0].role", []),
    (body(min_thinking_tokens=50, max_thinking_tokens=10), "min_thinking_tokens", ["exceed"]),
    (body(ignore_strings=[""]), "ignore_strings", ["cannot be empty"]),
    (body(min_thinking_tokens=6), "min_thinking_tokens", ["exceeds max_tokens (4)"]),
    (body(min_thinking_tokens=10**9, max_tokens=None), "min_thinking_tokens", ["exceeds the context"]),
    (body(reasoning_effort="low", max_thinking_tokens=10), "reasoning_effort", ["disagree"]),
    (body(reasoning_effort="extreme"), "reasoning_effort", []),
    (body(n=5), "n", ["queues at most 4"]),                              # would be 429 forever
    # what would change the result if it were ignored
    (body(tools=[{"type": "function", "function": {"name": "f"}}]), "tools", ["not supported"]),
    (body(tool_choice="required"), "tool_choice", ["not supported"]),
    (body(response_format={"type": "json_object"}), "response_format", ["not supported"]),
    (body(repetition_penalty=1.2), "repetition_penalty", ["not supported"]),
    (body(min_tokens=5), "min_tokens", ["not supported"]),
    (body(logit_bias={"1": 5}), "logit_bias", ["not supported"]),
    (body(skip_special_tokens=False), "skip_special_tokens", ["not supported"]),
    # unknown names that look like ours misspelt
    (body(max_thinking_token=10), "max_thinking_token", ["did you mean 'max_thinking_tokens'"]),
    (body(thinking_budget=10), "thinking_budget", ["unknown field"]),
    (body(min_thinking=10), "min_thinking", ["unknown field"]),
])
def test_refusals_name_the_field(serve_url, payload, param, words):
    r = post(serve_url, payload)
    assert_error(r, 400, *words)
    assert r.json()["error"]["param"] == param


def test_broken_json_has_no_param(serve_url):
    r = post(serve_url, content=b'{"model": "smollm2-135m", "messages": [')
    assert_error(r, 400, "not valid JSON")
    assert r.json()["error"]["param"] is None


def test_an_empty_queue_is_refused_at_start():
    import os
    import subprocess
    import sys

    from tests.loopback import SRC

    out = subprocess.run([sys.executable, "-m", "s1.cli", "serve", "--max-queue", "0"],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": SRC})
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: --max-queue must be at least 1 (0): every request waits in the queue before "
        "the engine takes it"]
