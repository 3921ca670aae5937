"""Matched compute in one command (issue 7.16, 19.4): `s1 compare-compute` on the embedded
model, with tiny budgets on a few GSM8K questions; FLOPs from the model's real config, budget
forcing interpolated to the parallel side's measured FLOPs, seeds as mean ± sd."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from s1.errors import UserError
from s1.evaluation.compute import ComputePlan, CurvePoint, interpolate, shape_from_config

S1 = [sys.executable, "-m", "s1.cli"]


def test_the_plan_draws_each_cap_once_with_the_most_samples_it_needs():
    plan = ComputePlan((16, 8), (2, 1))
    assert plan.budgets == (8, 16) and plan.ks == (1, 2)
    # B/k: 8/1 = 8, 8/2 = 4, 16/1 = 16, 16/2 = 8 (shared with 8/1: drawn once, 2 samples)
    assert plan.caps() == {4: 2, 8: 2, 16: 1}
    from s1.generation.budget import Budget

    sequential, parallel = plan.methods()
    assert [s.name for m in sequential for s in m.settings(Budget())] == [
        "budget-max8-ign0", "budget-max16-ign0"]
    assert [s.name for m in parallel for s in m.settings(Budget())] == [
        "majority-k2-max4", "majority-k2-max8", "majority-k1-max16"]
    assert plan.seeds == 5      # the parallel side is sampled: mean ± sd over 5 seeds


def test_budget_forcing_is_interpolated_at_the_parallel_sides_compute():
    # budget forcing at 100 and 400 tokens cost 1e9 and 4e9 FLOPs per question; a parallel
    # point at 2e9 sits halfway in log FLOPs: each question's score is the mean of the two
    # budgets' scores, and the budget there is sqrt(100 · 400) = 200
    curve = [CurvePoint(400, 4e9, {"a": 1.0, "b": 1.0, "c": 0.0}),
             CurvePoint(100, 1e9, {"a": 0.0, "b": 1.0, "c": 0.0})]
    scores, budget = interpolate(curve, 2e9)
    assert scores == pytest.approx({"a": 0.5, "b": 1.0, "c": 0.0}) and budget == pytest.approx(200)
    # at a measured point: that point
    assert interpolate(curve, 1e9) == ({"a": 0.0, "b": 1.0, "c": 0.0}, pytest.approx(100))
    # a quarter of the way in log: 1e9 · 4^0.25
    scores, budget = interpolate(curve, 1e9 * 4 ** 0.25)
    assert scores["a"] == pytest.approx(0.25) and budget == pytest.approx(100 * 4 ** 0.25)
    # never extrapolated: k prompts can put the parallel side beyond every budget
    assert interpolate(curve, 4.1e9) is None and interpolate(curve, 0.9e9) is None


@pytest.mark.parametrize("kwargs, words", [
    ({"budgets": (2,), "ks": (4,)}, "cannot be split 4 ways"),
    ({"budgets": (8,), "ks": (1, 1)}, "must not repeat"),
    ({"budgets": (0,)}, "positive token counts"),
    ({"budgets": (8,), "temperature": 0.0}, "temperature above 0"),
    ({"budgets": (8,), "seeds": 0}, "--seeds"),
])
def test_a_bad_plan_is_one_clear_error(kwargs, words):
    with pytest.raises(UserError, match=words):
        ComputePlan(**kwargs)


@pytest.fixture(scope="module")
def gguf_config(tmp_path_factory) -> Path:
    """The embedded model's own config.json, as transformers reads it from the GGUF."""
    from transformers import AutoConfig

    from s1.generation.models import embedded_gguf

    p = embedded_gguf()
    out = tmp_path_factory.mktemp("config")
    AutoConfig.from_pretrained(str(p.parent), gguf_file=p.name).save_pretrained(out)
    return out


def test_flops_shape_from_a_config_matches_the_engine(gguf_config, tmp_path):
    from s1.generation.engines import load_engine

    engine = load_engine(engine="llama.cpp")
    described = engine.describe()
    engine.close()
    shape = shape_from_config(gguf_config / "config.json")
    assert shape == shape_from_config(gguf_config)   # a directory holding config.json works too
    assert (shape["n_layers"], shape["d_model"]) == (described["n_layers"],
                                                    described["d_model"]) == (30, 576)
    # SmolLM2-135M: 49152×576 tied embeddings + 30 layers of GQA attention and gated MLP
    assert shape["n_params"] == described["n_params"] == 134_515_008
    (tmp_path / "config.json").write_text('{"hidden_size": 8}')
    with pytest.raises(UserError, match="lacks"):
        shape_from_config(tmp_path)
    with pytest.raises(UserError, match="cannot read"):
        shape_from_config(tmp_path / "nothing.json")


