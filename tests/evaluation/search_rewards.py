"""Reward models for the search tests: hand-made ones and a step checker of the miniature world
(each step line compared with the problem's known solution), loadable as `module:function`."""

from __future__ import annotations

from typing import Sequence

from s1.evaluation.rewards import RewardModel
from s1.miniature.world import benchmark_rows


class StepChecker(RewardModel):
    """A process reward model of the miniature world: step i scores 1 when it is the solution's
    line i, else 0 (the question's known steps; blank steps are skipped)."""

    name = "step-checker"
    process = True

    def __init__(self) -> None:
        super().__init__()
        self.solutions = {r["question"]: r["solution"].split("\n") for r in benchmark_rows()}

    def score(self, question: str, candidates: Sequence[Sequence[str]]) -> list[list[float]]:
        solution = self.solutions[question]
        out = []
        for steps in candidates:
            lines = [s.strip() for s in steps]
            self.tokens += sum(len(s) for s in steps)
            at, scores = 0, []
            for line in lines:
                scores.append(float(at < len(solution) and line == solution[at]) if line else 1.0)
                at += bool(line)
            out.append(scores)
        return out


class Constant(RewardModel):
    """Every step scores the same (an uninformed reward model)."""

    name = "constant"

    def score(self, question, candidates):
        self.tokens += sum(len(s) for c in candidates for s in c)
        return [[0.5] * len(c) for c in candidates]


def step_checker() -> StepChecker:
    return StepChecker()


def constant() -> Constant:
    return Constant()
