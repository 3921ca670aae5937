"""`s1 serve` with the embedded model, through the official openai client, on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from tests.loopback import SRC
from tests.serving.conftest import API_KEY

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m"
Q = "How many times does the letter r appear in the word raspberry? Think carefully."  # ~22 thinking tokens
SHORT = "What is 7*8?"   # the embedded model thinks 2 tokens on it: a minimum has to add "Wait"


def chat(client, **kw):
    kw.setdefault("model", MODEL)
    kw.setdefault("messages", [{"role": "user", "content": Q}])
    kw.setdefault("temperature", 0)
    extra = {k: kw.pop(k) for k in list(kw) if k in (
        "max_thinking_tokens", "min_thinking_tokens", "num_ignore", "ignore_strings",
        "thinking_format", "thinking_token_budget")}
    return client.chat.completions.create(extra_body=extra or None, **kw)


def s1_of(choice) -> dict:
    return choice.model_extra["s1"]


def test_models_and_health(client, serve_url):
    assert [m.id for m in client.models.list().data] == [MODEL]
    health = httpx.get(f"{serve_url}/health").json()     # no key needed for the health check
    assert health["status"] == "ok" and health["slots"] == 4 and health["max_queue"] == 4


def test_max_thinking_forces_the_end_and_is_reported(client):
    r = chat(client, max_thinking_tokens=6, max_tokens=16)
    choice = r.choices[0]
    info = s1_of(choice)
    assert info["thinking_tokens"] == 6 and info["forced_end"] and info["thinking_finish"] == "max"
    assert choice.message.model_extra["reasoning_content"]
    assert choice.message.content.startswith("\nFinal Answer:")   # the s1 harness's forced suffix
    assert r.usage.completion_tokens_details.reasoning_tokens == 6
    assert 6 < r.usage.completion_tokens <= 16
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_min_thinking_appends_wait(client):
    r = chat(client, messages=[{"role": "user", "content": SHORT}], min_thinking_tokens=8,
             max_thinking_tokens=12, max_tokens=20)
    info = s1_of(r.choices[0])
    assert 8 <= info["thinking_tokens"] <= 12
    assert info["waits"] >= 1 and any(e["kind"] == "wait" for e in info["events"])
    assert "Wait" in r.choices[0].message.model_extra["reasoning_content"]


def test_vllm_alias_and_max_tokens_cap_everything(client):
    r = chat(client, thinking_token_budget=5, max_tokens=12)
    assert s1_of(r.choices[0])["thinking_tokens"] == 5
    assert r.usage.completion_tokens == 12 and r.choices[0].finish_reason == "length"
    r = chat(client, max_tokens=4)      # thinking alone eats max_tokens: no content, as in vLLM
    assert r.usage.completion_tokens == 4 and r.choices[0].message.content == ""


def test_streamed_chat_adds_up_to_the_non_streamed_one(client):
    kw = dict(messages=[{"role": "user", "content": SHORT}], max_thinking_tokens=10,
              min_thinking_tokens=6, max_tokens=20)
    whole = chat(client, **kw)
    stream = chat(client, stream=True, stream_options={"include_usage": True}, **kw)
    reasoning = content = ""
    finish, info, used, order = None, None, None, []
    for chunk in stream:
        if chunk.usage:
            used = chunk.usage
        for c in chunk.choices:
            d = c.delta.model_extra.get("reasoning_content")
            if d:
                reasoning += d
                order.append("r")
            if c.delta.content:
                content += c.delta.content
                order.append("c")
            if c.finish_reason:
                finish, info = c.finish_reason, c.model_extra["s1"]
    assert reasoning == whole.choices[0].message.model_extra["reasoning_content"]
    assert content == whole.choices[0].message.content
    assert finish == whole.choices[0].finish_reason and info == s1_of(whole.choices[0])
    assert order.count("r") > 1 and order == sorted(order, key=lambda x: x != "r")  # thinking first, token by token
    assert used.completion_tokens == whole.usage.completion_tokens
    assert used.completion_tokens_details.reasoning_tokens == info["thinking_tokens"]


def test_completions_streamed_and_not(client):
    kw = dict(model=MODEL, prompt=f"<|im_start|>user\n{Q}<|im_end|>\n<|im_start|>assistant\n",
              max_tokens=14, temperature=0,
              extra_body={"max_thinking_tokens": 6, "min_thinking_tokens": 6})
    whole = client.completions.create(**kw)
    choice = whole.choices[0]
    assert choice.model_extra["s1"]["thinking_tokens"] == 6
    assert choice.model_extra["reasoning_content"] and choice.text.startswith("\nFinal Answer:")
    text = reasoning = ""
    for chunk in client.completions.create(stream=True, **kw):
        for c in chunk.choices:
            text += c.text
            reasoning += c.model_extra.get("reasoning_content") or ""
    assert (text, reasoning) == (choice.text, choice.model_extra["reasoning_content"])


def test_n_seed_and_stop(client):
    r = chat(client, n=3, temperature=1.0, seed=7, max_thinking_tokens=6, max_tokens=10)
    assert [c.index for c in r.choices] == [0, 1, 2]
    texts = [c.message.model_extra["reasoning_content"] for c in r.choices]
    assert len(set(texts)) > 1      # sampled choices differ
    again = chat(client, n=3, temperature=1.0, seed=7, max_thinking_tokens=6, max_tokens=10)
    assert [c.message.model_extra["reasoning_content"] for c in again.choices] == texts
    r = chat(client, max_thinking_tokens=6, max_tokens=16, stop=[":"])
    assert r.choices[0].message.content == "\nFinal Answer" and r.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].delta.content or "" for c in chat(
        client, max_thinking_tokens=6, max_tokens=16, stop=[":"], stream=True) if c.choices)
    assert streamed == "\nFinal Answer"


def test_greedy_parity_with_s1_generate(client):
    """The same request through `s1 generate` (transformers engine) and through the server."""
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run([sys.executable, "-m", "s1.cli", "generate", SHORT, "--engine", "transformers",
                          "--max-thinking", "10", "--min-thinking", "6", "--max-answer", "12",
                          "--threads", "2", "--json"],
                         capture_output=True, text=True, env=env, timeout=600, check=True)
    gen = json.loads(out.stdout.strip().splitlines()[-1])
    r = chat(client, messages=[{"role": "user", "content": SHORT}], max_thinking_tokens=10,
             min_thinking_tokens=6, max_tokens=40)
    msg = r.choices[0].message
    assert msg.model_extra["reasoning_content"] == gen["thinking"]
    assert s1_of(r.choices[0])["events"] == gen["events"]
    assert msg.content.startswith(gen["answer"])     # the server's answer may run past 12 tokens
    if gen["finish_reason"] == "stop":
        assert msg.content == gen["answer"]


def test_the_api_key_is_required(serve_url):
    r = httpx.get(f"{serve_url}/v1/models")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.get(f"{serve_url}/v1/models", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401


def test_fields_tooling_sends_are_taken(client, serve_url):
    """What agent frameworks and SDKs send by default: accepted, honoured where they can be
    (top_k, include_reasoning, chat_template_kwargs) and otherwise ignored, not refused."""
    kw = dict(model=MODEL, messages=[{"role": "user", "content": SHORT}], temperature=0,
              max_tokens=12)
    plain = client.chat.completions.create(extra_body={"max_thinking_tokens": 6}, **kw)
    r = client.chat.completions.create(
        tools=[], tool_choice="none", parallel_tool_calls=False, response_format={"type": "text"},
        store=False, metadata={"run": "7"}, service_tier="auto", extra_body={
            "top_k": 1, "min_tokens": 0, "repetition_penalty": 1.0, "skip_special_tokens": True,
            "chat_template_kwargs": {"enable_thinking": True}, "include_reasoning": True,
            "max_thinking_tokens": 6}, **kw)
    msg = r.choices[0].message
    assert msg.model_extra["reasoning_content"] == plain.choices[0].message.model_extra["reasoning_content"]
    assert msg.model_extra["reasoning"] == msg.model_extra["reasoning_content"]   # vLLM's newer name
    assert msg.content == plain.choices[0].message.content
    r = client.chat.completions.create(
        extra_body={"include_reasoning": False, "max_thinking_tokens": 6}, **kw)
    assert r.choices[0].message.model_extra["reasoning_content"] is None
    assert s1_of(r.choices[0])["thinking_tokens"] == s1_of(plain.choices[0])["thinking_tokens"]  # thought, not shown


def test_reasoning_effort_sets_the_thinking_cap(client):
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": Q}],
                                       temperature=0, max_tokens=12, reasoning_effort="none")
    info = s1_of(r.choices[0])
    assert info["thinking_tokens"] == 0 and info["forced_end"]
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": Q}],
                                       temperature=0, max_tokens=40, reasoning_effort="low")
    assert s1_of(r.choices[0])["thinking_tokens"] > 6        # a cap of 1024: the model's own end


def test_stream_chunks_carry_null_usage_until_the_last(serve_url):
    payload = {"model": MODEL, "messages": [{"role": "user", "content": SHORT}], "temperature": 0,
               "max_tokens": 8, "max_thinking_tokens": 4, "stream": True,
               "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{serve_url}/v1/chat/completions", json=payload, timeout=600,
                      headers={"Authorization": f"Bearer {API_KEY}"}) as r:
        events = [json.loads(line[5:]) for line in r.iter_lines()
                  if line.startswith("data:") and "[DONE]" not in line]
    assert len(events) > 2
    assert all("usage" in e and e["usage"] is None for e in events[:-1])   # as OpenAI's
    assert events[-1]["usage"]["completion_tokens"] >= 4 and events[-1]["choices"] == []


def test_token_id_prompts_give_what_their_text_gives(client):
    from s1.generation.models import EMBEDDED
    from s1.generation.engines.served import load_tokenizer

    tok = load_tokenizer(EMBEDDED)
    text = f"<|im_start|>user\n{SHORT}<|im_end|>\n<|im_start|>assistant\n"
    kw = dict(model=MODEL, max_tokens=10, temperature=0, extra_body={"max_thinking_tokens": 4})
    by_text = client.completions.create(prompt=text, **kw)
    by_ids = client.completions.create(prompt=tok.encode(text), **kw)
    assert by_ids.choices[0].text == by_text.choices[0].text
    assert by_ids.usage.prompt_tokens == by_text.usage.prompt_tokens
    two = client.completions.create(prompt=[tok.encode(text), tok.encode(text)], **kw)
    assert [c.text for c in two.choices] == [by_text.choices[0].text] * 2
