"""The programmatic step checker: every teacher step of generated problems is right, every slip
is wrong, and a wrong line does not move the solution on."""

from __future__ import annotations

import random

import pytest

from s1.errors import UserError
from s1.miniature.steps import check_steps, solution_steps
from s1.miniature.world import WorldConfig, generate


def _slipped(lines: list[str]) -> list[bool]:
    """The teacher's slips: a line followed by "Wait, <a different step>"."""
    step = [line.removeprefix("Wait, ") for line in lines]
    return [i + 1 < len(lines) and lines[i + 1].startswith("Wait, ") and step[i + 1] != step[i]
            for i in range(len(lines))]


def test_teacher_steps_check_right_and_slips_wrong():
    rows = generate(600, 11, WorldConfig(slip_rate=0.7, recheck_rate=0.5))
    slips = rechecks = 0
    for row in rows:
        lines = row["trace"].split("\n")
        expected = [0.0 if s else 1.0 for s in _slipped(lines)]
        assert check_steps(row["question"], lines) == expected, row
        assert check_steps(row["question"], row["solution"].split("\n")) == [1.0] * len(
            row["solution"].split("\n"))
        slips += expected.count(0.0)
        rechecks += sum(1 for i, l in enumerate(lines) if i and l == "Wait, " + lines[i - 1])
    assert slips > 300 and rechecks > 150        # both cases are really exercised
    assert {r["domain"] for r in rows} == set(WorldConfig().domains)


def test_a_wrong_line_does_not_advance_and_repeats_are_not_progress():
    q = "Compute 7*3^3 mod 10."
    steps = solution_steps(q)
    assert steps == ["7*3=21=1", "1*3=3", "3*3=9"]
    # the slip, a line computed from the slip, the correction, its re-check, a bare repeat,
    # a re-check of the repeat (not of a right line), the rest, one step too many
    lines = ["7*3=21=2", "2*3=6", "Wait, 7*3=21=1", "Wait, 7*3=21=1", "7*3=21=1",
             "Wait, 7*3=21=1", "1*3=3", "3*3=9", "9*3=27=7", ""]
    assert check_steps(q, lines) == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]


def test_cut_lines_and_other_questions():
    q = "How many times does a occur in abba?"
    assert check_steps(q, ["a 1", "b 1", "b"]) == [1.0, 1.0, 0.0]   # thinking cut mid-line
    with pytest.raises(UserError, match="miniature world"):
        check_steps("What is the capital of France?", ["Paris"])


def test_parsers_recover_every_family_exactly():
    rng = random.Random(3)
    for row in generate(300, rng.randint(1, 99), WorldConfig(max_difficulty=8)):
        assert "\n".join(solution_steps(row["question"])) == row["solution"]
