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
