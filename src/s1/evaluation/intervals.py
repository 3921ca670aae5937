"""Uncertainty of accuracies and of the paper's metrics: Wilson / score intervals over questions
(never questions × seeds), bootstrap intervals resampling questions (lm-eval's approach), the
paired bootstrap between runs (the paper's Table 2: its interval) with an exact paired test (its
p-value: McNemar's for 0/1 scores, a sign-flip permutation test otherwise) and the bootstrap of
Scaling.

Scores are fractions in [0, 1] per question (0/1, or a question's mean over seeds or samples).
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from s1.errors import UserError

Z95 = 1.959963984540054  # two-sided 95% normal quantile


# ---------------------------------------------------------------------------------------------
# intervals of an accuracy


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes out of n (95% by default).

    Unlike the normal approximation it stays inside [0, 1] and is not degenerate at 0/n or n/n,
    which matters for 30-question AIME.
    """
    if n <= 0:
        raise UserError("an accuracy interval needs at least one graded question")
    if not 0 <= k <= n:
        raise UserError(f"{k} correct out of {n} questions is impossible")
    return score_interval(k / n, n, z)


def score_interval(mean: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval at a mean score in [0, 1] over n questions.

    With 0/1 scores it is `wilson_interval`; with per-question means over seeds or samples it
    is conservative (a mean over seeds varies less than a 0/1 outcome with the same mean).
    """
    if n <= 0:
        raise UserError("an accuracy interval needs at least one graded question")
    if not 0 <= mean <= 1:
        raise UserError(f"a mean score must lie between 0 and 1, not {mean}")
    denom = 1 + z * z / n
    centre = (mean + z * z / (2 * n)) / denom
    half = z * math.sqrt(mean * (1 - mean) / n + z * z / (4 * n * n)) / denom
    # At 0/n (n/n) the edge is exactly 0 (1); computed, it lands a rounding error inside and the
    # interval would miss its own point estimate.
    low = 0.0 if mean == 0 else max(0.0, centre - half)
    high = 1.0 if mean == 1 else min(1.0, centre + half)
    return low, high


def question_interval(scores: Sequence[float], z: float = Z95) -> tuple[float, float]:
    """95% interval of an accuracy from one score per question: 0/1, or a question's mean over
    seeds or samples. n is the number of questions, never questions × seeds.

    Wilson's score interval at the mean score (`score_interval`). Three identical greedy seeds
    at 15/30 give [33.2, 66.8], the interval of 30 questions, not [39.9, 60.1], which pooling
    90 "questions" would claim.
    """
    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        raise UserError("an accuracy interval needs at least one graded question")
    if np.any((values < 0) | (values > 1)) or np.any(np.isnan(values)):
        raise UserError("per-question scores must lie between 0 and 1")
    return score_interval(min(1.0, float(values.mean())), values.size, z)


def seed_means(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per-question mean score over seeds (one id -> 0/1 mapping per seed); the seeds must
    cover the same questions, or the mean would mix different question sets."""
    if not runs:
        raise UserError("averaging over seeds needs at least one run")
    ids = set(runs[0])
    for r in runs[1:]:
        if set(r) != ids:
            raise UserError(f"the seeds cover different questions ({len(set(r) ^ ids)} not in "
                            f"all); finish the incomplete runs first")
    return {q: statistics.fmean(float(r[q]) for r in runs) for q in sorted(ids)}


def bootstrap_interval(scores: Sequence[float], n_resamples: int = 10_000, seed: int = 0,
                       confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean score, resampling questions (lm-eval's
    approach), for per-question scores of any kind."""
    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        raise UserError("a bootstrap interval needs at least one question")
    _check_confidence(confidence)
    means = _resampled_means(values[None, :], n_resamples, np.random.default_rng(seed))[0]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def _resampled_means(rows: np.ndarray, n_resamples: int, rng) -> np.ndarray:
    """Means of each row over `n_resamples` draws of its columns (questions) with replacement,
    the same draw for every row: shape (rows, n_resamples)."""
    if n_resamples < 1:
        raise UserError(f"the number of resamples must be positive, not {n_resamples}")
    n = rows.shape[1]
    out = np.empty((rows.shape[0], n_resamples))
    chunk = max(1, 2_000_000 // (n * rows.shape[0]))  # bounded memory per step
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[:, start:stop] = rows[:, idx].mean(axis=2)
    return out


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise UserError(f"confidence must be between 0 and 1, not {confidence}")


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1) over seeds; sd is nan for a single seed."""
    if not values:
        raise UserError("mean ± sd needs at least one value")
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return mean, sd


# ---------------------------------------------------------------------------------------------
# Scaling's bootstrap


@dataclass(frozen=True)
class ScalingInterval:
    scaling: float  # on the questions as they are (equals `scaling` of the runs' means)
    low: float
    high: float
    n: int          # questions
    resamples: int


def _as_matrix(per_run: Sequence, name: str) -> tuple[np.ndarray, list[str] | None]:
    """Runs × questions from per-run sequences (aligned) or id -> value mappings (matched)."""
    if all(isinstance(r, Mapping) for r in per_run):
        ids = sorted(per_run[0])
        for r in per_run[1:]:
            if set(r) != set(ids):
                raise UserError(f"the runs' {name} cover different questions "
                                f"({len(set(r) ^ set(ids))} not in all)")
        return np.array([[float(r[q]) for q in ids] for r in per_run]), ids
    if any(isinstance(r, Mapping) for r in per_run):
        raise UserError(f"give every run's {name} as a mapping, or every run's as a sequence")
    rows = [list(r) for r in per_run]
    if len({len(r) for r in rows}) != 1:
        raise UserError(f"every run needs one {name} value per question, in the same order")
    return np.array(rows, dtype=float), None


def scaling_bootstrap(scores: Sequence[Sequence[float] | Mapping[str, float]],
                      thinking: Sequence[float | Sequence[float] | Mapping[str, float]],
                      log2: bool = False, n_resamples: int = 10_000, seed: int = 0,
                      confidence: float = 0.95, least_squares: bool = False) -> ScalingInterval:
    """Bootstrap interval of Scaling, resampling questions, so a slope can be told from noise.

    `scores`: per run, one score per question (0/1 or a mean over seeds; in the unit Scaling
    should have, e.g. 100 × for percentage points). `thinking`: per run, its thinking tokens per
    question (resampled with the scores, as a run's length depends on its questions) or one
    number. Every resample draws the same questions for all runs (the runs are paired); its
    Scaling is the mean pairwise slope of the resampled accuracies against the resampled mean
    thinking. Pairs whose thinking ties in a resample are left out of that resample's mean.
    `least_squares`: the interval of the least-squares slope (`metrics.scaling_fit`) instead.
    """
    if len(scores) != len(thinking) or len(scores) < 2:
        raise UserError("Scaling needs one thinking value per run and at least two runs")
    _check_confidence(confidence)
    acc, ids = _as_matrix(scores, "scores")
    if all(isinstance(t, (int, float)) for t in thinking):
        x_fixed = np.asarray(thinking, dtype=float)[:, None]
        x_rows = None
    else:
        x_rows, x_ids = _as_matrix(thinking, "thinking tokens")
        if x_rows.shape != acc.shape or x_ids != ids:
            raise UserError("thinking tokens and scores must cover the same questions")
        x_fixed = None
    if acc.shape[1] == 0:
        raise UserError("Scaling's bootstrap needs at least one question")
    from s1.evaluation.metrics import scaling, scaling_fit   # metrics re-exports this module

    observed = (scaling_fit if least_squares else scaling)(
        (x_fixed[:, 0] if x_rows is None else x_rows.mean(axis=1)).tolist(),
        acc.mean(axis=1).tolist(), log2=log2)
    rng = np.random.default_rng(seed)
    if x_rows is None:
        draws = _resampled_means(acc, n_resamples, rng)
        xs = np.broadcast_to(x_fixed, draws.shape)
    else:
        both = _resampled_means(np.vstack([acc, x_rows]), n_resamples, rng)
        draws, xs = both[:len(acc)], both[len(acc):]
    if log2:
        with np.errstate(divide="ignore", invalid="ignore"):
            xs = np.where(xs > 0, np.log2(np.where(xs > 0, xs, 1.0)), np.nan)
    a, b = np.triu_indices(len(acc), k=1)
    dx = xs[b] - xs[a]
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # a resample with every pair tied
        if least_squares:
            xc, yc = xs - xs.mean(axis=0), draws - draws.mean(axis=0)
            spread = (xc * xc).sum(axis=0)
            per_draw = np.where(spread > 0, (xc * yc).sum(axis=0) / spread, np.nan)
        else:
            slopes = np.where(dx != 0, (draws[b] - draws[a]) / dx, np.nan)
            per_draw = np.nanmean(slopes, axis=0)
    per_draw = per_draw[~np.isnan(per_draw)]
    if per_draw.size == 0:
        raise UserError("no resample had two runs with different thinking tokens")
    alpha = (1 - confidence) / 2
    low, high = np.quantile(per_draw, [alpha, 1 - alpha])
    return ScalingInterval(observed, float(low), float(high), acc.shape[1], n_resamples)


# ---------------------------------------------------------------------------------------------
# comparing two runs


@dataclass(frozen=True)
class PairedTest:
    """An exact test of "A and B score alike" on paired per-question scores."""

    p_value: float  # two-sided
    a_better: int   # questions where A scored higher (0/1: A right, B wrong; McNemar's b)
    b_better: int   # questions where B scored higher (McNemar's c)
    test: str       # "exact McNemar" (0/1 scores) or "sign-flip permutation"


EXACT_SIGN_FLIPS = 16   # up to 2^16 sign patterns are enumerated; beyond, they are sampled


def paired_test(a: Sequence[float], b: Sequence[float], n_resamples: int = 10_000,
                seed: int = 0) -> PairedTest:
    """Two-sided paired test of A against B on aligned per-question scores.

    0/1 scores: the exact McNemar test, a binomial sign test on the discordant questions (only
    they carry information; under "no difference" each is as likely to favour A as B). Other
    scores (means over seeds or samples): a sign-flip permutation test of the summed difference,
    exact up to 16 differing questions, sampled beyond. A bootstrap of the mean difference is
    no test: at 10/30 against 16/30 with the right answers nested it gives p ≈ 0.003, where
    McNemar's exact p is 2 · 2⁻⁶ = 0.031.
    """
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    differing = diff[diff != 0]
    a_better, b_better = int((differing > 0).sum()), int((differing < 0).sum())
    m = a_better + b_better
    binary = np.isin(np.asarray(a, dtype=float), (0, 1)).all() and \
        np.isin(np.asarray(b, dtype=float), (0, 1)).all()
    if m == 0:
        return PairedTest(1.0, 0, 0, "exact McNemar" if binary else "sign-flip permutation")
    if binary:
        tail = sum(math.comb(m, i) for i in range(min(a_better, b_better) + 1)) / 2 ** m
        return PairedTest(min(1.0, 2 * tail), a_better, b_better, "exact McNemar")
    observed = abs(differing.sum())
    if m <= EXACT_SIGN_FLIPS:
        signs = 1 - 2 * ((np.arange(2 ** m)[:, None] >> np.arange(m)) & 1)
        sums = np.abs(signs @ differing)
        p = float(np.mean(sums >= observed - 1e-12))
    else:
        if n_resamples < 1:
            raise UserError(f"the number of resamples must be positive, not {n_resamples}")
        rng = np.random.default_rng(seed)
        hits = 0
        for start in range(0, n_resamples, 1000):
            signs = rng.choice((-1.0, 1.0), size=(min(1000, n_resamples - start), m))
            hits += int((np.abs(signs @ differing) >= observed - 1e-12).sum())
        p = (hits + 1) / (n_resamples + 1)   # the observed signs count as one draw
    return PairedTest(min(1.0, p), a_better, b_better, "sign-flip permutation")


@dataclass(frozen=True)
class BootstrapResult:
    difference: float  # mean(a) − mean(b) on the questions as they are
    low: float
    high: float
    p_value: float  # two-sided, from the exact paired test (`paired_test`), not the bootstrap
    n: int
    resamples: int
    a_better: int = 0  # questions where A scored higher (0/1: McNemar's discordant b)
    b_better: int = 0  # questions where B scored higher (McNemar's c)
    test: str = ""     # which test gave the p-value


def paired_bootstrap(a: Sequence[float] | Mapping[str, float],
                     b: Sequence[float] | Mapping[str, float],
                     n_resamples: int = 10_000, seed: int = 0,
                     confidence: float = 0.95) -> BootstrapResult:
    """Paired bootstrap interval for accuracy(a) − accuracy(b) over the same questions, with the
    p-value of the exact paired test (`paired_test`: McNemar's for 0/1 scores).

    `a` and `b` are per-question scores (0/1, or a mean over seeds), either aligned sequences or
    mappings from question id to score (then their ids must match). Questions are resampled with
    replacement, the same draw for both runs, so question difficulty cancels out — the paper's
    Table 2 uses this with 10,000 resamples.
    """
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        if not (isinstance(a, Mapping) and isinstance(b, Mapping)):
            raise UserError("give both runs as id -> score mappings, or both as sequences")
        if set(a) != set(b):
            only = len(set(a) ^ set(b))
            raise UserError(f"the two runs cover different questions ({only} not in both)")
        keys = sorted(a)
        a, b = [a[k] for k in keys], [b[k] for k in keys]
    if len(a) != len(b) or len(a) == 0:
        raise UserError(f"a paired bootstrap needs the same questions in both runs "
                        f"(got {len(a)} and {len(b)})")
    _check_confidence(confidence)
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = diff.size
    means = _resampled_means(diff[None, :], n_resamples, np.random.default_rng(seed))[0]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    test = paired_test(a, b, n_resamples=n_resamples, seed=seed)
    return BootstrapResult(float(diff.mean()), float(low), float(high), test.p_value, n,
                           n_resamples, test.a_better, test.b_better, test.test)
