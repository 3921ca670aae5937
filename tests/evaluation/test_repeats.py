"""Seeds and samples at temperature 0 (issue 7.6): greedy repeats are identical, so `s1 eval`
refuses them in one line (exit 2, nothing written) unless --allow-greedy-repeats asks for them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from s1.errors import UserError
from s1.evaluation.config import EvalConfig

S1 = [sys.executable, "-m", "s1.cli"]


def load(**run) -> EvalConfig:
    return EvalConfig.load(values={"benchmark": {"name": "gsm8k"},
                                   "run": {"out": "unused", **run.pop("r", {})}, **run})


def test_greedy_seeds_are_refused_unless_allowed():
    with pytest.raises(UserError, match="--seeds 3 at temperature 0"):
        load(r={"seeds": 3})
    assert load(r={"seeds": 3, "allow_greedy_repeats": True}).run.seeds == 3
    # sampled seeds are real repeats
    assert load(r={"seeds": 3}, budget={"temperature": 0.6}).run.seeds == 3
    assert load(r={"seeds": 1}).run.seeds == 1


def test_greedy_samples_of_a_parallel_method_are_refused():
    with pytest.raises(UserError, match="4 samples per question at temperature 0"):
        load(method={"name": "majority", "samples": 4}, budget={"temperature": 0.0})
    # the sampling methods' own temperature (1) is fine, so is one sample
    assert load(method={"name": "majority", "samples": 4}).method.samples == 4
    assert load(method={"name": "majority", "samples": 1}, budget={"temperature": 0.0})


def test_cli_refusal_is_one_line_exit_2_and_writes_nothing(tmp_path):
    out = tmp_path / "runs"
    p = subprocess.run([*S1, "eval", "--benchmark", "gsm8k", "--seeds", "2", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "--allow-greedy-repeats" in p.stderr
    assert "Traceback" not in p.stderr and not out.exists()
    p = subprocess.run([*S1, "eval", "--benchmark", "gsm8k", "--seeds", "2", "--out", str(out),
                        "--allow-greedy-repeats", "--show"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert "allow_greedy_repeats: true" in p.stdout
