"""Matched compute in one command (issue 7.16): `s1 compare-compute` on the embedded model, with
tiny budgets on a few GSM8K questions; FLOPs from the model's real config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from s1.errors import UserError
from s1.evaluation.compute import ComputePlan, shape_from_config

S1 = [sys.executable, "-m", "s1.cli"]


def test_the_plan_draws_each_cap_once_with_the_most_samples_it_needs():
    plan = ComputePlan((16, 8), (2, 1))
    assert plan.budgets == (8, 16) and plan.ks == (1, 2)
    # B/k: 8/1 = 8, 8/2 = 4, 16/1 = 16, 16/2 = 8 (shared with 8/1: drawn once, 2 samples)
    assert plan.caps() == {4: 2, 8: 2, 16: 1}
    names = [s.name for m in plan.methods() for s in m.settings(
        __import__("s1.generation.budget", fromlist=["Budget"]).Budget())]
    assert names == ["budget-max8-ign0", "budget-max16-ign0", "majority-k2-max4",
                     "majority-k2-max8", "majority-k1-max16"]


@pytest.mark.parametrize("kwargs, words", [
    ({"budgets": (2,), "ks": (4,)}, "cannot be split 4 ways"),
    ({"budgets": (8,), "ks": (1, 1)}, "must not repeat"),
    ({"budgets": (0,)}, "positive token counts"),
    ({"budgets": (8,), "temperature": 0.0}, "temperature above 0"),
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
    args = ["compare-compute", "--benchmark", "gsm8k", "--limit", "2", "--budgets", "4,8",
            "--ks", "1,2", "--max-answer", "6", "--engine", "llama.cpp", "--quiet",
            "--resamples", "2000", "--out", str(out)]
    p = subprocess.run([*S1, *args, "--json"], capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    assert {Path(f).name for f in result["files"]} == {"compute.json", "compute.md",
                                                        "compute-matched-gsm8k.png"}
    assert (out / "compute-matched-gsm8k.png").read_bytes()[:4] == b"\x89PNG"
    cells = {(c["budget"], c["k"]): c for c in result["cells"]}
    assert sorted(cells) == [(4, 1), (4, 2), (8, 1), (8, 2)]
    shape = result["model_shape"]
    assert shape["n_params"] == 134_515_008 and shape["n_layers"] == 30

    def recs(name):
        return load_run(out / name).records

    for (b, k), c in cells.items():
        cap = b // k
        drawn = ComputePlan((4, 8), (1, 2)).caps()[cap]   # the samples drawn at this cap
        par = [r for r in recs(f"gsm8k-majority-k{drawn}-max{cap}-s0") if r.sample < k]
        seq = recs(f"gsm8k-budget-max{b}-ign0-s0")
        ids = sorted({r.id for r in seq})
        bf = {r.id: float(r.correct) for r in seq}
        best = {q: float(any(r.correct for r in par if r.id == q)) for q in ids}
        assert c["accuracy"]["budget forcing"] == pytest.approx(sum(bf.values()) / len(ids))
        assert c["accuracy"]["oracle best-of-k"] == pytest.approx(sum(best.values()) / len(ids))
        # the oracle is never below the majority of the same samples
        assert c["accuracy"]["oracle best-of-k"] >= c["accuracy"]["majority"]
        ref = paired_bootstrap(bf, best, n_resamples=2000)
        d = c["differences"]["oracle"]
        assert (d["difference"], d["low"], d["high"]) == pytest.approx(
            (ref.difference, ref.low, ref.high))
        # FLOPs per question: every sample pays for its prompt and its tokens
        want = sum(estimate_flops(shape["n_params"], r.compute.prompt_tokens,
                                  r.compute.generated_tokens, 30, 576) for r in par) / len(ids)
        assert c["flops_per_question"]["majority"] == pytest.approx(want)
        assert all(r.thinking_tokens <= cap for r in par)
    # the parallel side at k = 2 pays for two prompts: more FLOPs than one sample
    assert cells[(8, 2)]["flops_per_question"]["majority"] > cells[(4, 1)]["flops_per_question"]["majority"]
    md = (out / "compute.md").read_text()
    assert "BF − maj [95% CI]" in md and "| 8 | 2 | 4 |" in md

    # again, from --model-config: nothing is generated twice, and the FLOPs are the same
    before = {f.parent.name: f.read_text() for f in out.glob("*/records.jsonl")}
    p = subprocess.run([*S1, *args, "--model-config", str(gguf_config), "--json"],
                       capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stderr
    assert {f.parent.name: f.read_text() for f in out.glob("*/records.jsonl")} == before
    again = {(c["budget"], c["k"]): c for c in json.loads(p.stdout)["cells"]}
    for key, c in cells.items():
        assert again[key]["flops_per_question"] == pytest.approx(c["flops_per_question"])
