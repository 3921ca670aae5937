"""Method configs: what each expands into, what it refuses, how samples become a prediction; and
a mixed-budget sweep sharing the transformers engine's batch gives the tokens of separate runs."""

from __future__ import annotations

import pytest

from s1.evaluation.records import Compute, Record
from s1.errors import UserError
from s1.evaluation.methods import (BestOfN, BudgetForcing, ConditionalPrompting, MajorityVoting,
                                   RejectionSampling, Setting, expand, load_scorer)
from s1.generation.budget import Budget

BASE = Budget(max_answer_tokens=32)


def test_budget_forcing_is_one_run_per_combination():
    settings = BudgetForcing([64, 128, "auto"], [0, 2], ["Wait", "Hmm"]).settings(BASE)
    # num_ignore 0 never uses a string: one run per cap; num_ignore 2: one per string
    assert [s.name for s in settings] == [
        "budget-max64-ign0", "budget-max64-ign2-Wait", "budget-max64-ign2-Hmm",
        "budget-max128-ign0", "budget-max128-ign2-Wait", "budget-max128-ign2-Hmm",
        "budget-maxauto-ign0", "budget-maxauto-ign2-Wait", "budget-maxauto-ign2-Hmm"]
    hmm = settings[2].budget
    assert (hmm.max_thinking_tokens, hmm.num_ignore, hmm.ignore_strings) == (64, 2, ("Hmm",))
    assert hmm.max_answer_tokens == 32 and hmm.sampling.temperature == 0
    assert [s.a_max for s in settings[::3]] == [64, 128, None]   # "auto" asks for no bound


def test_conditional_caps_follow_the_prompt_only_with_forcing():
    free = ConditionalPrompting(["tokens:256", "steps:4", "short"]).settings(BASE)
    assert [s.budget.max_thinking_tokens for s in free] == ["auto"] * 3
    assert [s.a_max for s in free] == [256, 400, None]
    assert free[0].label == "token-conditional" and free[2].label == "class-conditional"
    forced = ConditionalPrompting(["tokens:256", "steps:4", "long"], forcing=True,
                                  tokens_per_step=50, max_thinking=1024).settings(BASE)
    assert [s.budget.max_thinking_tokens for s in forced] == [256, 200, 1024]
    assert forced[1].suffix == "steps:4" and forced[1].label == "step-conditional + budget forcing"


def test_rejection_sampling_caps_at_n_plus_one_and_keeps_the_last_try():
    [s] = RejectionSampling([100], max_tries=3).settings(BASE)
    assert s.budget.max_thinking_tokens == 101 and s.budget.sampling.temperature == 1.0
    assert s.accepts(100, tries=1) and not s.accepts(101, tries=1)
    assert not s.accepts(101, tries=2) and s.accepts(101, tries=3)


def test_a_failed_rejection_scores_wrong_unless_asked_to_keep_it():
    # The paper resamples until the thinking fits; a question that ran out of tries has no
    # answer within the threshold, and its last (forced) sample must not score.
    gave_up = sample("7", True, accepted=False, tries=3)
    fitted = sample("7", True, accepted=True, tries=2)
    [paper] = RejectionSampling([100], max_tries=3).settings(BASE)
    assert paper.on_failure == "wrong" and RejectionSampling().max_tries >= 2048
    assert paper.predict([gave_up], "integer")["correct"] is False
    assert paper.predict([fitted], "integer")["correct"] is True
    [keep] = RejectionSampling([100], max_tries=3, on_failure="keep").settings(BASE)
    assert keep.predict([gave_up], "integer")["correct"] is True
    assert Setting.from_dict(keep.to_dict()) == keep
    assert "on_failure" not in BudgetForcing([64]).settings(BASE)[0].to_dict()


@pytest.mark.parametrize("make, words", [
    (lambda: BudgetForcing([64, -1]), "non-negative"),
    (lambda: BudgetForcing([64], [-1]), "non-negative"),
    (lambda: BudgetForcing([]), "at least one"),
    (lambda: BudgetForcing([64], [1], [""]), "empty"),
    (lambda: ConditionalPrompting(["tokens:0"]), "positive"),
    (lambda: ConditionalPrompting(["medium"]), "unknown conditional prompt"),
    (lambda: RejectionSampling([100], temperature=0), "temperature 0"),
    (lambda: RejectionSampling([100], max_tries=0), "positive"),
    (lambda: RejectionSampling([100], on_failure="retry"), "on failure"),
    (lambda: MajorityVoting(0), "positive"),
    (lambda: BestOfN(4, scorer="no.such.module:f"), "cannot load scorer"),
    (lambda: expand([BudgetForcing([64]), BudgetForcing([64])], BASE), "share the name"),
])
def test_nonsense_is_refused(make, words):
    with pytest.raises(UserError, match=words):
        make()


