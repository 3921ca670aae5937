"""Metrics: accuracy, sampling metrics, the paper's Control / Scaling / Performance (with a
least-squares slope beside Scaling, and its near-ties flagged), and compute accounting (their
intervals: `s1.evaluation.intervals`).

Conventions: accuracies and shares are fractions in [0, 1] unless a docstring says otherwise;
`scaling` works in whatever unit the accuracies are given (the paper's Table 3 uses percent
points per doubling of thinking tokens: pass percentages and `log2=True`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

import numpy as np

from s1.errors import UserError
# The intervals live in their own module; their names stay importable from here.
from s1.evaluation.intervals import (Z95, BootstrapResult, PairedTest,  # noqa: F401
                                     ScalingInterval, bootstrap_interval, mean_sd,
                                     paired_bootstrap, paired_test,
                                     question_interval, scaling_bootstrap, score_interval,
                                     seed_means, wilson_interval)
from s1.evaluation.verifier import cluster_answers


# ---------------------------------------------------------------------------------------------
# accuracy


@dataclass(frozen=True)
class Accuracy:
    value: float
    low: float
    high: float
    correct: int
    total: int

    def __str__(self) -> str:
        return (f"{100 * self.value:.1f}% [{100 * self.low:.1f}, {100 * self.high:.1f}] "
                f"({self.correct}/{self.total})")


def accuracy(correct: Sequence[bool]) -> Accuracy:
    """Share correct with its 95% Wilson interval."""
    k, n = int(sum(bool(c) for c in correct)), len(correct)
    low, high = wilson_interval(k, n)
    return Accuracy(k / n, low, high, k, n)


# ---------------------------------------------------------------------------------------------
# several samples per question


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 − C(n−c, k) / C(n, k) for n samples, c correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise UserError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    # The product form avoids huge binomials: C(n−c,k)/C(n,k) = Π_{i=n−c+1}^{n} (1 − k/i).
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def cov_at_k(correct: Sequence[bool], k: int) -> bool:
    """Coverage at k (s1's cov@k): any of the first k samples is correct."""
    _check_k(correct, k)
    return any(correct[:k])


def maj_at_k(extracted: Sequence[str | None], correct: Sequence[bool], k: int,
             answer_type: str = "math") -> bool:
    """Majority vote at k: is the most common answer among the first k samples correct?

    Votes go to classes of equivalent extracted answers ("023" and "23" are one vote, so are
    `\\frac12`, `\\frac{1}{2}`, `1/2` and `0.5`: `verifier.cluster_answers`), never to whole
    generations; samples without an answer do not vote. Ties go
    to the answer reached first. The winner is correct when the samples that gave it were graded
    correct (all of them share one answer, so they share a grade).
    """
    _check_k(correct, k)
    if len(extracted) != len(correct):
        raise UserError("maj@k needs one extracted answer per graded sample")
    votes: dict[int, list[bool]] = {}
    for key, ok in zip(cluster_answers(list(extracted[:k]), answer_type), correct[:k]):
        if key is not None:
            votes.setdefault(key, []).append(bool(ok))
    if not votes:
        return False
    winner = max(votes.values(), key=len)  # max keeps the first of equal counts
    return sum(winner) * 2 > len(winner)


def _check_k(correct: Sequence[bool], k: int) -> None:
    if not 1 <= k <= len(correct):
        raise UserError(f"k={k} needs between 1 and {len(correct)} samples per question")


# ---------------------------------------------------------------------------------------------
# thinking tokens and the paper's three metrics (§3.2)


def thinking_stats(tokens: Sequence[int]) -> dict[str, float]:
    """Mean, median, 90th percentile and max of thinking tokens per question."""
    if not tokens:
        raise UserError("thinking-token statistics need at least one trace")
    arr = np.asarray(tokens, dtype=float)
    return {"n": int(arr.size), "mean": float(arr.mean()), "median": float(np.median(arr)),
            "p90": float(np.percentile(arr, 90)), "max": float(arr.max())}


def _per_run(bound: float | Sequence[float | None] | None, n: int, name: str) -> list:
    if bound is None or isinstance(bound, (int, float)):
        return [bound] * n
    if len(bound) != n:
        raise UserError(f"{name} needs one bound per run ({n}), got {len(bound)}")
    return list(bound)


def control(thinking_tokens: Sequence[float], a_max: float | Sequence[float | None] | None = None,
            a_min: float | Sequence[float | None] | None = None) -> float:
    """Control: the share of runs whose thinking tokens stay within [a_min, a_max].

    One value per run (usually its average thinking tokens; per-question values give the
    per-question variant). Bounds are one number for all runs or one per run (each run's
    instructed budget); a missing bound is no constraint. The paper prints it in percent.
    """
    n = len(thinking_tokens)
    if n == 0:
        raise UserError("Control needs at least one run")
    highs, lows = _per_run(a_max, n, "a_max"), _per_run(a_min, n, "a_min")
    inside = sum((lo is None or a >= lo) and (hi is None or a <= hi)
                 for a, lo, hi in zip(thinking_tokens, lows, highs))
    return inside / n


NEAR_TIE_DOUBLINGS = 0.1   # points closer than this in log2 thinking tokens are near-ties


def _log2_tokens(thinking_tokens: Sequence[float], log2: bool) -> list[float]:
    xs = [float(t) for t in thinking_tokens]
    if log2:
        if any(x <= 0 for x in xs):
            raise UserError("Scaling on log2 thinking tokens needs every run above 0 tokens")
        xs = [math.log2(x) for x in xs]
    return xs


def scaling(thinking_tokens: Sequence[float], accuracies: Sequence[float],
            log2: bool = False) -> float:
    """Scaling: the average slope of accuracy against thinking tokens over all pairs of runs.

    (1 / C(|A|, 2)) Σ_{b > a} (f(b) − f(a)) / (b − a), with `log2=True` measuring compute in
    doublings as the paper's reported figures do. Pairs of runs at identical compute have no
    slope and are left out of both the sum and the count. Pairs at almost identical compute
    keep their slope, mostly noise over a tiny step: `near_ties` finds them, `scaling_fit` is
    the slope they cannot swing.
    """
    if len(thinking_tokens) != len(accuracies):
        raise UserError("Scaling needs one accuracy per run")
    xs = _log2_tokens(thinking_tokens, log2)
    slopes = [(fb - fa) / (xb - xa)
              for (xa, fa), (xb, fb) in combinations(zip(xs, accuracies), 2) if xb != xa]
    if not slopes:
        raise UserError("Scaling needs at least two runs with different thinking tokens")
    return statistics.fmean(slopes)


def scaling_fit(thinking_tokens: Sequence[float], accuracies: Sequence[float],
                log2: bool = False) -> float:
    """The least-squares slope of accuracy against thinking tokens (log2: per doubling).

    Beside the paper's mean pairwise slope: two runs at almost the same thinking (a cap the
    model never reaches, 5,000 against 5,010 tokens) give one pair a slope of noise over a step
    of 0.003 doublings, which can swing the pairwise mean by tens of points; here a point's
    weight grows with its distance from the others, so such a pair barely moves the slope.
    """
    if len(thinking_tokens) != len(accuracies):
        raise UserError("Scaling needs one accuracy per run")
    xs = np.asarray(_log2_tokens(thinking_tokens, log2))
    ys = np.asarray(accuracies, dtype=float)
    spread = float(((xs - xs.mean()) ** 2).sum())
    if spread == 0:
        raise UserError("Scaling needs at least two runs with different thinking tokens")
    return float(((xs - xs.mean()) * (ys - ys.mean())).sum() / spread)


def near_ties(thinking_tokens: Sequence[float],
              doublings: float = NEAR_TIE_DOUBLINGS) -> list[tuple[int, int]]:
    """Pairs of runs (indices) whose thinking tokens lie within `doublings` of each other on a
    log2 scale: the pairs whose slope dominates the paper's Scaling with noise."""
    xs = _log2_tokens(thinking_tokens, True)
    return [(i, j) for i, j in combinations(range(len(xs)), 2) if abs(xs[i] - xs[j]) < doublings]


def performance(accuracies: Sequence[float]) -> float:
    """Performance: the best accuracy over the runs."""
    if not accuracies:
        raise UserError("Performance needs at least one run")
    return max(accuracies)


# ---------------------------------------------------------------------------------------------
# compute accounting


def estimate_flops(n_params: float, prompt_tokens: int | Sequence[int],
                   generated_tokens: int | Sequence[int], n_layers: int | None = None,
                   d_model: int | None = None) -> float:
    """Inference FLOPs of generating after a prompt, summed over sequences.

    Per token: 2·N for the weights (a multiply-add per parameter) plus, per layer at context
    length t, 2·t·d_model for the attention logits (QK) and 2·t·d_model for the weighted sum of
    the values (AV), so 4·n_layers·t·d_model (Kaplan et al. 2020's Table 1 counts the logits
    only). Over a sequence of T = prompt + generated tokens that is
    2·N·T + 2·n_layers·d_model·T·(T + 1). Without the shape only the weight term is counted.
    Parallel samples that share a prompt each count it, as they pay for attention over it.
    """
    prompts = [prompt_tokens] if isinstance(prompt_tokens, int) else list(prompt_tokens)
    gens = [generated_tokens] if isinstance(generated_tokens, int) else list(generated_tokens)
    if len(prompts) != len(gens):
        raise UserError("FLOPs need one prompt length per generation")
    if n_params <= 0:
        raise UserError(f"the model size must be positive, not {n_params}")
    total = 0.0
    for p, g in zip(prompts, gens):
        if p < 0 or g < 0:
            raise UserError("token counts cannot be negative")
        t = p + g
        total += 2.0 * n_params * t
        if n_layers and d_model:
            total += 2.0 * n_layers * d_model * t * (t + 1)
    return total


def compute_tokens(prompt_tokens: Sequence[int], generated_tokens: Sequence[int]) -> dict:
    """Token totals of a run: prompt, generated, and all processed."""
    p, g = int(sum(prompt_tokens)), int(sum(generated_tokens))
    return {"prompt_tokens": p, "generated_tokens": g, "total_tokens": p + g}
