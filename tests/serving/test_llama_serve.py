"""`s1 serve --engine llama.cpp`: concurrent requests join one running batch (continuous
batching), and each gets what it gets alone and what `s1 generate` gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.loopback import SRC
from tests.serving.conftest import start_serve, stop_serve

pytestmark = pytest.mark.slow

QUESTIONS = ["What is 7*8?", "Name a prime number larger than 10.",
             "How many times does the letter r appear in the word raspberry? Think carefully.",
             "Is 91 prime?", "A train travels 60 km in 1.5 hours. What is its average speed?",
             "What is the capital of France?"]
BUDGETS = [{"max_thinking_tokens": 12}, {"max_thinking_tokens": 20, "min_thinking_tokens": 8},
           {"max_thinking_tokens": 16, "num_ignore": 1}]


@pytest.fixture(scope="module")
def llama_serve():
    openai = pytest.importorskip("openai")
    proc, url, log = start_serve("--engine", "llama.cpp", "--batch-size", "4", "--threads", "2")
    try:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=600)
    finally:
        text = stop_serve(proc, log)
        assert "Traceback" not in text, text[-3000:]


def ask(client, i: int) -> tuple[str, str, list]:
    r = client.chat.completions.create(
        model="smollm2-135m", messages=[{"role": "user", "content": QUESTIONS[i]}],
        temperature=0, max_tokens=48, extra_body=BUDGETS[i % len(BUDGETS)])
    c = r.choices[0]
    return c.message.model_extra["reasoning_content"], c.message.content, c.model_extra["s1"]["events"]


def test_concurrent_requests_get_what_they_get_alone(llama_serve):
    alone = [ask(llama_serve, i) for i in range(len(QUESTIONS))]
    with ThreadPoolExecutor(len(QUESTIONS)) as pool:       # 6 requests through 4 rows
        together = list(pool.map(lambda i: ask(llama_serve, i), range(len(QUESTIONS))))
    assert together == alone
    assert any(events for _, _, events in alone)            # the budgets forced something


def test_greedy_parity_with_s1_generate_on_llama_cpp(llama_serve):
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run([sys.executable, "-m", "s1.cli", "generate", QUESTIONS[0],
                          "--engine", "llama.cpp", "--max-thinking", "20", "--min-thinking", "8",
                          "--max-answer", "12", "--threads", "2", "--json"],
                         capture_output=True, text=True, env=env, timeout=600, check=True)
    gen = json.loads(out.stdout.strip().splitlines()[-1])
    r = llama_serve.chat.completions.create(
        model="smollm2-135m", messages=[{"role": "user", "content": QUESTIONS[0]}], temperature=0,
        max_tokens=40, extra_body={"max_thinking_tokens": 20, "min_thinking_tokens": 8})
    msg = r.choices[0].message
    assert msg.model_extra["reasoning_content"] == gen["thinking"]
    assert r.choices[0].model_extra["s1"]["events"] == gen["events"]
    assert msg.content.startswith(gen["answer"])
