"""Grading on the real shipped answers, in the forms models write them, and what must be wrong."""

import re
import time
from collections import Counter

import pytest

from s1.errors import UserError
from s1.evaluation import Item, grade, grade_many, load_benchmark, split_answer
from s1.evaluation.extract import as_integer

AIME = load_benchmark("aime24")
MATH = load_benchmark("math500")


def think(thought: str, answer: str, fmt: str = "s1") -> str:
    """A full generation: thinking (with an abandoned boxed attempt), delimiter, answer."""
    if fmt == "s1":
        return f"<|im_start|>think\n{thought}\n<|im_start|>answer\n{answer}"
    return f"<think>\n{thought}\n</think>\n\n{answer}"


def dfrac(latex: str) -> str:
    return latex.replace("\\frac", "\\dfrac")


def test_aime24_every_answer_in_every_form():
    pairs, kinds = [], []
    for item in AIME:
        n = int(item.answer)
        forms = {
            "published boxed": f"So the answer is \\boxed{{{item.answer}}}.",
            "no leading zeros": f"\\boxed{{{n}}}",
            "leading zeros": f"Answer: {n:03d}",
            "bold answer line": f"**Answer:** {n}",
            "inline math box": f"The final answer is $\\boxed{{{n:03d}}}$.",
            "thinking s1": split_answer(think(f"maybe \\boxed{{{n + 1}}}? Wait.",
                                              f"Final Answer: \\boxed{{{n}}}")),
            "thinking tags": split_answer(think(f"\\boxed{{{n + 3}}} no", f"**{n}**\n\nAnswer: {n}",
                                                fmt="tags")),
        }
        for kind, text in forms.items():
            pairs.append((text, item))
            kinds.append(kind)
    grades = grade_many(pairs)
    wrong = [(k, t, g) for k, (t, _), g in zip(kinds, pairs, grades) if not g.correct]
    assert not wrong
    assert {g.reason for g in grades} == {"integer match"}
    assert all(as_integer(g.extracted) == int(it.answer) for (_, it), g in zip(pairs, grades))


def test_aime24_wrong_answers_are_wrong():
    pairs = []
    for item in AIME:
        n = int(item.answer)
        pairs += [
            (f"\\boxed{{{n + 1}}}", item),
            (f"Answer: {n - 1}", item),
            # right inside the thinking, wrong in the answer: only the answer counts
            (split_answer(think(f"\\boxed{{{n}}}", f"\\boxed{{{n + 10}}}")), item),
            (f"{n}", item),  # a bare number with neither box nor "Answer:" is not an answer
        ]
    grades = grade_many(pairs)
    assert not any(g.correct for g in grades)
    assert Counter(g.reason for g in grades) == {"integer mismatch": 3 * len(AIME),
                                                 "no answer found": len(AIME)}


def test_math500_every_gold_answer_graded_against_itself_in_varied_forms():
    pairs, kinds = [], []
    for item in MATH:
        gold = item.answer
        forms = {
            "boxed dfrac": f"Thus the answer is $\\boxed{{{dfrac(gold)}}}$.",
            "answer line": f"Answer: ${gold}$",
            "thinking with earlier wrong box": split_answer(think(
                f"First guess: \\boxed{{{gold}+1}}. Wait, that is wrong.",
                f"The answer is \\boxed{{{gold}}}.")),
            "spaced": f"\\boxed{{ {' '.join(gold.split())} }}",
        }
        if re.fullmatch(r"\d+", gold):
            forms["leading zeros"] = f"\\boxed{{00{gold}}}"
        for kind, text in forms.items():
            pairs.append((text, item))
            kinds.append(kind)
    grades = grade_many(pairs, timeout=10.0)
    wrong = [(k, it.answer, g) for k, (_, it), g in zip(kinds, pairs, grades) if not g.correct]
    assert not wrong
    reasons = Counter(g.reason for g in grades)
    # each path was exercised: integers, untouched text, and math-verify on rewritten LaTeX
    assert reasons["integer match"] > 0 and reasons["exact match"] > 0
    assert reasons["math-verify equal"] >= sum("\\frac" in it.answer for it in MATH)


