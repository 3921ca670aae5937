"""The report's drill-down: a real sweep of the miniature model, its report opened in a real
headless browser (Debian's chromium, driven over the DevTools protocol on a pipe), a question
clicked, its trace read; and the marks themselves, checked on the records they come from."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from s1.cli import main
from s1.evaluation.drilldown import wait_spans

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A sweep with a cap the model runs into and a forced Wait, and its report."""
    out = tmp_path_factory.mktemp("drill") / "runs"
    code = main(["eval", "--model", "s1-tiny", "--benchmark", "tiny", "--limit", "8",
                 "--max-thinking", "16,64", "--num-ignore", "0,1", "--max-answer", "24",
                 "--threads", "1", "--batch-size", "64", "--quiet", "--out", str(out)])
    assert code == 0
    assert main(["report", str(out)]) == 0
    return out


def _records(out: Path, run: str) -> list[dict]:
    return [json.loads(line) for line in (out / run / "records.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_every_question_opens_to_each_runs_trace_with_its_marks(report):
    page = (report / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page and "http://" not in page and "https://" not in page
    runs = ("tiny-budget-max16-ign0-s0", "tiny-budget-max16-ign1-s0",
            "tiny-budget-max64-ign0-s0", "tiny-budget-max64-ign1-s0")
    recs = [r for run in runs for r in _records(report, run)]
    assert page.count("<details class='s1-q'") == 8
    for run in runs:
        assert page.count(f"<b>{run}</b>") == 8
    # One mark per forced Wait, exactly where it went in (one character per token here).
    waits = sum(r["waits"] for r in recs)
    assert waits > 0 and page.count("<mark class='s1-wait'") == waits
    for r in recs:
        for s in wait_spans(r["trace"]["thinking"], r["thinking_tokens"], r["events"], ["Wait"]):
            assert r["trace"]["thinking"][s.start:s.end] == "Wait"
            assert "exact" in s.title
    # The 16-character cap ends every thinking there: each is marked as forced.
    forced16 = [r for r in _records(report, "tiny-budget-max16-ign0-s0")
                if r["thinking_finish"] == "max"]
    assert forced16 and page.count("⟂ end forced at 16 tokens") >= 2 * len(forced16)
    assert page.count("grading: integer m") == 32
    assert "click a question" in (report / "report.md").read_text()


def test_a_wait_is_placed_by_its_share_of_the_text_when_tokens_are_not_characters():
    thinking = "So x is 4. Wait, let me check: 2+2 is 4. Wait, yes."
    # The model's own "Wait" comes first; the forced one went in after 18 of 20 tokens.
    [span] = wait_spans(thinking, 20, [{"kind": "wait", "at": 18, "detail": "min"}], ["Wait"])
    assert span.start == thinking.rindex("Wait") and "share" in span.title


@pytest.mark.slow
def test_an_engine_records_where_each_wait_starts_in_the_text():
    from s1.generation.budget import Budget
    from s1.generation.engines import Request, load_engine

    engine = load_engine(threads=1)          # the embedded SmolLM2: a BPE tokenizer
    try:
        [trace] = engine.generate([Request("How many r in raspberry?")],
                                  Budget(max_thinking_tokens=96, num_ignore=2))
    finally:
        engine.close()
    waits = [e for e in trace.events if e.kind == "wait"]
    assert waits and len(trace.meta["wait_chars"]) == len(waits)
    assert len(trace.thinking) != trace.thinking_tokens     # the share rule would only guess
    events = [e.to_dict() for e in trace.events]
    spans = wait_spans(trace.thinking, trace.thinking_tokens, events, ["Wait"],
                       trace.meta["wait_chars"])
    assert len(spans) == len(waits) and all(s.title.endswith("exact") for s in spans)
    assert all(trace.thinking[s.start:s.end] == "Wait" for s in spans)


class Browser:
    """Headless chromium driven over the DevTools protocol on a pipe (fds 3 and 4): no
    websocket library, no port."""

    def __init__(self, profile: Path):
        commands, self.w_ours = os.pipe()       # our commands -> chromium's fd 3
        self.r_ours, replies = os.pipe()        # chromium's fd 4 -> our replies
        # Above 4, so that placing them at 3 and 4 in the child overwrites neither.
        theirs = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (commands, replies)]
        os.close(commands)
        os.close(replies)
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--remote-debugging-pipe", f"--user-data-dir={profile}",
             "about:blank"],
            pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: (os.dup2(theirs[0], 3), os.dup2(theirs[1], 4)))
        for fd in theirs:
            os.close(fd)
        self.buf, self.next_id, self.events = b"", 0, []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w_ours, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self.next_id:
                assert "error" not in reply, reply
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for e in self.events:
                if e.get("method") == method:
                    return e
            self.events.append(self._read())
        raise AssertionError(f"no {method} within {timeout} s")

    def _read(self) -> dict:
        while b"\0" not in self.buf:
            chunk = os.read(self.r_ours, 1 << 16)
            if not chunk:
                raise AssertionError("chromium closed the DevTools pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (AssertionError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.w_ours)
        os.close(self.r_ours)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (scripts/setup.sh "
                    "installs Debian's chromium when it runs as root; `apt-get install chromium`)")
def test_the_report_opens_in_a_browser_and_a_click_shows_a_trace(report, tmp_path):
    browser = Browser(tmp_path / "profile")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget",
                               {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Page.navigate", {"url": (report / "report.html").as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired")

        def js(expr: str):
            r = browser.send("Runtime.evaluate", {"expression": expr, "returnByValue": True},
                             session=session)
            assert "exceptionDetails" not in r, r
            return r["result"].get("value")

        # The question whose trace has a forced Wait; closed until clicked.
        qid = js("document.querySelector('mark.s1-wait').closest('details').id")
        sel = f"document.getElementById('{qid}')"
        assert js(f"{sel}.open") is False
        assert js(f"{sel}.querySelector('.s1-thinking').checkVisibility()") is False
        assert js("[...document.images].every(i => i.complete && i.naturalWidth > 0)") is True
        js(f"{sel}.scrollIntoView()")
        box = js(f"(() => {{ const r = {sel}.querySelector('summary').getBoundingClientRect();"
                 " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            browser.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1],
                                                      "button": "left", "clickCount": 1},
                         session=session)
        assert js(f"{sel}.open") is True
        assert js(f"{sel}.querySelector('.s1-thinking').checkVisibility()") is True
        assert js(f"{sel}.querySelector('mark.s1-wait').checkVisibility()") is True
        text = js(f"{sel}.innerText")
        assert "grading: integer" in text and "Wait" in text and "tiny-budget-max64-ign1-s0" in text

        errors = [e for e in browser.events
                  if e.get("method") == "Runtime.exceptionThrown"
                  or (e.get("method") == "Runtime.consoleAPICalled"
                      and e["params"].get("type") in ("error", "assert"))
                  or (e.get("method") == "Log.entryAdded"
                      and e["params"]["entry"].get("level") == "error")]
        assert errors == []
    finally:
        browser.close()
