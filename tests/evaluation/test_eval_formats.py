"""Thinking formats in `s1 eval` on the embedded model: `none` (no thinking, the whole output
graded: the paper's Fig. 4b majority voting on an instruct model) and custom --think-start /
--think-end reaching the prompt, the forcing and the answer that is graded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from s1.evaluation.benchmarks import load_benchmark
from s1.evaluation.grading import grade

S1 = [sys.executable, "-m", "s1.cli"]
BASE = ["eval", "--benchmark", "gsm8k", "--limit", "2", "--engine", "llama.cpp", "--quiet"]


def s1(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*S1, *args], capture_output=True, text=True, timeout=900)


def records(d: Path) -> list[dict]:
    return [json.loads(x) for x in (d / "records.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_none_format_majority_grades_the_whole_output(tmp_path):
    out = tmp_path / "runs"
    p = s1(*BASE, "--format", "none", "--method", "majority", "--samples", "2",
           "--temperature", "0.8", "--max-answer", "16", "--out", str(out))
    assert p.returncode == 0, p.stderr
    [run] = [d for d in out.iterdir() if d.is_dir()]
    cfg = json.loads((run / "manifest.json").read_text())["config"]
    assert cfg["format"] == {"name": "none", "start": "", "end": "", "forced_suffix": ""}
    items = {it.id: it for it in load_benchmark("gsm8k", limit=2)}
    recs = records(run)
    assert len(recs) == 4
    for r in recs:
        t = r["trace"]
        assert r["thinking_tokens"] == 0 and t["thinking"] == "" and t["end"] == ""
        assert r["thinking_finish"] == "none" and r["waits"] == 0
        # nothing prefilled: the prompt ends where the chat template opens the assistant turn
        assert t["prompt"].endswith("<|im_start|>assistant\n")
        assert t["answer"].strip() and r["answer_tokens"] == len(t["answer_ids"]) <= 16
        g = grade(t["answer"], items[r["id"]])        # the whole output is what is graded
        assert (g.correct, g.extracted) == (r["correct"], r["extracted"])
    s = json.loads((run / "summary.json").read_text())
    assert s["at_k"]["2"]["total"] == 2 and s["thinking_per_question"] == 0


@pytest.mark.slow
def test_custom_delimiters_reach_prompt_forcing_and_grading(tmp_path):
    out = tmp_path / "runs"
    p = s1(*BASE, "--think-start", "<reasoning>", "--think-end", "</reasoning>",
           "--max-thinking", "12", "--num-ignore", "1", "--max-answer", "8", "--out", str(out))
    assert p.returncode == 0, p.stderr
    run = out / "gsm8k-budget-max12-ign1-s0"
    cfg = json.loads((run / "manifest.json").read_text())["config"]
    assert (cfg["format"]["name"], cfg["format"]["start"], cfg["format"]["end"]) == \
           ("custom", "<reasoning>", "</reasoning>")
    for r in records(run):
        t = r["trace"]
        assert t["prompt"].endswith("<reasoning>")
        assert "</reasoning>" in t["end"] and "</reasoning>" not in t["thinking"]
        assert "<|im_start|>answer" not in t["end"] + t["answer"]   # not the s1 default
        # the cap or the ignored end: either way the forcing acted on the custom format
        assert r["thinking_finish"] == "max" or r["waits"] == 1
        if r["thinking_finish"] == "max":
            assert t["answer"].startswith("\nFinal Answer:")
        if r["extracted"] is not None:
            assert r["extracted"] in t["answer"]


def test_none_format_refuses_what_acts_on_thinking(tmp_path):
    for extra, what in ((["--num-ignore", "1"], "budget forcing"),
                        (["--method", "rejection", "--max-thinking", "8"], "rejection"),
                        (["--think-end", "</x>"], "none format has no thinking delimiters")):
        p = s1(*BASE, "--format", "none", *extra, "--out", str(tmp_path / "r"))
        assert p.returncode == 2 and what in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
