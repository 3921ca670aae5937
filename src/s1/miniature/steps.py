"""The miniature world's exact step checker: a process reward model that needs no network.

A question of the world determines its solution's steps (each family's parser in `world.py`
recomputes them with the generator's own formatting). A model's thinking is checked line by
line against them:

- a line is right (1.0) when it is the next step the solution needs, given the right steps
  written so far; a wrong line (0.0) does not advance, so after a slip the next right line is
  still the step that slipped (the teacher's "Wait, <step>" correction scores 1.0);
- "Wait, <step>" is scored as its step. Right after a right line it may re-state that line (the
  teacher's confirmations): that scores 1.0 and does not advance, since re-checking is how the
  teacher writes it (and a counting solution may repeat a line, "c 4" then "c 4", as two steps).
  A bare repeat of a written step is not progress and scores 0.0.
"""

from __future__ import annotations

from typing import Sequence

from s1.errors import UserError
from s1.miniature.world import DOMAINS

WAIT = "Wait, "


def solution_steps(question: str) -> list[str] | None:
    """The steps the question's family solves it with, or None for a question not of the world."""
    for domain in DOMAINS.values():
        steps = domain.parse(question.strip())
        if steps is not None:
            return steps
    return None


def check_steps(question: str, lines: Sequence[str]) -> list[float]:
    """1.0 or 0.0 per line: is it a right step given the question and the lines before it?"""
    solution = solution_steps(question)
    if solution is None:
        # The question is not quoted: it may be one that must not be printed (GPQA).
        raise UserError("the programmatic reward model checks only the miniature world's "
                        "questions (--benchmark tiny)")
    done, scores = 0, []           # right steps written so far
    previous = None                # the step of the line before, when it was right
    for line in lines:
        line = line.strip()
        recheck = line.startswith(WAIT)
        step = line[len(WAIT):].strip() if recheck else line
        if recheck and step == previous:
            scores.append(1.0)     # a confirmation of the line before
        elif done < len(solution) and step == solution[done]:
            done += 1
            scores.append(1.0)
        else:
            scores.append(0.0)
        previous = step if scores[-1] else None
    return scores
