"""The DeepSeek-R1 protocol as a method, end to end on the embedded model: n samples at T=0.6,
top-p 0.95, the boxed prompt, a system prompt; pass@1 = the mean over samples with an interval
over per-question means (n = questions), cons@n by majority."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections import Counter

import pytest

from s1.errors import UserError
from s1.evaluation.config import EvalConfig
from s1.evaluation.metrics import question_interval, wilson_interval
from s1.evaluation.prompts import BOXED_INSTRUCTION

S1 = [sys.executable, "-m", "s1.cli"]
SYSTEM = "You are a careful mathematician."


def test_r1_defaults_and_checks():
    cfg = EvalConfig.load(values={"benchmark": {"name": "aime24"}, "method": {"name": "r1"},
                                  "run": {"out": "x"}})
    assert cfg.benchmark.protocol == "boxed"          # R1's own prompt unless one is chosen
    [s] = cfg.method.build(cfg.budget.temperature, cfg.budget.top_p).settings(cfg.budget.base())
    assert (s.samples, s.budget.sampling.temperature, s.budget.sampling.top_p) == (16, 0.6, 0.95)
    cfg = EvalConfig.load(values={"benchmark": {"name": "aime24", "protocol": "s1"},
                                  "method": {"name": "r1", "samples": 4},
                                  "budget": {"top_p": 0.9, "temperature": 0.7},
                                  "run": {"out": "x"}})
    [s] = cfg.method.build(cfg.budget.temperature, cfg.budget.top_p).settings(cfg.budget.base())
    assert cfg.benchmark.protocol == "s1"
    assert (s.samples, s.budget.sampling.temperature, s.budget.sampling.top_p) == (4, 0.7, 0.9)
    with pytest.raises(UserError, match="temperature 0"):
        EvalConfig.load(values={"benchmark": {"name": "aime24"}, "method": {"name": "r1"},
                                "budget": {"temperature": 0.0}, "run": {"out": "x"}})
    with pytest.raises(UserError, match="min_p"):
        EvalConfig.load(values={"benchmark": {"name": "aime24"}, "budget": {"min_p": 1.5},
                                "run": {"out": "x"}})


@pytest.mark.slow
def test_r1_protocol_end_to_end(tmp_path):
    out = tmp_path / "runs"
    p = subprocess.run([*S1, "eval", "--benchmark", "gsm8k", "--limit", "2", "--method", "r1",
                        "--samples", "3", "--max-thinking", "8", "--max-answer", "12",
                        "--min-p", "0.05", "--system", SYSTEM, "--engine", "llama.cpp",
                        "--quiet", "--out", str(out)], capture_output=True, text=True,
                       timeout=900)
    assert p.returncode == 0, p.stderr
    run = out / "gsm8k-r1-n3-t0.6-p0.95-max8-s0"
    m = json.loads((run / "manifest.json").read_text())["config"]
    assert m["protocol"] == "boxed" and m["system"] == SYSTEM
    b = m["setting"]["budget"]
    assert (b["temperature"], b["top_p"], b["min_p"]) == (0.6, 0.95, 0.05)
    recs = [json.loads(x) for x in (run / "records.jsonl").read_text().splitlines()]
    assert len(recs) == 6 and len({r["request_seed"] for r in recs}) == 6
    for r in recs:     # the system prompt and R1's instruction reach the model
        assert SYSTEM in r["trace"]["prompt"] and BOXED_INSTRUCTION in r["trace"]["prompt"]
    by_q: dict[str, list[dict]] = {}
    for r in sorted(recs, key=lambda r: r["sample"]):
        by_q.setdefault(r["id"], []).append(r)
    means = [statistics.fmean(r["correct"] for r in v) for v in by_q.values()]
    s = json.loads((run / "summary.json").read_text())
    assert s["accuracy"] == pytest.approx(statistics.fmean(means))
    assert (s["wilson_low"], s["wilson_high"]) == pytest.approx(question_interval(means))
    assert s["pass_at_1"]["samples"] == 6
    assert s["at_k"]["1"]["pass"] == pytest.approx(s["accuracy"])   # the unbiased pass@1
    # cons@3 by hand: the most common extracted answer (first reached on a tie) decides
    wins = 0
    for v in by_q.values():
        votes = Counter(r["extracted"] for r in v if r["extracted"] is not None)
        if votes:
            top = max(votes.values())
            winner = next(r for r in v if r["extracted"] is not None
                          and votes[r["extracted"]] == top)
            wins += winner["correct"]
    assert s["cons_at_n"]["n"] == 3 and s["cons_at_n"]["correct"] == wins
    assert (s["cons_at_n"]["low"], s["cons_at_n"]["high"]) == pytest.approx(
        wilson_interval(wins, 2))
    assert f"pass@1 {100 * s['accuracy']:.1f}%" in p.stdout and "cons@3" in p.stdout
    assert "2 questions × 3 samples" in p.stdout

    # `s1 compare` compares what the table shows (pass@1), says so, and can compare the vote
    def compare(*extra):
        c = subprocess.run([*S1, "compare", str(run), str(run), "--resamples", "100", *extra],
                           capture_output=True, text=True, timeout=300)
        assert c.returncode == 0, c.stderr
        return c.stdout.splitlines()[0]

    pass1 = f"pass@1 (mean over 3 samples) {100 * s['accuracy']:.1f}%"
    assert pass1 in compare() and pass1 in compare("--metric", "pass@1")
    assert f"cons@3 {100 * s['cons_at_n']['accuracy']:.1f}%" in compare("--metric", "prediction")
