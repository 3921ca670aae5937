"""The paper's quality rules on real questions."""

from __future__ import annotations

import datasets
import pytest

from s1.curation.pool import load_reference
from s1.curation.quality import QualityConfig, failures
from s1.curation.steps import run_step
from s1.errors import UserError


def test_the_s1k_questions_pass_the_filter():
    ref = load_reference()
    assert len(ref) == 893
    failed = [r["s1k_index"] for r in ref if failures(r, QualityConfig(required=["question"]))]
    assert len(failed) <= 5, failed     # they passed the paper's filter: nearly all pass ours


def test_each_rule_on_real_rows(pool, tmp_path):
    run = run_step("quality", pool, "t", QualityConfig(required=["question", "solution", "answer"]),
                   tmp_path / "q", progress=False, quiet=True)
    st = run.record["stats"]
    assert st["fails_asy"] > 500          # MATH's Asymptote figures
    assert st["fails_missing"] >= 1       # the two MATH rows with no \boxed{} answer
    assert run.record["rows_out"] == len(pool) - sum(run.record["dropped"].values())
    kept = set(datasets.Dataset.from_parquet(str(tmp_path / "q" / "data.parquet"))["question_hash"])
    aime_asy = [r for r in pool if "AIME" in r["source_type"] and "[asy]" in r["question"]]
    assert aime_asy and all(r["question_hash"] in kept for r in aime_asy)   # allowed for AIME


@pytest.mark.parametrize("question,source,rule", [
    ("Let p1. be the first point. Find x.", "x/y", "numbering"),
    ("Step1. compute 3+4", "x/y", "numbering"),
    ("See ![Image](fig.png) and compute 2+2.", "x/y", "image"),
    ("[asy] draw((0,0)--(1,1)); [/asy] Find 1+1.", "simplescaling/openaimath/Geometry", "asy"),
    ("**A1** Find 2 things", "x/y", "bold"),
])
def test_rules_fire(question, source, rule):
    got = failures({"question": question, "source_type": source, "solution": "s"},
                   QualityConfig())
    assert got and got[0][0] == rule


def test_allowed_patterns():
    cfg = QualityConfig()
    assert not failures({"question": "[asy] x [/asy] Find 1+1.", "source_type":
                         "qq8933/AIME_1983_2024", "solution": "2"}, cfg)
    assert not failures({"question": "Compute p10 plus q. **Bold** words", "source_type": "x",
                         "solution": "s"}, cfg)   # no digit after the bold; p10 has no dot
    assert not failures({"question": "P1. upper-case numbering", "source_type": "x",
                         "solution": "s"}, cfg)   # the notebook's test is case-sensitive


def test_numbering_regex_equals_the_notebook_loop(pool):
    from s1.curation.quality import _NUMBERING

    for q in pool.select(range(0, len(pool), 7))["question"]:
        assert bool(_NUMBERING.search(q)) == any(f"p{i}." in q for i in range(1, 1000))


def test_bad_required_field():
    with pytest.raises(UserError):
        QualityConfig(required="question")
