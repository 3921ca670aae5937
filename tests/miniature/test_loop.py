"""The whole loop of s1 in miniature, each stage its real command: a generated pool, `s1 curate run`
(the difficulty step's solver is the shipped s1-tiny, the base model), `s1 train` (SFT of the base
on the curated set, configs/tiny-sft.yaml), `s1 eval` at a small and a large thinking cap.

What it asserts: the fine-tuned model beats the same network untrained (random weights, one step at
learning rate 1e-12) at the largest cap; its accuracy at the largest cap exceeds the smallest,
paired interval above 0; the training moved the weights. What it does not assert: that the SFT
beats its base — in miniature 1,000 curated examples do not move s1-tiny (docs/miniature.md,
Table 2), and a few dozen steps cannot either."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from s1.evaluation.intervals import paired_bootstrap
from s1.generation.models import tiny_model_dir
from tests.curation.conftest import _s1_cli

CONFIGS = Path(__file__).parents[2] / "configs"
QUESTIONS = 120


def _run(*args, cwd):
    done = _s1_cli(*args, cwd=cwd)
    assert done.returncode == 0, f"s1 {' '.join(map(str, args[:2]))}: {done.stderr[-2000:]}"
    return done


def _scores(out: Path, cap: int) -> list[float]:
    run = next(out.glob(f"*-max{cap}-*"))
    recs = sorted((json.loads(line) for line in (run / "records.jsonl").open()), key=lambda r: r["id"])
    assert len(recs) == QUESTIONS
    return [1.0 if r["correct"] else 0.0 for r in recs]


@pytest.mark.slow
def test_pool_curate_train_eval_gives_a_model_whose_curve_rises(tmp_path):
    recipe = (CONFIGS / "curate-tiny.yaml").read_text() \
        .replace("size: 5000, seed: 1", "size: 240, seed: 21").replace("size: 1000", "size: 96")
    (tmp_path / "curate.yaml").write_text(recipe)
    _run("curate", "run", "--recipe", tmp_path / "curate.yaml", f"out={tmp_path / 'set'}", "--quiet",
         cwd=tmp_path)
    curated = [json.loads(line) for line in (tmp_path / "set" / "s1k.jsonl").open()]
    assert len(curated) == 96

    _run("train", "--recipe", "tiny-sft", f"data.source={tmp_path / 'set' / 's1k.jsonl'}",
         "train.epochs=1", f"output_dir={tmp_path / 'sft'}", cwd=tmp_path)
    record = json.loads((tmp_path / "sft" / "s1_train.json").read_text())
    assert record["global_step"] == 12
    tuned, base = (load_file(str(d / "model.safetensors")) for d in (tmp_path / "sft", tiny_model_dir()))
    assert sorted(tuned) == sorted(base)
    assert any(not torch.equal(tuned[k], base[k]) for k in base)   # the SFT moved the weights

    # the same network untrained: the recipe's scratch model, one step at learning rate 1e-12
    _run("train", "--recipe", "tiny", "data.max_examples=8", "train.learning_rate=1e-12",
         f"output_dir={tmp_path / 'untrained'}", cwd=tmp_path)

    common = ["--benchmark", "tiny", "--limit", QUESTIONS, "--max-answer", "24", "--threads", "1",
              "--batch-size", "64", "--quiet"]
    _run("eval", "--model", tmp_path / "sft", "--max-thinking", "8,128", "--out", tmp_path / "e-sft",
         *common, cwd=tmp_path)
    _run("eval", "--model", tmp_path / "untrained", "--max-thinking", "128", "--out",
         tmp_path / "e-untrained", *common, cwd=tmp_path)
    small, large = _scores(tmp_path / "e-sft", 8), _scores(tmp_path / "e-sft", 128)
    untrained = _scores(tmp_path / "e-untrained", 128)

    assert sum(large) > sum(untrained)
    rise = paired_bootstrap(large, small)
    assert rise.low > 0, (sum(small), sum(large), rise)
