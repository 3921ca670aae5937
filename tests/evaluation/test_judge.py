"""The LLM judge against a real HTTP endpoint speaking the OpenAI chat-completions protocol.

The endpoint is a small local server with a fixed rule (it accepts "five" for 5), standing in
for a model: what is tested is our side — the request we send, when the judge is asked, and
how its reply and its failures end up in the grade.
"""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from s1.errors import UserError
from s1.evaluation import Item, Judge, grade
from s1.evaluation.judge import parse_verdict


class _Endpoint(BaseHTTPRequestHandler):
    requests: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                    "body": body})
        user = body["messages"][-1]["content"]
        gold = re.search(r"Reference answer: (.*)", user).group(1)
        answer = re.search(r"Student's final answer: (.*)", user).group(1)
        reply = "YES" if (gold, answer) == ("5", "five") else "NO, they differ."
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data.encode())

    def log_message(self, *args):
        pass


@pytest.fixture()
def endpoint():
    _Endpoint.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", _Endpoint.requests
    server.shutdown()
    server.server_close()


def test_judge_is_asked_only_when_the_rules_say_wrong(endpoint):
    url, requests = endpoint
    item = Item("q5", "How many fingers on a hand?", "5", "integer")
    with Judge(url, model="judge-model", api_key="sk-test", temperature=0.5) as judge:
        right = grade("\\boxed{5}", item, judge=judge)
        assert (right.correct, right.reason) == (True, "integer match") and not requests
        rescued = grade("\\boxed{five}", item, judge=judge)
        assert rescued.correct and rescued.reason.endswith("; judge equal")
        refused = grade("\\boxed{six}", item, judge=judge)
        assert not refused.correct and refused.reason.endswith("; judge not equal")
        silent = grade("no answer here", item, judge=judge)
        assert silent.reason == "no answer found"
        # two different plain integers are settled by the rules alone
        assert grade("\\boxed{6}", item, judge=judge).reason == "integer mismatch"
    assert len(requests) == 2
    first = requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-test"
    assert first["body"]["model"] == "judge-model" and first["body"]["temperature"] == 0.5
    assert first["body"]["messages"][0]["role"] == "system"
    assert "How many fingers" not in json.dumps(first["body"])  # the question stays home


def test_judge_is_never_asked_about_letters(endpoint):
    url, requests = endpoint
    item = Item("g", "made-up question", "B", "choice")
    with Judge(url, model="m") as judge:
        assert not grade("Answer: C", item, judge=judge).correct
    assert not requests


def test_unreachable_judge_leaves_the_rule_based_grade():
    item = Item("q", "q", "5", "integer")
    with Judge("http://127.0.0.1:9/v1", model="m", retries=1, timeout=2) as judge:
        g = grade("\\boxed{five}", item, judge=judge)
        assert not g.correct and g.reason.endswith("judge gave no verdict")
        assert judge.calls == 2 and judge.last_error


def test_judge_settings_are_checked():
    with pytest.raises(UserError):
        Judge("localhost:8000", model="m")
    with pytest.raises(UserError):
        Judge("http://localhost:8000/v1", model="m", temperature=3)


@pytest.mark.parametrize("reply,verdict", [
    ("YES", True), ("yes.", True), ("No", False), ("NO, different values", False),
    ("<think>they look alike</think>\nYES", True), ("maybe", None), ("", None),
])
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) is verdict
