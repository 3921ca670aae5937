"""Curves keyed on the whole configuration minus the seed (issue 7.7), incomplete runs left out,
Scaling's bootstrap interval, the spread over ignore strings: on real runs of the embedded
model (llama.cpp, GSM8K, tiny budgets)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from s1.evaluation.aggregate import find_runs, sweep_summary
from s1.evaluation.config import EvalConfig
from s1.evaluation.curves import curves, ignore_string_spread, incomplete_runs
from s1.evaluation.intervals import scaling_bootstrap


def run_eval(out: Path, limit: int = 2, **sections) -> Path:
    values = {"benchmark": {"name": "gsm8k", "limit": limit},
              "engine": {"engine": "llama.cpp"},
              "budget": {"max_answer": 4, **sections.pop("budget", {})},
              "method": {"name": "budget", "max_thinking": "4,8", **sections.pop("method", {})},
              "run": {"out": str(out), "quiet": True, **sections.pop("run", {})}}
    from s1.evaluation.evaluate import evaluate

    evaluate(EvalConfig.load(values=values))
    return out


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("curves")
    return {
        "greedy": run_eval(root / "greedy"),
        "sampled": run_eval(root / "sampled", budget={"temperature": 0.7}, run={"seeds": 2}),
        "three": run_eval(root / "three", limit=3, method={"max_thinking": "4"}),
        "strings": run_eval(root / "strings", method={
            "max_thinking": "8", "num_ignore": "0,1", "ignore_strings": ["Wait", "Hmm"]}),
    }


@pytest.mark.slow
def test_runs_differing_in_temperature_or_limit_are_never_pooled(dirs):
    runs = find_runs([dirs["greedy"], dirs["sampled"], dirs["three"]])
    cs = curves(runs)
    # same method, benchmark and model, three configurations: three curves, named by difference
    assert [c.label for c in cs] == ["budget forcing"] * 3
    names = sorted(c.name for c in cs)
    assert any("temperature=0.7" in n for n in names), names
    assert any("limit=3" in n for n in names), names
    for c in cs:
        assert [p.name for p in c.points] == sorted(
            [p.name for p in c.points], key=lambda n: [p.thinking for p in c.points if p.name == n])
        seeds = {p.seeds for p in c.points}
        temp = c.config["setting"]["budget"]["temperature"]
        # only the sampled directory's two seeds are pooled into one point
        assert seeds == ({2} if temp == 0.7 else {1})
        questions = c.config["benchmark"]["questions"]
        assert all(p.total == questions * p.seeds for p in c.points)


@pytest.mark.slow
def test_seeds_pool_into_per_question_means_and_scaling_has_a_bootstrap(dirs):
    runs = find_runs([dirs["sampled"]])
    [c] = curves(runs)
    for p in c.points:
        recs = {r.name: r for r in runs if r.setting.name == p.name}
        assert len(recs) == 2
        want = {}
        for r in recs.values():
            for rec in r.records:
                want.setdefault(rec.id, []).append(float(rec.correct))
        assert p.scores == {q: sum(v) / 2 for q, v in want.items()}
    if c.scaling is not None:
        ref = scaling_bootstrap([{q: 100 * v for q, v in p.scores.items()} for p in c.points],
                                [p.thinking_by_question for p in c.points], n_resamples=10_000)
        assert (c.scaling_low, c.scaling_high) == pytest.approx((ref.low, ref.high))
        assert c.scaling_low <= c.scaling <= c.scaling_high
        assert ref.scaling == pytest.approx(c.scaling)


@pytest.mark.slow
def test_incomplete_runs_are_marked_and_left_out_of_curves(dirs, tmp_path):
    cut = tmp_path / "cut"
    shutil.copytree(dirs["greedy"], cut)
    victim = cut / "gsm8k-budget-max8-ign0-s0" / "records.jsonl"
    lines = victim.read_text().splitlines(keepends=True)
    victim.write_text("".join(lines[:-1]))
    runs = find_runs([cut])
    assert incomplete_runs(runs) == ["gsm8k-budget-max8-ign0-s0"]
    [c] = curves(runs)
    assert [p.name for p in c.points] == ["budget-max4-ign0"]
    [c] = curves(runs, include_incomplete=True)
    assert sorted(p.name for p in c.points) == ["budget-max4-ign0", "budget-max8-ign0"]
    summary = sweep_summary(runs)
    assert summary["incomplete"] == ["gsm8k-budget-max8-ign0-s0"]
    json.dumps(summary)   # sweep.json stays valid JSON


@pytest.mark.slow
def test_each_ignore_string_has_its_curve_sharing_the_no_ignore_run(dirs):
    cs = curves(find_runs([dirs["strings"]]))
    assert sorted(c.name for c in cs) == ["budget forcing (ignore string Hmm)",
                                          "budget forcing (ignore string Wait)"]
    for c in cs:
        s = c.config["setting"]["budget"]["ignore_strings"][0]
        assert sorted(p.name for p in c.points) == ["budget-max8-ign0", f"budget-max8-ign1-{s}"]
    [spread] = ignore_string_spread(cs)
    assert sorted(spread["strings"]) == ["Hmm", "Wait"]
    perf = [c.performance for c in cs]
    mean, sd = spread["performance"]
    assert mean == pytest.approx(sum(perf) / 2)
    assert sd == pytest.approx(abs(perf[0] - perf[1]) / 2 ** 0.5)
    # the shared no-ignore point is the same run in both curves: no spread there
    assert spread["points"]["budget-max8-ign0"][1] == pytest.approx(0.0)
    assert set(spread["points"]) == {"budget-max8-ign0", "budget-max8-ign1"}


@pytest.mark.slow
def test_report_shows_intervals_diagnostics_and_incomplete_runs(dirs, tmp_path):
    from s1.evaluation.report import write_report

    cut = tmp_path / "cut"
    shutil.copytree(dirs["greedy"], cut)
    victim = cut / "gsm8k-budget-max8-ign0-s0" / "records.jsonl"
    victim.write_text("".join(victim.read_text().splitlines(keepends=True)[:-1]))
    out = tmp_path / "report"
    written = write_report([str(dirs["sampled"]), str(dirs["strings"]), str(cut)], str(out))
    assert {p.name for p in written} >= {"report.md", "report.html", "thinking-gsm8k.png"}
    md = (out / "report.md").read_text()
    runs = find_runs([dirs["sampled"], dirs["strings"], cut])
    cs = curves(runs)
    # Scaling with its bootstrap interval, each curve under its own name
    assert "Scaling, paper: mean pairwise slope (pp per doubling) [bootstrap 95%]" in md
    assert "least-squares slope (pp per doubling) [bootstrap 95%]" in md
    for c in cs:
        assert f"| {c.name} |" in md
        if c.scaling_log2_low is not None:
            assert f"{c.scaling_log2:.2f} [{c.scaling_log2_low:.2f}, {c.scaling_log2_high:.2f}]" in md
        if c.scaling_log2_fit_low is not None:
            assert (f"{c.scaling_log2_fit:.2f} [{c.scaling_log2_fit_low:.2f}, "
                    f"{c.scaling_log2_fit_high:.2f}]") in md
            assert c.scaling_log2_fit_low <= c.scaling_log2_fit <= c.scaling_log2_fit_high
    # incomplete runs are named and left out
    assert "Incomplete, left out of the curves: gsm8k-budget-max8-ign0-s0" in md
    # grading reasons: one column per reason, counts from the records
    reasons = sorted({rec.reason for r in runs for rec in r.records})
    assert "### Grading reasons" in md and all(f" {k} " in md for k in reasons)
    # answer-cut share: an answer cap of 4 tokens cuts most answers
    cut_share = [r.summary.answer_cut_share for r in runs]
    assert "answer cut %" in md and max(cut_share) > 0
    for r in runs:
        assert r.summary.answer_cut_share == pytest.approx(
            sum(x.finish_reason == "length" and x.thinking_finish != "context"
                for x in r.records) / len(r.records))
    # accuracy by Waits appears exactly when some sample was given a Wait
    waited = any(rec.waits for r in runs for rec in r.records)
    assert ("Accuracy against the number of Waits" in md) == waited
    # per-question thinking across budgets, and the spread over ignore strings
    assert "Thinking per question across budgets" in md and "| gsm8k-1 |" in md
    assert "### Variance across ignore strings" in md
    assert "Hmm, Wait" in md or "Wait, Hmm" in md
    # no question text: ids and answers only
    assert "Janet" not in md