def sample(extracted, correct, score=0.0, accepted=None, tries=1):
    return Record(key="q#0", id="q", sample=0, seed=0, request_seed=0, gold="", answer_type="integer",
                  extracted=extracted, correct=correct, reason="", thinking_tokens=0,
                  answer_tokens=0, waits=0, thinking_finish="end", finish_reason="stop", events=[],
                  tries=tries, compute=Compute(), wall_s=0.0, trace={}, score=score,
                  accepted=accepted)


def test_majority_votes_on_canonical_answers_and_best_of_n_on_scores():
    [maj] = MajorityVoting(5).settings(BASE)
    votes = [sample("7", False), sample("023", True), sample(None, False), sample("23", True),
             sample("7", False)]
    # "023" and "23" are one answer (2 votes) against "7" (2 votes); the sample without an
    # answer does not vote; the tie goes to the answer reached first, "7". Without the first
    # sample, "23" wins 2 to 1, and the prediction is the first sample that gave it.
    assert maj.predict(votes, "integer") == {"correct": False, "extracted": "7", "sample": 0}
    assert maj.predict(votes[1:], "integer") == {"correct": True, "extracted": "023", "sample": 0}
    assert maj.predict(votes, "integer", k=2)["extracted"] == "7"
    assert maj.predict([sample(None, False)], "integer")["correct"] is False

    [best] = BestOfN(3, scorer="oracle").settings(BASE)
    picks = [sample("1", False, 0.0), sample("2", True, 1.0), sample("3", True, 1.0)]
    assert best.predict(picks, "integer") == {"correct": True, "extracted": "2", "sample": 1}
    assert best.predict(picks, "integer", k=1)["correct"] is False
    assert load_scorer("oracle")(None, None, type("G", (), {"correct": True})()) == 1.0


def test_settings_survive_the_manifest_round_trip():
    for s in expand([BudgetForcing([64], [1], ["Hmm"]), RejectionSampling([32]),
                     BestOfN(2, "shortest"), ConditionalPrompting(["long"], True)], BASE):
        assert Setting.from_dict(s.to_dict()) == s


@pytest.mark.slow
def test_mixed_budgets_share_the_transformers_batch_with_the_same_tokens(tmp_path):
    """The sweep goes to the engine in one call with a Budget per request; under greedy decoding
    each run must get the tokens it gets when its budget runs alone."""
    import torch

    # One intra-op thread: on a shared 2-core machine two threads wait on each other (~6x slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _mixed_budgets_check(tmp_path)
    finally:
        torch.set_num_threads(threads)


def _mixed_budgets_check(tmp_path):
    from s1.evaluation.benchmarks import load_benchmark
    from s1.evaluation.prompts import format_prompt
    from s1.evaluation.runs import execute, make_runs
    from s1.generation.engines import Request, load_engine

    bench = load_benchmark("gsm8k", limit=1)
    settings = expand([BudgetForcing([4, 12], [0, 1])], Budget(max_answer_tokens=3))
    engine = load_engine(engine="transformers", batch_size=4)
    calls = []
    original = engine.generate

    def counting(requests, budget=None, on_trace=None, **hooks):
        calls.append(len(requests))
        return original(requests, budget, on_trace=on_trace, **hooks)

    engine.generate = counting
    runs = make_runs(tmp_path, engine, "smollm2-135m", bench, settings, [0])
    execute(runs, engine, progress=False)
    assert calls == [4]                        # 4 budgets × 1 question in one call
    for run in runs:
        alone = original([Request(format_prompt(item), seed=0) for item in bench],
                         run.setting.budget)
        for item, tr in zip(bench, alone):
            rec = run.done[f"{item.id}#0"]
            assert rec.trace["thinking_ids"] == tr.thinking_ids, run.name
            assert rec.trace["answer_ids"] == tr.answer_ids, run.name
            assert rec.waits == tr.waits
    assert max(r.done["gsm8k-1#0"].thinking_tokens for r in runs) <= 12
