"""Metrics on cases computed by hand (the arithmetic is written next to each assertion)."""

import math
import random

import pytest

from s1.errors import UserError
from s1.evaluation.metrics import (accuracy, bootstrap_interval, compute_tokens, control,
                                   cov_at_k, estimate_flops, maj_at_k, mean_sd, near_ties,
                                   paired_bootstrap, paired_test, pass_at_k, performance,
                                   question_interval, scaling, scaling_bootstrap, scaling_fit,
                                   score_interval, seed_means, thinking_stats, wilson_interval)


def test_wilson_against_hand_computation_and_known_values():
    # 15/30, z=1.959964: denom = 1 + z²/30 = 1.128049; centre = (0.5 + z²/60)/denom = 0.5;
    # half = z·sqrt(0.25/30 + z²/3600)/denom = 1.959964·0.0969557/1.128049 = 0.168459
    low, high = wilson_interval(15, 30)
    assert low == pytest.approx(0.5 - 0.168459, abs=1e-5)
    assert high == pytest.approx(0.5 + 0.168459, abs=1e-5)
    # 0/10: the interval is [0, z²/n / (1 + z²/n)] = [0, 0.384146/1.384146] = [0, 0.27753]
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.27753, abs=1e-5)
    # n/n mirrors 0/n: [1 - 0.27753, 1]
    low, high = wilson_interval(10, 10)
    assert low == pytest.approx(1 - 0.27753, abs=1e-5) and high == 1.0
    # 8/10 is the textbook example: [0.4902, 0.9433]
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    # symmetric: k/n and (n-k)/n mirror each other
    a, b = wilson_interval(3, 30), wilson_interval(27, 30)
    assert a[0] == pytest.approx(1 - b[1]) and a[1] == pytest.approx(1 - b[0])
    with pytest.raises(UserError):
        wilson_interval(1, 0)
    with pytest.raises(UserError):
        wilson_interval(5, 4)


def test_accuracy_carries_its_interval():
    acc = accuracy([True] * 8 + [False] * 2)
    assert (acc.value, acc.correct, acc.total) == (0.8, 8, 10)
    assert (acc.low, acc.high) == wilson_interval(8, 10)
    assert str(acc).startswith("80.0% [49.0, 94.3] (8/10)")


def test_mean_sd_over_seeds():
    mean, sd = mean_sd([0.5, 0.6, 0.7])
    # mean 0.6; deviations ±0.1, 0 -> sample variance 0.02/2 = 0.01 -> sd 0.1
    assert mean == pytest.approx(0.6) and sd == pytest.approx(0.1)
    mean, sd = mean_sd([0.4])
    assert mean == 0.4 and math.isnan(sd)


def test_pass_at_k():
    # n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10 = 0.7
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    # k=1 is the share correct
    assert pass_at_k(64, 17, 1) == pytest.approx(17 / 64)
    # n=10, c=3, k=5: 1 - C(7,5)/C(10,5) = 1 - 21/252 = 0.916667
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)
    assert pass_at_k(4, 0, 2) == 0.0
    assert pass_at_k(5, 4, 2) == 1.0  # n - c = 1 < k: every draw of 2 holds a correct one
    # against the binomial formula on a grid
    for n in range(1, 12):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1.0 if n - c < k else 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(exact)
    with pytest.raises(UserError):
        pass_at_k(4, 5, 1)


def test_maj_and_cov_at_k_vote_on_equivalent_answers():
    extracted = ["023", "23", "\\frac{1}{2}", None, "\\dfrac12", "0.5"]
    correct = [True, True, False, False, False, False]
    # k=3: votes {23: 2 ("023" and "23"), 1/2: 1}; None does not vote
    assert maj_at_k(extracted, correct, 3, answer_type="math") is True
    # k=5: {23: 2, 1/2: 2 (\frac{1}{2} and \dfrac12)}: a 2:2 tie, the answer reached first wins
    assert maj_at_k(extracted, correct, 5, answer_type="math") is True
    # k=6: 0.5 is the same number: {23: 2, 1/2: 3}, and the wrong half wins
    assert maj_at_k(extracted, correct, 6, answer_type="math") is False
    # three votes for a wrong answer beat two for the right one
    assert maj_at_k(["5", "7", "5", "7", "5"], [False, True, False, True, False], 5) is False
    assert cov_at_k([False, True, False, True, False], 5) is True
    assert cov_at_k([False, True, False, True, False], 1) is False
    # choice answers vote by letter
    assert maj_at_k(["(B)", "b", "Answer: C"], [True, True, False], 3, answer_type="choice")
    assert maj_at_k([None, None], [False, False], 2) is False
    with pytest.raises(UserError):
        maj_at_k(["1"], [True], 2)


