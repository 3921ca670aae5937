"""Answer extraction: answer segment, last box, `Answer:` line, integers, option letters."""

import pytest

from s1.evaluation.extract import (answer_line, as_integer, canonical_answer, extract_answer,
                                   extract_choice, last_boxed, split_answer)


def test_split_answer_takes_the_text_after_the_last_delimiter():
    s1_text = "<|im_start|>think\nmaybe \\boxed{5}\n<|im_start|>answer\nAnswer: \\boxed{7}"
    assert split_answer(s1_text) == "Answer: \\boxed{7}"
    r1_text = "<think>\ntry \\boxed{5}</think>\n\nThe final answer is \\boxed{7}."
    assert split_answer(r1_text) == "The final answer is \\boxed{7}."
    twice = "<think>a</think> b </think> c"
    assert split_answer(twice) == " c"
    assert split_answer("no delimiter \\boxed{3}") == "no delimiter \\boxed{3}"
    assert split_answer("x[END]y", end_delimiters=["[END]"]) == "y"
    # the later of two different delimiters wins
    mixed = "<think>x</think> y <|im_start|>answer\nz"
    assert split_answer(mixed) == "z"


@pytest.mark.parametrize("text,expected", [
    ("so \\boxed{42}.", "42"),
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("first \\boxed{5} then \\boxed{7}", "7"),
    ("\\fbox{12}", "12"),
    ("\\boxed{1} and later \\fbox{2}", "2"),
    ("\\boxed 5$ done", "5"),
    ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
    ("\\boxed{a^{b^{c}}}", "a^{b^{c}}"),
    ("\\boxed{\\boxed{9}}", "9"),
    ("\\boxed{3} then \\boxed{4", None),  # an unfinished last box is not replaced by an older one
    ("no box", None),
    ("\\boxedfoo{3}", None),
])
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_last_boxed_handles_deep_nesting():
    deep = "\\boxed{" + "{" * 10_000 + "x" + "}" * 10_000 + "}"
    assert last_boxed(deep) == "{" * 10_000 + "x" + "}" * 10_000


@pytest.mark.parametrize("text,expected", [
    ("Answer: 42", "42"),
    ("answer : $\\frac{1}{2}$.", "\\frac{1}{2}"),
    ("**Answer:** 17", "17"),
    ("Answer: 3\nAnswer: 4\nbye", "4"),
    ("Final Answer:\n\n**73**", "73"),
    ("The answer is 5", None),
    ("Answer:", None),
])
def test_answer_line(text, expected):
    assert answer_line(text) == expected


def test_extract_answer_prefers_the_box_over_the_answer_line():
    assert extract_answer("Answer: 3, so \\boxed{4}") == "4"
    assert extract_answer("Answer: 3\n\\boxed{}") == "3"
    assert extract_answer("nothing to see") is None


@pytest.mark.parametrize("text,expected", [
    ("023", 23), ("1,000", 1000), ("$42$", 42), ("\\text{42}", 42), ("-7", -7),
    ("10,\\!080", 10080),
    ("42.", 42), ("1,00", None), ("4.5", None), ("x", None), (None, None),
])
def test_as_integer(text, expected):
    assert as_integer(text) == expected


def test_canonical_answer_merges_formatting_only():
    assert canonical_answer("023", "integer") == canonical_answer("23", "integer") == "23"
    assert canonical_answer("\\dfrac{1}{2}", "math") == canonical_answer("\\frac{1}{2}", "math")
    assert canonical_answer("\\left( 1, 2 \\right)", "math") == canonical_answer("(1,2)", "math")
    assert canonical_answer("90^\\circ", "math") == canonical_answer("90", "math")
    assert canonical_answer("\\frac{1}{2}", "math") != canonical_answer("\\frac{1}{3}", "math")
    assert canonical_answer("(b)", "choice") == "B"
    assert canonical_answer(None, "math") is None


@pytest.mark.parametrize("text,expected", [
    ("(B)", "B"),
    ("\\boxed{B}", "B"),
    ("$\\boxed{\\text{B}}$", "B"),
    ("Answer: B", "B"),
    ("**Answer: B**", "B"),
    ("Answer: (C) 3.2 eV", "C"),
    ("answer: d", "D"),
    ("The correct answer is (A).", "A"),
    ("Therefore the answer is $\\boxed{D}$.", "D"),
    ("Option C is correct.", "C"),
    ("A careful analysis of all four options shows \\boxed{D}", "D"),
    ("Answer: A", "A"),
    ("B", "B"),
    ("C.", "C"),
    ("\\boxed{(B) 3.2 eV}", "B"),
    ("A careful analysis shows nothing.", None),
    ("Answer: A careful look is needed", None),
    ("A bird in the hand", None),
    ("no letter at all", None),
])
def test_extract_choice(text, expected):
    assert extract_choice(text) == expected
