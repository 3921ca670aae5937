"""The answer cap (issue 7.8): by default the rest of the model's context, as the paper's
harness; each summary records the share of answers the cap cut."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from s1.errors import UserError
from s1.evaluation.config import BudgetOptions

S1 = [sys.executable, "-m", "s1.cli"]


def test_auto_is_the_default_and_resolves_to_the_context():
    assert BudgetOptions().max_answer == "auto"
    assert BudgetOptions().base(8192).max_answer_tokens == 8192
    assert BudgetOptions(max_answer="12").base(8192).max_answer_tokens == 12
    assert BudgetOptions(max_answer=" AUTO ").max_answer == "auto"
    for bad in ("0", "lots", 0, -3):
        with pytest.raises(UserError, match="max answer"):
            BudgetOptions(max_answer=bad)


@pytest.mark.slow
def test_the_answer_runs_to_eos_by_default_and_a_small_cap_is_counted(tmp_path):
    from s1.generation.engines import load_engine

    engine = load_engine(engine="llama.cpp")
    context = engine.describe()["context_length"]
    engine.close()
    common = ["eval", "--benchmark", "math500", "--limit", "1", "--max-thinking", "0",
              "--engine", "llama.cpp", "--quiet"]
    full, capped = tmp_path / "full", tmp_path / "capped"
    for out, extra in ((full, []), (capped, ["--max-answer", "4"])):
        p = subprocess.run([*S1, *common, *extra, "--out", str(out)], capture_output=True,
                           text=True, timeout=900)
        assert p.returncode == 0, p.stderr
    run = "math500-budget-max0-ign0-s0"
    manifest = json.loads((full / run / "manifest.json").read_text())
    assert manifest["config"]["setting"]["budget"]["max_answer_tokens"] == context
    [rec] = [json.loads(line) for line in (full / run / "records.jsonl").read_text().splitlines()]
    # greedy SmolLM2 answers this one in a few dozen tokens and stops by itself: 512 or 8 would
    # not have mattered, 4 does
    assert rec["finish_reason"] == "stop" and rec["answer_tokens"] > 8
    assert json.loads((full / run / "summary.json").read_text())["answer_cut_share"] == 0
    [cut] = [json.loads(line) for line in (capped / run / "records.jsonl").read_text().splitlines()]
    assert cut["finish_reason"] == "length"
    assert json.loads((capped / run / "summary.json").read_text())["answer_cut_share"] == 1
    # the cut answer is the same answer's first 4 tokens (after the forced "Final Answer:")
    assert rec["trace"]["answer_ids"][:cut["answer_tokens"]] == cut["trace"]["answer_ids"]