def test_thinking_stats():
    s = thinking_stats([1, 2, 3, 4, 100])
    # mean 110/5 = 22; median 3; p90 at rank 0.9*4 = 3.6: 4 + 0.6*(100-4) = 61.6
    assert s == {"n": 5, "mean": 22.0, "median": 3.0, "p90": pytest.approx(61.6), "max": 100.0}


def test_control_share_of_runs_within_bounds():
    tokens = [480, 1010, 1990, 4100]
    # budgets 512/1024/2048/4096: only the last run (4100 > 4096) overshoots -> 3/4
    assert control(tokens, a_max=[512, 1024, 2048, 4096]) == 0.75
    assert control(tokens, a_max=2000) == 0.75  # 4100 alone is over
    assert control(tokens, a_min=1000, a_max=4096) == 0.5  # 1010 and 1990
    assert control(tokens) == 1.0
    assert control(tokens, a_max=[600, None, 100, None]) == 0.75
    with pytest.raises(UserError):
        control(tokens, a_max=[1, 2])


def test_scaling_average_pairwise_slope():
    tokens, acc = [500, 1000, 2000], [10.0, 20.0, 40.0]
    # pairs: (500,1000) 10/500 = .02; (1000,2000) 20/1000 = .02; (500,2000) 30/1500 = .02
    assert scaling(tokens, acc) == pytest.approx(0.02)
    # log2: (9.97,10.97) 10/1; (10.97,11.97) 20/1; (9.97,11.97) 30/2 = 15 -> mean 15
    assert scaling(tokens, acc, log2=True) == pytest.approx(15.0)
    # order of the runs does not matter
    assert scaling([2000, 500, 1000], [40.0, 10.0, 20.0], log2=True) == pytest.approx(15.0)
    # a flat-then-falling curve: (1,2) 0/1 = 0; (2,4) -10/2 = -5; (1,4) -10/3 -> mean -2.7778
    assert scaling([1, 2, 4], [50, 50, 40]) == pytest.approx((0 - 5 - 10 / 3) / 3)
    # pairs at equal compute have no slope: (1000,2000) 10/1000 and 8/1000 -> mean 0.009
    assert scaling([1000, 1000, 2000], [10, 12, 20]) == pytest.approx(0.009)
    with pytest.raises(UserError):
        scaling([1000, 1000], [1, 2])
    with pytest.raises(UserError):
        scaling([0, 10], [1, 2], log2=True)


def test_performance():
    assert performance([0.3, 0.57, 0.5]) == 0.57
    with pytest.raises(UserError):
        performance([])


def test_estimate_flops_and_tokens():
    # N=1e9, T = 100 + 900 = 1000: weights 2·1e9·1000 = 2e12; attention QK plus AV,
    # Σ_{t=1..T} 4·L·t·d = 2·L·d·T·(T+1) = 2·2·4·1000·1001 = 16,016,000
    assert estimate_flops(1e9, 100, 900, n_layers=2, d_model=4) == pytest.approx(2e12 + 16_016_000)
    assert estimate_flops(1e9, 100, 900) == pytest.approx(2e12)
    # one token at context 1, one layer of width 1: QK 2 FLOPs + AV 2 FLOPs (+ 2N)
    assert estimate_flops(1.0, 0, 1, n_layers=1, d_model=1) == pytest.approx(2 + 4)
    # sequences add up; a longer context costs more than linearly
    two = estimate_flops(1e9, [100, 100], [900, 900], n_layers=2, d_model=4)
    assert two == pytest.approx(2 * (2e12 + 16_016_000))
    long = estimate_flops(1e6, 0, 2000, n_layers=24, d_model=1024)
    short = estimate_flops(1e6, 0, 1000, n_layers=24, d_model=1024)
    assert long > 2 * short
    assert compute_tokens([10, 20], [100, 200]) == {"prompt_tokens": 30,
                                                    "generated_tokens": 300, "total_tokens": 330}
    with pytest.raises(UserError):
        estimate_flops(1e9, [1, 2], [3])


