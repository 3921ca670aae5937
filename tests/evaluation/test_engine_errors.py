"""A sample the engine failed (issue 19.2) is no wrong answer: it is recorded ungraded, leaves
its run incomplete, is shown as an error share, and a resume asks it again, its error record
replaced. A real llama.cpp server on loopback behind a relay that refuses one completion."""

from __future__ import annotations

import json

import pytest

from s1.evaluation.config import EvalConfig
from s1.evaluation.evaluate import evaluate
from tests.loopback import Flaky

pytestmark = pytest.mark.slow
RUN = "gsm8k-budget-max8-ign0-s0"


def lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_engine_errors_are_not_graded_and_a_resume_retries_them(llama_server, tmp_path, capsys):
    flaky = Flaky(llama_server, failures=1, status=400)   # the first completion is refused
    out = tmp_path / "runs"
    cfg = EvalConfig.load(values={
        "benchmark": {"name": "gsm8k", "limit": 2},
        # the context given: no context probe through Flaky to use up its one refusal
        "engine": {"engine": "remote", "server": flaky.url, "concurrency": 1,
                   "context_length": 8192},
        "budget": {"max_answer": 8}, "method": {"name": "budget", "max_thinking": "8"},
        "run": {"out": str(out), "quiet": True}})
    try:
        first = evaluate(cfg)
        assert "re-run the same command to ask them again" in capsys.readouterr().err
        recs = lines(out / RUN / "records.jsonl")
        [bad] = [r for r in recs if r["finish_reason"] == "error"]
        [good] = [r for r in recs if r["finish_reason"] != "error"]
        assert bad["reason"] == "engine_error" and bad["extracted"] is None
        assert "HTTP 400" in bad["trace"]["error"]
        [s] = first.summaries
        # graded on the one answered question: the error is neither right nor wrong
        assert (s.questions, s.errors, s.error_share) == (1, 1, 0.5)
        assert s.accuracy == float(good["correct"]) and not s.complete
        sweep = json.loads((out / "sweep.json").read_text())
        assert sweep["incomplete"] == [RUN] and sweep["curves"] == []
        summary = json.loads((out / RUN / "summary.json").read_text())
        assert (summary["errors"], summary["error_share"], summary["complete"]) == (1, 0.5, False)

        # the same command again: only the failed sample is asked, its record replaced
        calls = flaky.calls
        again = evaluate(cfg)
        assert flaky.calls > calls
    finally:
        flaky.close()
    recs = lines(out / RUN / "records.jsonl")
    assert [r["key"] for r in recs] == ["gsm8k-1#0", "gsm8k-2#0"]
    assert all(r["finish_reason"] != "error" for r in recs)
    assert next(r for r in recs if r["key"] == good["key"]) == good   # not asked again
    [s] = again.summaries
    assert (s.questions, s.errors, s.error_share, s.complete) == (2, 0, 0.0, True)
