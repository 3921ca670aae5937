"""A loopback stand-in for a vLLM server, for what the real servers here cannot show: a context
length on /v1/models (`max_model_len`) and a 400 for a prompt plus max_tokens beyond it, vLLM's
/tokenize, a teacher that goes down and comes back (500 for the prompts in `down`), replies cut
at max_tokens (`finish_reason: length`, no answer) for prompts containing LONG, and a 400 for
every request when `refuse_all` is set."""

from __future__ import annotations

import json
import threading
from http.server import ThreadingHTTPServer

import pytest

from tests.loopback import JsonHandler

CONTEXT = 512


def prompt_tokens(messages: list[dict]) -> int:
    return sum(len(m["content"].split()) for m in messages) + 10   # words + the template's


class VLLMLike(JsonHandler):
    asked: dict = {}            # prompt -> requests
    max_tokens_sent: list = []
    down: set = set()           # prompts answered with 500
    refuse_all = False
    tokenize = True

    def do_GET(self):
        self._send(200, {"data": [{"id": "teacher", "max_model_len": CONTEXT}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/tokenize":
            if not self.tokenize:
                return self._send(404, {"detail": "Not Found"})
            return self._send(200, {"count": prompt_tokens(body["messages"]),
                                    "max_model_len": CONTEXT})
        prompt = body["messages"][-1]["content"]
        n = prompt_tokens(body["messages"])
        self.asked[prompt] = self.asked.get(prompt, 0) + 1
        self.max_tokens_sent.append(body["max_tokens"])
        if self.refuse_all:
            return self._send(400, {"object": "error", "message": "refused on purpose"})
        if n + body["max_tokens"] > CONTEXT:
            return self._send(400, {"object": "error", "message": (
                f"This model's maximum context length is {CONTEXT} tokens. However, you requested "
                f"{n + body['max_tokens']} tokens ({n} in the messages, {body['max_tokens']} in "
                "the completion).")})
        if prompt in self.down:
            return self._send(500, {"error": "the teacher is down"})
        if "LONG" in prompt:
            message, finish = {"content": "", "reasoning_content": "step " * 40}, "length"
        else:
            message, finish = {"content": "The answer is \\boxed{4}.",
                               "reasoning_content": f"thinking about {prompt}"}, "stop"
        self._send(200, {"choices": [{"message": message, "finish_reason": finish}],
                         "usage": {"prompt_tokens": n, "completion_tokens": 7}})



@pytest.fixture
def vllm_like():
    VLLMLike.asked, VLLMLike.max_tokens_sent, VLLMLike.down = {}, [], set()
    VLLMLike.refuse_all, VLLMLike.tokenize = False, True
    server = ThreadingHTTPServer(("127.0.0.1", 0), VLLMLike)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