def test_paired_bootstrap():
    # two questions, a=[1,0], b=[0,0]: per-question differences [1,0]; a resample's mean is
    # 0, .5 or 1 with probabilities 1/4, 1/2, 1/4 -> 95% interval [0, 1]. One discordant
    # question: McNemar's exact p is 2 · 1/2 = 1.
    r = paired_bootstrap([1, 0], [0, 0], seed=0)
    assert (r.difference, r.low, r.high, r.n, r.resamples) == (0.5, 0.0, 1.0, 2, 10_000)
    assert (r.p_value, r.a_better, r.b_better, r.test) == (1.0, 1, 0, "exact McNemar")
    same = paired_bootstrap([1, 0, 1, 1], [1, 0, 1, 1])
    assert (same.difference, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    better = paired_bootstrap([1] * 30, [0] * 30)
    assert (better.low, better.high) == (1.0, 1.0)
    assert better.p_value == pytest.approx(2 * 0.5 ** 30)
    # seeded: the same draw twice; mappings are aligned by id
    rng = random.Random(1)
    a = {f"q{i}": rng.random() < 0.6 for i in range(200)}
    b = {f"q{i}": rng.random() < 0.5 for i in range(200)}
    r1, r2 = paired_bootstrap(a, b, seed=3), paired_bootstrap(dict(reversed(a.items())), b, seed=3)
    assert (r1.low, r1.high) == (r2.low, r2.high)
    assert r1.low < r1.difference < r1.high
    with pytest.raises(UserError, match="different questions"):
        paired_bootstrap({"x": 1}, {"y": 1})
    with pytest.raises(UserError):
        paired_bootstrap([1, 0], [1])


def test_the_p_value_is_mcnemars_exact_test_not_the_bootstraps():
    # Issue 19.1: 10/30 against 16/30 with A's right answers among B's: 6 discordant
    # questions, all for B. McNemar's exact p = 2 · P(Binomial(6, 1/2) <= 0) = 2/64 = 0.03125;
    # the bootstrap's share of resamples on the other side of 0 claimed about 0.003.
    a = [1] * 10 + [0] * 20
    b = [1] * 16 + [0] * 14
    r = paired_bootstrap(a, b)
    assert r.difference == pytest.approx(-0.2)
    assert (r.a_better, r.b_better, r.test) == (0, 6, "exact McNemar")
    assert r.p_value == pytest.approx(0.03125)
    # discordant 2 against 7 (n = 9): 2 · (C(9,0) + C(9,1) + C(9,2)) / 512 = 2 · 46/512
    a = [1, 1] + [0] * 7 + [1] * 5 + [0] * 6
    b = [0, 0] + [1] * 7 + [1] * 5 + [0] * 6
    t = paired_test(a, b)
    assert (t.a_better, t.b_better) == (2, 7) and t.p_value == pytest.approx(92 / 512)
    assert paired_test(b, a).p_value == t.p_value            # two-sided, symmetric


def test_sign_flip_test_for_scores_averaged_over_seeds():
    # Per-question means over 3 seeds: differences 1, 2/3, 1/3 (and ties, which carry no
    # information). Of the 2^3 sign patterns, |sum| >= 2 only for all + and all −: p = 2/8.
    t = paired_test([1, 2 / 3, 1 / 3, 0.5], [0, 0, 0, 0.5])
    assert (t.test, t.a_better, t.b_better) == ("sign-flip permutation", 3, 0)
    assert t.p_value == pytest.approx(0.25)
    # on 0/1 scores the sign-flip test is the sign test: sampled beyond 16 differences, it
    # agrees with McNemar's exact p within its Monte Carlo error
    rng = random.Random(5)
    a = [0.5 * (rng.random() < 0.7) + 0.5 * (rng.random() < 0.7) for _ in range(60)]
    b = [0.5 * (rng.random() < 0.4) + 0.5 * (rng.random() < 0.4) for _ in range(60)]
    sampled = paired_test(a, b, n_resamples=20_000)
    assert sampled.test == "sign-flip permutation" and 0 < sampled.p_value < 0.05


# ---------------------------------------------------------------------------------------------
# intervals over seeds: n is the questions (issue 7.6)


def test_seeds_do_not_count_as_more_questions():
    # Three identical greedy seeds at 15/30. Per question the mean over seeds is 1 (15 times)
    # or 0 (15 times): mean 0.5 over n = 30 questions, so the interval is Wilson's at 15/30:
    # half = 1.959964·sqrt(0.25/30 + z²/3600)/1.128049 = 0.168459 -> [33.2, 66.8].
    seed = {f"q{i}": i < 15 for i in range(30)}
    means = seed_means([seed, dict(seed), dict(seed)])
    assert sorted(set(means.values())) == [0.0, 1.0] and len(means) == 30
    low, high = question_interval(list(means.values()))
    assert (round(100 * low, 1), round(100 * high, 1)) == (33.2, 66.8)
    # Pooling the seeds as 90 questions claims more than the data holds: 45/90, n = 90:
    # half = z·sqrt(0.25/90 + z²/32400)/(1 + z²/90) = 1.959964·0.053815/1.042683 = 0.101159
    pooled = wilson_interval(45, 90)
    assert (round(100 * pooled[0], 1), round(100 * pooled[1], 1)) == (39.9, 60.1)


def test_question_interval_with_disagreeing_seeds():
    # Per-question means 1, 2/3, 1/3, 0: mean 0.5, n = 4. denom = 1 + z²/4 = 1.960365;
    # half = z·sqrt(0.25/4 + z²/64)/denom = 1.959964·sqrt(0.0625 + 0.060023)/1.960365
    #      = 1.959964·0.350033/1.960365 = 0.349962
    low, high = question_interval([1, 2 / 3, 1 / 3, 0])
    assert low == pytest.approx(0.5 - 0.349962, abs=1e-5)
    assert high == pytest.approx(0.5 + 0.349962, abs=1e-5)
    assert score_interval(0.5, 4) == (low, high)
    # 0/1 scores give exactly the Wilson interval
    assert question_interval([1] * 8 + [0] * 2) == pytest.approx(wilson_interval(8, 10))
    assert question_interval([0, 0, 0]) == pytest.approx(wilson_interval(0, 3))
    with pytest.raises(UserError):
        question_interval([])
    with pytest.raises(UserError):
        question_interval([1.5])
    with pytest.raises(UserError, match="different questions"):
        seed_means([{"a": 1, "b": 0}, {"a": 1}])


def test_bootstrap_interval_over_questions():
    # Scores (0, 1): a resample's mean is 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4, so the
    # 2.5% quantile is 0 and the 97.5% quantile is 1.
    assert bootstrap_interval([0, 1], n_resamples=4000) == (0.0, 1.0)
    assert bootstrap_interval([1, 1, 1]) == (1.0, 1.0)
    low, high = bootstrap_interval([1] * 15 + [0] * 15, seed=1)
    assert 0.30 < low < 0.36 and 0.64 < high < 0.70      # close to Wilson's [33.2, 66.8]


# ---------------------------------------------------------------------------------------------
# a bootstrap interval for Scaling (issue 7.10)


def test_scaling_bootstrap_against_hand_enumeration():
    # Two runs, two questions. Run A: scores (0, 0) at 100 tokens; run B: (1, 0) at 200.
    # Resamples of the questions: {1,1} p=1/4 -> B's accuracy 1, slope 1/100 = 0.01;
    # {1,2} or {2,1} p=1/2 -> 0.5, slope 0.005; {2,2} p=1/4 -> 0, slope 0.
    # So the 95% interval is [0, 0.01] around the observed 0.005.
    r = scaling_bootstrap([[0, 0], [1, 0]], [100, 200], n_resamples=4000)
    assert r.scaling == pytest.approx(0.005) and (r.low, r.high) == (0.0, 0.01)
    assert (r.n, r.resamples) == (2, 4000)
    # per-question thinking resampled with the scores: A (100, 300), B (200, 400) give the
    # same three slopes (B − A is 100 tokens in every resample)
    r = scaling_bootstrap([[0, 0], [1, 0]], [[100, 300], [200, 400]], n_resamples=4000)
    assert r.scaling == pytest.approx(0.005) and (r.low, r.high) == pytest.approx((0.0, 0.01))
    # log2: 100 -> 200 is one doubling, slopes 1, 0.5, 0
    r = scaling_bootstrap([[0, 0], [1, 0]], [100, 200], log2=True, n_resamples=4000)
    assert r.scaling == pytest.approx(0.5) and (r.low, r.high) == (0.0, 1.0)


def test_scaling_bootstrap_is_paired_and_matches_scaling():
    rng = random.Random(0)
    base = [rng.random() for _ in range(40)]
    # Every run is the same questions shifted by a constant: the question noise cancels in
    # each pairwise slope, so every resample gives the same Scaling.
    runs = [[b + 0.1 * i for b in base] for i in range(3)]
    tokens = [100, 200, 400]
    r = scaling_bootstrap(runs, tokens, n_resamples=500)
    assert r.low == pytest.approx(r.scaling) and r.high == pytest.approx(r.scaling)
    # the observed value is the paper's Scaling of the runs' accuracies
    noisy = [[rng.random() < 0.3 + 0.1 * i for _ in range(40)] for i in range(3)]
    r = scaling_bootstrap(noisy, tokens, log2=True, n_resamples=2000)
    assert r.scaling == pytest.approx(scaling(tokens, [sum(x) / 40 for x in noisy], log2=True))
    assert r.low < r.scaling < r.high
    # question ids match up when the runs are given as mappings
    as_maps = [{f"q{j:02d}": v for j, v in enumerate(run)} for run in noisy]
    assert scaling_bootstrap(as_maps, tokens, log2=True, n_resamples=2000) == r
    with pytest.raises(UserError, match="different questions"):
        scaling_bootstrap([{"a": 1}, {"b": 1}], [1, 2])
    with pytest.raises(UserError):
        scaling_bootstrap([[1, 0]], [1])
    with pytest.raises(UserError):
        scaling_bootstrap([[1, 0], [1, 0]], [5, 5])     # no two runs at different compute


# ---------------------------------------------------------------------------------------------
# near-ties in thinking tokens (issue 19.3)


def test_a_near_tie_swings_the_pairwise_mean_but_not_the_least_squares_slope():
    # +10 pp per doubling at 1250, 2500, 5000 tokens; then a saturated cap: 5,010 tokens, one
    # question of 30 (3.3 pp) apart from the 5,000-token point.
    tokens = [1250, 2500, 5000]
    acc = [30.0, 40.0, 50.0]
    assert scaling(tokens, acc, log2=True) == pytest.approx(10.0)
    assert scaling_fit(tokens, acc, log2=True) == pytest.approx(10.0)
    for step in (+100 / 30, -100 / 30):
        t, a = tokens + [5010], acc + [50.0 + step]
        # that pair's slope is 3.33 / log2(5010/5000) = ±1,157 pp per doubling, a sixth of the mean
        tie = step / math.log2(5010 / 5000)
        pairs = [10.0, 10.0, 10.0, (50 + step - 30) / math.log2(5010 / 1250),
                 (50 + step - 40) / math.log2(5010 / 2500), tie]
        assert scaling(t, a, log2=True) == pytest.approx(sum(pairs) / 6)
        assert abs(scaling(t, a, log2=True) - 10) > 150
        fit = scaling_fit(t, a, log2=True)
        assert 8 < fit < 12          # the least-squares slope barely moves
        assert near_ties(t) == [(2, 3)]
    assert near_ties([1000, 1060, 2000]) == [(0, 1)]      # log2(1.06) = 0.084 < 0.1
    assert near_ties([1000, 1080, 2000]) == []            # log2(1.08) = 0.111
    # the least-squares slope by hand: x = 0, 1, 3 doublings, y = 0, 2, 3 ->
    # x̄ = 4/3, ȳ = 5/3; Σ(x−x̄)(y−ȳ) = (−4/3)(−5/3) + (−1/3)(1/3) + (5/3)(4/3) = 39/9;
    # Σ(x−x̄)² = 16/9 + 1/9 + 25/9 = 42/9 -> slope 39/42
    assert scaling_fit([1, 2, 8], [0, 2, 3], log2=True) == pytest.approx(39 / 42)
    with pytest.raises(UserError):
        scaling_fit([5, 5], [1, 2])


def test_the_least_squares_slope_has_its_own_bootstrap():
    # two runs: the least-squares slope of two points is their pairwise slope, so the two
    # bootstraps agree (the hand enumeration of test_scaling_bootstrap_against_hand_enumeration)
    r = scaling_bootstrap([[0, 0], [1, 0]], [100, 200], log2=True, n_resamples=4000,
                          least_squares=True)
    assert r.scaling == pytest.approx(0.5) and (r.low, r.high) == (0.0, 1.0)
    rng = random.Random(2)
    noisy = [[rng.random() < 0.3 + 0.1 * i for _ in range(40)] for i in range(3)]
    tokens = [100, 200, 400]
    r = scaling_bootstrap(noisy, tokens, log2=True, n_resamples=2000, least_squares=True)
    assert r.scaling == pytest.approx(scaling_fit(tokens, [sum(x) / 40 for x in noisy], log2=True))
    assert r.low < r.scaling < r.high
