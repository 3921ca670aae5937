"""Difficulty filtering: solvers through real engines, graded by the evaluation stage's grader
or by an LLM with the paper's grading prompt; trace length in tokens of a real tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

from s1.curation.difficulty import (GRADING_SYSTEM, GRADING_USER, DifficultyConfig, difficulty,
                                    parse_yes_no_last_line)
from s1.curation.llm import LLMConfig
from s1.errors import UserError
from s1.jsonl import read_jsonl

from hosted_api import HostedAPI, hosted  # noqa: F401  (fixture)

GSM8K = Path(__file__).parents[2] / "src" / "s1" / "data" / "benchmarks" / "gsm8k_test.jsonl"


def easy_and_hard() -> Dataset:
    # The hosted stand-in answers "Answer: 4" to everything: right on the first, wrong on the second.
    return Dataset.from_list([{"question": "What is 2+2?", "answer": "4"},
                              {"question": "What is 3+2?", "answer": "5"},
                              {"question": "FAIL: the solver errors on this one", "answer": "1"}])


def test_config_is_validated():
    with pytest.raises(UserError, match="at least one solver"):
        DifficultyConfig(solvers={})
    with pytest.raises(UserError, match="letters, digits"):
        DifficultyConfig(solvers={"qwen-7b": LLMConfig()})
    with pytest.raises(UserError, match="grader_llm"):
        DifficultyConfig(grader="llm")
    with pytest.raises(UserError, match="unknown grader"):
        DifficultyConfig(grader="vibes")
    cfg = DifficultyConfig(solvers={"a": {"api": "local", "max_tokens": 8}})
    assert cfg.solvers["a"].max_tokens == 8


def test_paper_grading_prompt_and_parse():
    assert GRADING_SYSTEM.startswith("You are an AI assistant for grading a science problem.")
    assert GRADING_SYSTEM.rstrip().endswith('with only "Yes" or "No" (without quotes).')
    assert GRADING_USER.format(question="Q", attempt="A", solution="S") == \
        "## Problem\nQ\n\n## Attempt\nA\n\n## Correct answer\nS"
    assert parse_yes_no_last_line("They match.\nYes") is True
    assert parse_yes_no_last_line("They differ.\n**No**\n") is False
    assert parse_yes_no_last_line("Yes, but then\nmaybe") is None


def _hosted_solver(url: str) -> LLMConfig:
    # one of easy_and_hard()'s three fails on purpose: above the default limit of a tenth
    return LLMConfig(api="chat", base_url=url, api_key_env="S1_TEST_KEY", retries=1, backoff_s=0.01,
                     max_failure_rate=0.5)


@pytest.mark.parametrize("grader", ["rules", "llm"])
def test_a_question_any_solver_gets_right_is_dropped(hosted, tmp_path, grader):
    dropped = []
    cfg = DifficultyConfig(solvers={"hosted": _hosted_solver(hosted)}, grader=grader,
                           grader_llm=_hosted_solver(hosted) if grader == "llm" else None,
                           cache_dir=str(tmp_path))
    out = difficulty(easy_and_hard(), cfg, on_drop=lambda row, why: dropped.append((row["question"], why)))
    assert out["question"] == ["What is 3+2?"]
    assert out["correct_hosted"] == [False]
    assert dropped[0] == ("What is 2+2?", "solved by hosted")
    assert dropped[1][0].startswith("FAIL") and dropped[1][1].startswith("solver hosted failed: HTTP 500")
    assert len(read_jsonl(next(tmp_path.glob("hosted-*.jsonl")))) == 3
    if grader == "llm":   # the grader's replies are cached too, keyed by the grading prompt
        assert len(read_jsonl(next(tmp_path.glob("grader_hosted-*.jsonl")))) == 2


def test_keep_solved_only_adds_columns(hosted, tmp_path):
    cfg = DifficultyConfig(solvers={"hosted": _hosted_solver(hosted)}, drop_solved=False)
    out = difficulty(easy_and_hard().select([0, 1]), cfg)
    assert out["correct_hosted"] == [True, False]


@pytest.mark.slow
def test_embedded_solver_on_a_real_server_and_trace_tokens(llama_server, tmp_path):
    rows = [json.loads(line) for _, line in zip(range(3), GSM8K.open())]
    ds = Dataset.from_list([{"question": r["question"], "answer": r["answer"].split("####")[-1].strip(),
                             "thinking_trajectories": [r["answer"]]} for r in rows])
    solver = LLMConfig(api="chat", base_url=llama_server + "/v1", max_tokens=16)
    dropped = []
    out = difficulty(ds, DifficultyConfig(solvers={"smollm2": solver}, cache_dir=str(tmp_path),
                                          tokenizer="smollm2-135m"),
                     on_drop=lambda row, why: dropped.append(why))
    assert len(out) + len(dropped) == 3
    assert all(not c for c in out["correct_smollm2"])      # kept means no solver was right
    assert all(why == "solved by smollm2" for why in dropped)
    from s1.generation.models import load_tokenizer, resolve_model
    tok = load_tokenizer(resolve_model("smollm2-135m"))
    kept = {r["question"]: r["thinking_trajectories"][0] for r in ds}
    assert out["trace_tokens"] == [len(tok.encode(kept[q], add_special_tokens=False)) for q in out["question"]]
    assert all(n > 20 for n in out["trace_tokens"])


# ---------------------------------------------------------------------------------------------
# rows without a reference answer (the 59K pool has no answer column)

def _no_answers(boxed: list[bool]) -> Dataset:
    # the stand-in solver answers "Answer: 4": right on 2+2
    return Dataset.from_list([{"question": f"What is 2+2? (version {i})", "answer": None,
                               "solution": "Adding, 2+2 = \\boxed{4}." if b else
                               "Adding two and two, we count on from two: three, then four."}
                              for i, b in enumerate(boxed)])


def test_without_an_answer_the_solutions_box_is_the_reference(hosted, tmp_path):
    dropped = []
    out = difficulty(_no_answers([True, True, True, False]),
                     DifficultyConfig(solvers={"hosted": _hosted_solver(hosted)}, cache_dir=str(tmp_path)),
                     on_drop=lambda row, why: dropped.append(why))
    # before: no reference meant "wrong" for every solver, so nothing was ever dropped as solved
    assert dropped == ["solved by hosted"] * 3 + ["no reference answer to grade against"]
    assert len(out) == 0


def test_most_rows_without_a_reference_is_refused(hosted, tmp_path):
    with pytest.raises(UserError, match="3 of 4 rows have no reference answer"):
        difficulty(_no_answers([True, False, False, False]),
                   DifficultyConfig(solvers={"hosted": _hosted_solver(hosted)}, cache_dir=str(tmp_path)))


def test_without_a_box_the_llm_grader_reads_the_solution(hosted, tmp_path):
    ds = Dataset.from_list([{"question": "What is 2+2?", "answer": None,
                             "solution": "Two and two make four, so the answer is\n4"},
                            {"question": "What is 3+2?", "answer": "5"}])
    seen = []
    out = difficulty(ds, DifficultyConfig(solvers={"hosted": _hosted_solver(hosted)}, grader="rules",
                                          grader_llm=_hosted_solver(hosted), cache_dir=str(tmp_path)),
                     on_drop=lambda row, why: seen.append((row["question"], why)))
    assert seen == [("What is 2+2?", "solved by hosted")]     # graded by the LLM against the solution
    assert out["question"] == ["What is 3+2?"]                 # graded by the rules, wrong
    assert len(read_jsonl(next(tmp_path.glob("grader_hosted-*.jsonl")))) == 1


def test_the_teachers_own_answer_is_graded(hosted, tmp_path):
    ds = Dataset.from_list([{"question": "What is 3+2?", "answer": "5", "attempt": "So \\boxed{5}.",
                             "thinking_trajectories": ["3+2"]},
                            {"question": "What is 3+3?", "answer": "6", "attempt": "It is 7.",
                             "thinking_trajectories": ["3+3"]}])
    stats: dict = {}
    out = difficulty(ds, DifficultyConfig(solvers={"hosted": _hosted_solver(hosted)},
                                          cache_dir=str(tmp_path)), stats=stats)
    assert out["teacher_correct"] == [True, False]
    assert stats["teacher_correct"] == 1 and stats["failed_requests"] == 0


def test_the_reference_of_a_row_without_an_answer_column():
    from s1.curation.pool import answer_of

    assert answer_of("17", "whatever \\boxed{3}") == "17"
    assert answer_of(None, "so \\boxed{\\frac{1}{2}}.") == "\\frac{1}{2}"   # MATH, NuminaMath
    assert answer_of(None, "204") == "204"          # s1 kept AIME's answer as its solution
    assert answer_of(None, "We count the cases one by one and find twelve in all.") is None
    assert answer_of(None, None) is None