def test_math500_perturbed_answers_are_wrong():
    pairs = []
    for item in MATH:
        pairs.append((f"\\boxed{{{item.answer}+1}}", item))
        pairs.append((split_answer(think(f"\\boxed{{{item.answer}}}",
                                         f"\\boxed{{{item.answer}+1}}")), item))
    grades = grade_many(pairs, timeout=10.0)
    right = [(it.answer, g) for (_, it), g in zip(pairs, grades) if g.correct]
    assert not right
    assert all(g.extracted and g.extracted.endswith("+1") for g in grades)


def test_math500_equivalent_forms_math_verify_accepts():
    half = Item("h", "q", "\\frac{1}{2}", "math")
    assert grade("\\boxed{0.5}", half).reason == "math-verify equal"
    assert grade("\\boxed{1/2}", half).correct
    assert not grade("\\boxed{\\frac{1}{3}}", half).correct
    interval = next(i for i in MATH if i.answer == "(3,4]")
    assert not grade("\\boxed{(3,4)}", interval).correct
    assert grade("\\boxed{\\left(3, 4\\right]}", interval).correct


def test_gsm8k_answers_with_thousands_separators():
    bench = load_benchmark("gsm8k")
    pairs = [(f"She makes ${int(it.answer):,} in total.\nAnswer: {int(it.answer):,}", it)
             for it in bench]
    grades = grade_many(pairs)
    assert all(g.correct and g.reason == "integer match" for g in grades)
    assert not grade(f"Answer: {int(bench[0].answer) + 1:,}", bench[0]).correct


def test_boxes_inside_thinking_are_ignored_once_split():
    # math-verify 0.9.0 (probed): it merges every box of a text into a set, so the segment matters.
    item = Item("seven", "q", "7", "math")
    assert grade("\\boxed{5}\nWait\n\\boxed{7}", item).correct  # last box, not the set {5, 7}
    full = "<think>maybe \\boxed{7}? ...</think> The final answer is \\boxed{5}."
    assert not grade(split_answer(full), item).correct
    assert grade(split_answer(full.replace("{5}", "{7}").replace("{7}?", "{5}?")), item).correct


def test_choice_items():
    item = Item("g1", "made-up question", "C", "choice")
    assert grade("Answer: (C)", item) .reason == "letter match"
    assert grade("**Answer: C**", item).correct
    assert grade("$\\boxed{\\text{C}}$", item).correct
    assert grade("Answer: B", item).reason == "letter mismatch"
    assert grade("A careful analysis, nothing more.", item).reason == "no answer found"


def test_no_answer_and_bad_inputs():
    item = AIME[0]
    g = grade("I could not solve it.", item)
    assert (g.correct, g.extracted, g.reason) == (False, None, "no answer found")
    with pytest.raises(UserError):
        grade(None, item)
    with pytest.raises(UserError):
        grade("\\boxed{1}", item, timeout=0)


def test_model_text_is_never_run(tmp_path):
    marker = tmp_path / "ran"
    item = Item("m", "q", "\\frac{1}{2}", "math")
    for payload in (f"__import__('os').system('touch {marker}')",
                    f"(lambda: open('{marker}', 'w'))()"):
        g = grade(f"\\boxed{{{payload}}}", item)
        assert not g.correct
        g = grade(f"Answer: {payload}", item)
        assert not g.correct
    assert not marker.exists()


def test_verification_timeout_kills_and_recovers():
    item = Item("five", "q", "5", "math")
    grade("\\boxed{\\frac{10}{2}}", item)  # warm the worker so start-up is not measured
    start = time.monotonic()
    g = grade("\\boxed{9^{9^{9}}}", item, timeout=1.0)
    elapsed = time.monotonic() - start
    assert not g.correct and g.reason.startswith("timeout")
    assert elapsed < 2.0
    after = grade("\\boxed{\\frac{10}{2}}", item)  # a fresh worker took over
    assert after.correct and after.reason == "math-verify equal"


@pytest.mark.parametrize("text, correct, extracted", [
    ("Final Answer: 16 eggs * 4 = 64 eggs", True, "64"),     # working shown on the answer line
    ("Answer: 2 + 62 = 64.", True, "64"),
    ("Final Answer: 1,064 dollars", False, "1,064"),
    ("Final Answer: 64 - 1 = 63", False, "63"),
    ("Answer: 3.5 then 64.5", False, None),                   # decimals are not read as integers
])
def test_integer_answers_read_the_last_number_of_the_answer_line(text, correct, extracted):
    item = Item("t", "How many eggs?", "64", "integer", {})
    g = grade(text, item)
    assert g.correct is correct
    if extracted is not None:
        assert g.extracted == extracted
