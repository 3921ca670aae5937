"""Best-of-N with a reward model and reward-weighted majority: predictions on hand-made records,
the settings (and what older runs' identities keep), refusals, and `s1 eval` end to end on the
tiny model with the programmatic PRM: scores read from the thinking's steps, the reward model's
cost recorded per sample, a killed run resumed without repeats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from s1.errors import UserError
from s1.evaluation.benchmarks import shipped_benchmark
from s1.evaluation.config import EvalConfig
from s1.evaluation.methods import BestOfN, Setting, WeightedMajority
from s1.evaluation.records import Compute, Record
from s1.evaluation.rewards import aggregate, split_steps
from s1.generation.budget import Budget
from s1.miniature.steps import check_steps

BASE = Budget(max_answer_tokens=16)
S1 = [sys.executable, "-m", "s1.cli"]


def sample(extracted, correct, score, i=0):
    return Record(key=f"q#{i}", id="q", sample=i, seed=0, request_seed=i, gold="7",
                  answer_type="integer", extracted=extracted, correct=correct, reason="",
                  thinking_tokens=10, answer_tokens=2, waits=0, thinking_finish="end",
                  finish_reason="stop", events=[], tries=1, compute=Compute(), wall_s=0.0,
                  trace={}, score=score)


def test_weighted_votes_and_best_of_n_on_rewards():
    [wm] = WeightedMajority(4, "programmatic").settings(BASE)
    # three weak votes for 5 lose to one strong vote for 7, and "07" is the same answer as 7
    samples = [sample("5", False, 0.2, 0), sample("5", False, 0.2, 1), sample("7", True, 0.5, 2),
               sample("07", True, 0.3, 3), sample("5", False, 0.1, 4)]
    assert wm.predict(samples, "integer") == {"correct": True, "extracted": "7", "sample": 2}
    assert wm.predict(samples[:2] + samples[4:], "integer")["extracted"] == "5"
    [bon] = BestOfN(3, "programmatic").settings(BASE)
    assert bon.predict(samples, "integer")["sample"] == 2
    # a sample with nothing to read (no score) ranks below a scored one, even a zero
    unread = [sample("5", False, None, 0), sample("7", True, 0.0, 1)]
    assert bon.predict(unread, "integer")["sample"] == 1


def test_settings_carry_the_reading_only_for_reward_models():
    [oracle] = BestOfN(4, "oracle").settings(BASE)
    assert "aggregate" not in oracle.to_dict() and oracle.name == "best-of-4-oracle-maxauto"
    [prm] = BestOfN(4, "programmatic", aggregate="prod", step_delimiter="\n").settings(BASE)
    assert prm.name == "best-of-4-programmatic-prod-maxauto"
    assert (prm.to_dict()["aggregate"], prm.to_dict()["step_delimiter"]) == ("prod", "\n")
    assert Setting.from_dict(prm.to_dict()) == prm
    [wm] = WeightedMajority(4).settings(BASE)
    assert (wm.method, wm.scorer, wm.aggregate) == ("weighted-majority", "programmatic", "min")
    # the shell's '\n' is a newline; weighted majority's scorer defaults to the programmatic PRM
    cfg = EvalConfig.load(values={"benchmark": {"name": "tiny"}, "run": {"out": "x"},
                                  "method": {"name": "weighted-majority",
                                             "step_delimiter": "\\n"}})
    built = cfg.method.build(None)
    assert (built.scorer, built.step_delimiter) == ("programmatic", "\n")


@pytest.mark.parametrize("make, message", [
    (lambda: WeightedMajority(4, "oracle"), "not one"),
    (lambda: BestOfN(4, "programmatic", aggregate="max"), "unknown aggregation"),
    (lambda: BestOfN(4, "prm:/nowhere/model"), "unknown model"),
    (lambda: BestOfN(4, "served:localhost"), "served:http"),
])
def test_refusals_come_before_any_generation(make, message):
    with pytest.raises(UserError, match=message):
        make()


def s1(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*S1, *args], capture_output=True, text=True, timeout=900)


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()
            if line.strip()]


COMMON = ["--model", "s1-tiny", "--benchmark", "tiny", "--limit", "3", "--samples", "3",
          "--scorer", "programmatic", "--step-delimiter", "\\n", "--aggregate", "mean",
          "--max-thinking", "48", "--max-answer", "12", "--threads", "1", "--batch-size", "16",
          "--quiet"]


def test_eval_reads_the_thinking_and_resumes_without_repeats(tmp_path):
    out = tmp_path / "runs"
    for method in ("best-of-n", "weighted-majority"):
        p = s1("eval", "--method", method, *COMMON, "--out", str(out))
        assert p.returncode == 0, p.stderr
    bon = out / "tiny-best-of-3-programmatic-mean-max48-s0"
    wm = out / "tiny-weighted-majority-3-programmatic-mean-max48-s0"
    questions = {json.loads(line)["id"]: json.loads(line)["question"] for line in
                 Path(shipped_benchmark("tiny.jsonl")).read_text().splitlines()[:3]}
    for run in (bon, wm):
        recs = records(run)
        assert len(recs) == 9
        for r in recs:
            steps = split_steps(r["trace"]["thinking"], "\n")
            assert r["reward"]["steps"] == check_steps(questions[r["id"]], steps)
            assert r["score"] == (aggregate(r["reward"]["steps"], "mean") if steps else None)
            assert r["reward"]["tokens"] == len(questions[r["id"]]) + sum(map(len, steps))
            assert r["reward"]["flops"] == 0
        summary = json.loads((run / "summary.json").read_text())
        assert summary["compute"]["reward_tokens"] == sum(r["reward"]["tokens"] for r in recs)
    # the same seeds draw the same samples for both methods: the vote weighs the same scores
    assert [r["score"] for r in records(bon)] == [r["score"] for r in records(wm)]
    per_q = json.loads((wm / "summary.json").read_text())["per_question"]
    for q in questions:
        votes: dict[str, float] = {}
        for r in records(wm):
            if r["id"] == q and r["extracted"] is not None:
                votes[r["extracted"]] = votes.get(r["extracted"], 0) + (r["score"] or 0)
        if votes:
            best = max(votes.values())
            winner = next(a for a in votes if votes[a] == best)   # ties: the first answer
            assert per_q[q] == any(r["correct"] for r in records(wm)
                                   if r["id"] == q and r["extracted"] == winner)

    # A kill leaves the records appended so far and maybe a torn line: the resume scores only
    # what is missing and repeats nothing.
    kept = (bon / "records.jsonl").read_text().splitlines()[:4]
    (bon / "records.jsonl").write_text("\n".join(kept) + '\n{"key": "tiny-0002#1", "id"')
    (bon / "summary.json").unlink()
    p = s1("eval", "--method", "best-of-n", *COMMON, "--out", str(out))
    assert p.returncode == 0, p.stderr
    again = records(bon)
    assert sorted(r["key"] for r in again) == sorted(f"tiny-{q:04d}#{s}" for q in range(3)
                                                     for s in range(3))
    by_key = {r["key"]: r for r in again}
    for line in kept:
        assert by_key[json.loads(line)["key"]] == json.loads(line)
    assert all(r["reward"] is not None for r in again)
    before = (bon / "records.jsonl").read_bytes()
    p = s1("eval", "--method", "best-of-n", *COMMON, "--out", str(out))
    assert p.returncode == 0 and (bon / "records.jsonl").read_bytes() == before


def test_a_bad_scorer_is_one_line_exit_2(tmp_path):
    p = s1("eval", "--model", "s1-tiny", "--benchmark", "tiny", "--method", "weighted-majority",
           "--scorer", "shortest", "--out", str(tmp_path / "x"))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "reward model" in p.stderr
    assert not (tmp_path / "x").exists()


def test_compare_compute_counts_the_reward_models_reading(tmp_path):
    """A reward model's best-of-k beside majority and the oracle, compared with budget forcing at
    the generator's FLOPs plus the reward model's (a tiny random Qwen-style PRM: real FLOPs)."""
    from transformers import Qwen2Config

    from s1.evaluation.aggregate import load_run
    from s1.evaluation.compute import CurvePoint, _cost, interpolate
    from s1.evaluation.rewards import _qwen_prm_class
    from tests.evaluation.test_rewards import SHAPE, _tokenizer

    tok, prm = _tokenizer(), tmp_path / "prm"
    model = _qwen_prm_class()(Qwen2Config(vocab_size=len(tok), **SHAPE,
                                          architectures=["Qwen2ForProcessRewardModel"]))
    model.save_pretrained(prm)
    tok.save_pretrained(prm)
    out = tmp_path / "cc"
    args = ["compare-compute", "--model", "s1-tiny", "--benchmark", "tiny", "--limit", "3",
            "--budgets", "16,96", "--ks", "1,2", "--seeds", "1", "--scorer", f"prm:{prm}",
            "--step-delimiter", "\\n", "--max-answer", "8", "--threads", "1", "--quiet",
            "--resamples", "200", "--out", str(out), "--json"]
    p = s1(*args)
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    name = f"best-of-k (prm:{prm})"
    bf = {b: load_run(out / f"tiny-budget-max{b}-ign0-s0") for b in (16, 96)}
    shape = result["model_shape"]
    curve = [CurvePoint(b, sum(_cost(r, shape) for r in run.records) / 3,
                        {r.id: float(r.correct) for r in run.records}) for b, run in bf.items()]
    compared = 0
    for c in result["cells"]:
        cap, k = c["cap"], c["k"]
        drawn = 2 if cap in (8, 48) else 1
        [run_dir] = out.glob(f"tiny-best-of-{drawn}-prm-*-min-max{cap}-s0")
        run = load_run(run_dir)
        used = [r for r in run.records if r.sample < k]
        reading = sum(r.reward["flops"] for r in used) / 3
        assert reading > 0 and c["reward_cost_per_question"]["mean"] == pytest.approx(reading)
        generating = sum(_cost(r, shape) for r in used) / 3
        assert c["cost_per_question"]["mean"] == pytest.approx(generating)   # majority's
        assert set(c["accuracy"]) == {"budget forcing", "majority", "oracle best-of-k", name}
        matched = interpolate(curve, generating + reading)
        at = c["budget_forcing_at_reward_cost"]
        if matched is None:
            assert at["accuracy"] is None and "reward" not in c["differences"]
            continue
        compared += 1
        assert at["budget"] == pytest.approx(matched[1])
        assert "reward" in c["differences"]
    assert compared >= 1
    assert name + " %" in (out / "compute.md").read_text()


def test_the_programmatic_prm_refuses_other_benchmarks_before_generating(tmp_path):
    p = s1("eval", "--model", "s1-tiny", "--benchmark", "gsm8k", "--limit", "1", "--method",
           "best-of-n", "--samples", "2", "--scorer", "programmatic", "--max-thinking", "8",
           "--max-answer", "4", "--quiet", "--out", str(tmp_path / "x"))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "miniature world" in p.stderr
    assert not list((tmp_path / "x").glob("*/records.jsonl"))