@pytest.mark.slow
def test_compare_compute_end_to_end_on_gsm8k(gguf_config, tmp_path):
    from s1.evaluation.aggregate import load_run
    from s1.evaluation.intervals import paired_bootstrap
    from s1.evaluation.metrics import estimate_flops

    out = tmp_path / "cc"
    # B = 4 and 256: budget forcing spans a wide range of FLOPs, so the k = 2 point at 2
    # thinking tokens (two prompts) falls inside it; the one at 128 (two prompts, two long
    # thinkings) lies beyond budget forcing at 256 and is shown, not compared.
    args = ["compare-compute", "--benchmark", "gsm8k", "--limit", "2", "--budgets", "4,256",
            "--ks", "1,2", "--seeds", "2", "--max-answer", "6", "--engine", "llama.cpp",
            "--quiet", "--resamples", "2000", "--out", str(out)]
    p = subprocess.run([*S1, *args, "--json"], capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    assert {Path(f).name for f in result["files"]} == {"compute.json", "compute.md",
                                                        "compute-matched-gsm8k.png"}
    assert (out / "compute-matched-gsm8k.png").read_bytes()[:4] == b"\x89PNG"
    assert result["unit"] == "FLOPs"
    cells = {(c["budget"], c["k"]): c for c in result["cells"]}
    assert sorted(cells) == [(4, 1), (4, 2), (256, 1), (256, 2)]
    shape = result["model_shape"]
    assert shape["n_params"] == 134_515_008 and shape["n_layers"] == 30
    plan = ComputePlan((4, 256), (1, 2), seeds=2)
    # budget forcing ran once (greedy), the parallel settings once per seed
    assert sorted(d.name for d in out.iterdir() if d.is_dir()) == sorted(
        [f"gsm8k-budget-max{b}-ign0-s0" for b in (4, 256)]
        + [f"gsm8k-majority-k{k}-max{c}-s{s}" for c, k in plan.caps().items() for s in (0, 1)])

    def flops(r):      # what every sample paid: its prompt and its tokens, QK and AV
        return estimate_flops(shape["n_params"], r.compute.prompt_tokens,
                              r.compute.generated_tokens, 30, 576)

    bf = {b: load_run(out / f"gsm8k-budget-max{b}-ign0-s0").records for b in (4, 256)}
    ids = sorted(r.id for r in bf[4])
    curve = [CurvePoint(b, sum(map(flops, recs)) / 2, {r.id: float(r.correct) for r in recs})
             for b, recs in bf.items()]
    assert [p["cost_per_question"] for p in result["budget_forcing"]] == pytest.approx(
        [c.cost for c in curve])
    compared = 0
    for (b, k), c in cells.items():
        cap = b // k
        drawn = plan.caps()[cap]
        par = [[r for r in load_run(out / f"gsm8k-majority-k{drawn}-max{cap}-s{s}").records
                if r.sample < k] for s in (0, 1)]
        assert all(r.thinking_tokens <= cap for seed in par for r in seed)
        cost = [sum(map(flops, seed)) / 2 for seed in par]       # per question, per seed
        assert c["cost_per_question"]["mean"] == pytest.approx(sum(cost) / 2)
        assert c["seeds"] == 2 and c["cost_per_question"]["sd"] is not None
        best = [{q: float(any(r.correct for r in seed if r.id == q)) for q in ids}
                for seed in par]
        assert c["accuracy"]["oracle best-of-k"]["mean"] == pytest.approx(
            sum(sum(s.values()) for s in best) / 4)
        assert c["accuracy"]["oracle best-of-k"]["mean"] >= c["accuracy"]["majority"]["mean"]
        matched = interpolate(curve, sum(cost) / 2)
        if matched is None:
            assert c["accuracy"]["budget forcing"] is None and not c["differences"]
            continue
        compared += 1
        at, budget = matched
        assert c["budget_forcing_budget"] == pytest.approx(budget)
        assert c["accuracy"]["budget forcing"] == pytest.approx(sum(at.values()) / 2)
        ref = paired_bootstrap(at, {q: (best[0][q] + best[1][q]) / 2 for q in ids},
                               n_resamples=2000)
        d = c["differences"]["oracle"]
        assert (d["difference"], d["low"], d["high"], d["p_value"]) == pytest.approx(
            (ref.difference, ref.low, ref.high, ref.p_value))
    assert compared >= 1
    # the parallel side at k = 2 pays for two prompts: far more than one sample at 4 tokens
    assert cells[(4, 2)]["cost_per_question"]["mean"] > 1.5 * cells[(4, 1)]["cost_per_question"]["mean"]
    assert cells[(256, 2)]["differences"] == {}          # beyond budget forcing's range
    md = (out / "compute.md").read_text()
    assert "BF at equal compute %" in md and "outside BF's range" in md and "| 4 | 2 | 2 |" in md

    # again, from --model-config: nothing is generated twice, and the FLOPs are the same
    before = {f.parent.name: f.read_text() for f in out.glob("*/records.jsonl")}
    p = subprocess.run([*S1, *args, "--model-config", str(gguf_config), "--json"],
                       capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stderr
    assert {f.parent.name: f.read_text() for f in out.glob("*/records.jsonl")} == before
    again = {(c["budget"], c["k"]): c for c in json.loads(p.stdout)["cells"]}
    for key, c in cells.items():
        assert again[key]["cost_per_question"] == pytest.approx(c["cost_per_question"])
