"""A loopback stand-in for a hosted OpenAI-compatible API, for the behaviour the real servers
here cannot show: a key checked on every call, 429 with Retry-After on the first call of each
prompt, a 500 forever for prompts containing FAIL, `reasoning_content`, and fixed replies to the
paper's grading and classification prompts (Yes when the attempt holds the correct answer, the
code 11 for any question); a solution counts by its last line."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import ThreadingHTTPServer

import pytest

from tests.loopback import JsonHandler


def reply_for(prompt: str) -> tuple[str, str]:
    """(reasoning, content) the stand-in answers with."""
    if "## Classification rubrics" in prompt:
        return "", "Divisibility is number theory.\n11"
    m = re.search(r"## Attempt\n(.*)\n\n## Correct answer\n(.*)", prompt, re.S)
    if m:
        same = m.group(2).strip().splitlines()[-1] in m.group(1)   # a solution ends in its answer
        return "", "Comparing the final answers.\n" + ("Yes" if same else "No")
    return f"thinking about {prompt}", "Answer: 4"


class HostedAPI(JsonHandler):
    """A hosted API's behaviour the real servers here cannot show: 429 with Retry-After on the
    first call of each prompt, a 500 forever for prompts containing FAIL, and reasoning_content."""

    seen: dict = {}
    first_call_429 = True
    delay_s = 0.0

    def do_GET(self):
        if self.headers.get("Authorization") != "Bearer sk-test":
            return self._send(401, {"error": "bad key"})
        self._send(200, {"data": [{"id": "hosted-thinker"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        if self.headers.get("Authorization") != "Bearer sk-test":
            return self._send(401, {"error": "bad key"})
        if "FAIL" in prompt:
            return self._send(500, {"error": "internal"})
        time.sleep(self.delay_s)
        n = self.seen[prompt] = self.seen.get(prompt, 0) + 1
        if n == 1 and self.first_call_429:
            return self._send(429, {"error": "slow down"}, {"Retry-After": "0"})
        reasoning, content = reply_for(prompt)
        self._send(200, {"choices": [{"message": {"content": content, "reasoning_content": reasoning},
                                      "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 10, "completion_tokens": 5}})



@pytest.fixture
def hosted(monkeypatch):
    monkeypatch.setenv("S1_TEST_KEY", "sk-test")
    HostedAPI.seen, HostedAPI.first_call_429, HostedAPI.delay_s = {}, True, 0.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), HostedAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
