"""The grading test set (tests/evaluation/data/grading_cases.jsonl): real model outputs and
tricky forms with the verdict a careful human grader gives and why. Every grading bug found
becomes a line there. Also: every shipped gold parses, majority voting groups equivalent
answers, and a grader that cannot start stops the run."""

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from s1.evaluation import Item, grade_many, load_benchmark
from s1.evaluation import verifier
from s1.evaluation.extract import as_integer
from s1.evaluation.verifier import GraderUnavailable, VerifierPool, cluster_answers, verify_math
from s1.evaluation.methods import MajorityVoting
from s1.evaluation.records import Compute, Record
from s1.generation.budget import Budget

CASES = Path(__file__).parent / "data" / "grading_cases.jsonl"


def _cases() -> list[dict]:
    return [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def test_the_grading_test_set():
    cases = _cases()
    assert len(cases) >= 120
    assert sum("real SmolLM2-135M output" in c["why"] for c in cases) >= 20
    for c in cases:
        assert set(c) >= {"answer", "gold", "answer_type", "correct", "why"}, c
    items = [Item(f"case-{i}", "q", c["gold"], c["answer_type"]) for i, c in enumerate(cases)]
    grades = grade_many([(c["answer"], it) for c, it in zip(cases, items)], timeout=10.0)
    wrong = [f"{c['answer']!r} vs gold {c['gold']!r}: graded {g.correct} ({g.reason}), "
             f"expected {c['correct']} ({c['why']})"
             for c, g in zip(cases, grades) if g.correct is not c["correct"]]
    assert not wrong, "\n".join(wrong)
    # Both verdicts and every grading path are represented.
    assert Counter(c["correct"] for c in cases)[False] >= 35
    reasons = {g.reason for g in grades}
    assert {"integer match", "math-verify equal", "math-verify not equal", "letter match",
            "answer line number match", "no answer found"} <= reasons


def test_the_set_covers_what_issue_7_names():
    answers = {c["answer"] for c in _cases()}
    for named in (r"\boxed{\frac{3}{5}}", "Let $x$ be the number of 8-digit numbers",
                  r"\boxed{204 \text{ or } 5}", r"\boxed{2^9}", "Answer: 42 (since 6*7)",
                  "The answer is C because",
                  "Between (A) and (B), (B) is wrong, so the answer is (A)"):
        assert any(named in a for a in answers), named
    golds = {c["gold"] for c in _cases()}
    assert {r"\$36", r"\$18.90", r"\$32,\!348"} <= golds


@pytest.mark.parametrize("name", ["aime24", "math500", "gsm8k"])
def test_every_shipped_gold_parses(name):
    """A gold math-verify cannot read makes every answer to it wrong (issue 7.2): each gold is
    a plain integer or a LaTeX answer that math-verify parses and finds equal to itself."""
    unreadable = []
    for item in load_benchmark(name):
        if as_integer(item.answer) is not None:
            continue
        verdict = verify_math(item.answer, item.answer, timeout=10.0)
        if verdict != "equal":
            unreadable.append((item.id, item.answer, verdict))
    assert not unreadable


def test_every_math500_gold_is_right_boxed_and_wrong_perturbed():
    items = list(load_benchmark("math500"))
    pairs = [(f"The answer is $\\boxed{{{it.answer}}}$.", it) for it in items]
    pairs += [(f"\\boxed{{{it.answer.replace(chr(92) + '$', '')}}}", it) for it in items
              if "\\$" in it.answer]
    grades = grade_many(pairs, timeout=10.0)
    assert all(g.correct for g in grades), [(it.answer, g) for (_, it), g in zip(pairs, grades)
                                            if not g.correct]
    assert len(pairs) > len(items)   # the escaped-dollar golds were there to test


def test_majority_votes_on_equivalence():
    half = ["\\frac12", "\\frac{1}{2}", "1/2", "0.5", "2", "\\dfrac{2}{4}", None, "023", "23"]
    assert cluster_answers(half, "math") == [0, 0, 0, 0, 4, 0, None, 7, 7]
    # a prefix's classes are the classes cut at the prefix (maj@k for growing k)
    assert cluster_answers(half[:5], "math") == [0, 0, 0, 0, 4]
    assert cluster_answers(["(B)", "b", "C", None], "choice") == [0, 0, 2, None]
    assert cluster_answers(["2^9", "512", "\\frac{3}{5}", "0.6"], "integer") == [0, 0, 2, 2]

    def sample(extracted, correct):
        return Record(key="q#0", id="q", sample=0, seed=0, request_seed=0, gold="",
                      answer_type="math", extracted=extracted, correct=correct, reason="",
                      thinking_tokens=0, answer_tokens=0, waits=0, thinking_finish="end",
                      finish_reason="stop", events=[], tries=1, compute=Compute(), wall_s=0.0,
                      trace={})

    [setting] = MajorityVoting(samples=5).settings(Budget())
    # Four spellings of one half outvote two of a third: as strings they were four votes of one.
    votes = [sample("\\frac13", False), sample("1/3", False), sample("\\frac12", True),
             sample("\\frac{1}{2}", True), sample("0.5", True), sample("1/2", True)]
    assert setting.predict(votes, "math") == {"correct": True, "extracted": "\\frac12",
                                               "sample": 2}


def test_clustering_a_pathological_answer_stays_bounded():
    # The tower cannot be compared in time: it gets a class of its own and the others are
    # clustered again. It costs two deadlines and two worker restarts (about 1 s each on an
    # idle machine, several on a loaded one), not one deadline per other answer.
    start = time.monotonic()
    out = cluster_answers(["\\frac13", "9^{9^{9^{9}}}", "\\frac12", "0.5", "1/3"], "math",
                          timeout=1.0)
    assert time.monotonic() - start < 30.0
    assert out == [0, 1, 2, 2, 0]
    assert cluster_answers(["\\frac12", "0.5"], "math") == [0, 0]   # the grader recovered


def test_a_grader_that_never_starts_fails_loudly(tmp_path, monkeypatch):
    broken = tmp_path / "worker.py"
    broken.write_text("raise ModuleNotFoundError(\"No module named 'math_verify'\")\n")
    monkeypatch.setattr(verifier, "_WORKER_FILE", str(broken))
    pool = VerifierPool(1)
    try:
        with pytest.raises(GraderUnavailable, match="math_verify"):
            pool.verify("$5$", "$5$", timeout=5.0)
        # and again on the next call: never a quiet "crashed" that text comparison papers over
        with pytest.raises(GraderUnavailable):
            pool.verify("$5$", "$5$", timeout=5.0)
    finally:
        pool.close()
