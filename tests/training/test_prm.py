"""`s1 train --recipe tiny-prm`: step labels from the generator's exact checker, a step
classifier that `prm:DIR` loads as a reward model, and a killed run that resumes to the same
weights."""

from __future__ import annotations

import json

import pytest
import torch

from s1.errors import UserError
from s1.evaluation.rewards import load_reward_model
from s1.miniature.steps import check_steps
from s1.miniature.world import WorldConfig, benchmark_questions
from s1.training import load_recipe
from s1.training.prm import CHECKPOINT, examples, train_prm

SMALL = ["data.max_examples=96", "train.global_batch_size=16", "train.logging_steps=2",
         "model.scratch.hidden_size=32", "model.scratch.num_hidden_layers=2",
         "model.scratch.intermediate_size=64", "model.scratch.num_attention_heads=2"]


def test_examples_are_labelled_by_the_checker_with_uncorrected_slips():
    rows = examples(300, 5, WorldConfig(slip_rate=1.0))
    assert not {q for q, _, _ in rows} & benchmark_questions()
    for question, lines, labels in rows:
        assert labels == [int(v) for v in check_steps(question, lines)]
    wrong_runs = [labels for _, _, labels in rows if labels[-1] == 0 and labels.count(0) > 1]
    # a slip left uncorrected makes the lines after it wrong too; corrected ones recover
    assert len(wrong_runs) > 50
    assert sum(labels.count(0) == 1 for _, _, labels in rows) > 50


def test_tiny_prm_trains_loads_as_a_reward_model_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "prm"
    recipe = load_recipe("tiny-prm", SMALL + [f"output_dir={out}", "train.save_steps=2"])
    assert recipe.objective == "prm"
    whole = train_prm(recipe)
    assert whole.global_step == 6 and not (out / CHECKPOINT).exists()
    record = json.loads((out / "s1_train.json").read_text())
    assert record["objective"] == "prm" and record["held_out"]["steps"] > 1000
    rm = load_reward_model(f"prm:{out}")
    assert rm.convention == "qwen" and rm.process
    [scores] = rm.score("Compute 7*3^3 mod 10.", [["7*3=21=1", "1*3=3", "3*3=9"]])
    assert len(scores) == 3 and all(0 < p < 1 for p in scores)

    # killed after step 3: the checkpoint of step 2 resumes to the same weights
    killed = tmp_path / "killed"
    calls = {"n": 0}
    real = torch.nn.utils.clip_grad_norm_

    def dies_at_step_3(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", dies_at_step_3)
    again = load_recipe("tiny-prm", SMALL + [f"output_dir={killed}", "train.save_steps=2"])
    with pytest.raises(KeyboardInterrupt):
        train_prm(again)
    assert (killed / CHECKPOINT).exists() and not (killed / "config.json").exists()
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", real)
    resumed = train_prm(again)
    assert resumed.global_step == 6
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_prm_recipe_needs_the_miniature_world():
    with pytest.raises(UserError, match="objective must be"):
        load_recipe("tiny-prm", ["objective=dpo"])
    recipe = load_recipe("tiny-prm", ["data.source=simplescaling/s1K", "data.synthetic={}"])
    with pytest.raises(UserError, match="data.source synthetic"):
        train_prm(recipe)
