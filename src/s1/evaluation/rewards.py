"""Reward models: one interface for every way a solution (or each step of it) is scored.

The contract the verifier-guided methods (best-of-N with a reward model, weighted majority, beam
search, REBASE) program against. A candidate is the thinking so far, already split into steps
(the search splits at its step delimiter; each reward model joins steps in its own convention).

- a process reward model (`process = True`) gives one score per step;
- an outcome reward model (`process = False`) gives one score for the whole candidate, returned
  as a one-element list;
- `aggregate` turns a candidate's step scores into one number (min, last, product or mean).

Each model counts what it spent (`tokens`, `flops`) so compare-compute can set the search's cost
beside budget forcing's. The loaders (`load_reward_model`) and the conventions
(Qwen2.5-Math-PRM, Math-Shepherd, sequence classifiers, served, programmatic) grow here.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Sequence

from s1.errors import UserError

AGGREGATIONS = ("min", "last", "prod", "mean")


class RewardModel(ABC):
    """Scores candidates. Subclasses set `name` (the spec it was loaded from) and `process`."""

    name: str = ""
    process: bool = True       # True: one score per step (PRM); False: one per candidate (ORM)

    def __init__(self) -> None:
        self.tokens = 0        # tokens the model read so far
        self.flops = 0.0       # FLOPs spent so far (0 for a model that runs no network)

    @abstractmethod
    def score(self, question: str, candidates: Sequence[Sequence[str]]) -> list[list[float]]:
        """For each candidate (its steps so far, in order), its scores, higher is better: one
        per step for a PRM, a one-element list for an ORM."""

    def close(self) -> None:
        """Free what the model holds."""


def aggregate(scores: Sequence[float], how: str = "min") -> float:
    """One number from a candidate's step scores: "min" (the weakest step, the usual PRM rule),
    "last" (the last step's), "prod" (their product) or "mean"."""
    if how not in AGGREGATIONS:
        raise UserError(f"unknown aggregation {how!r}; use one of {', '.join(AGGREGATIONS)}")
    if not scores:
        raise UserError("a candidate without scored steps cannot be aggregated")
    if how == "min":
        return float(min(scores))
    if how == "last":
        return float(scores[-1])
    if how == "prod":
        return float(math.prod(scores))
    return float(sum(scores) / len(scores))
