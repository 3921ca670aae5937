"""s1 in miniature, the whole loop on a small setting: a synthetic pool, a model trained from
random weights on it, budget forcing on held-out problems. The trained model must beat the
untrained one at the largest budget, and its accuracy must rise from the smallest budget to the
largest with the paired interval above 0."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from s1.cli import main
from s1.evaluation.intervals import paired_bootstrap
from s1.evaluation.records import Record

pytestmark = pytest.mark.slow

# One family at difficulty 1..4 learns in a couple of minutes on 2 cores; the whole world
# (configs/tiny.yaml, the shipped s1-tiny) takes 13.
RECIPE = """
name: mini-loop
out: {out}
steps:
  - pool:
      sources: [synthetic]
      synthetic: {{size: 5000, seed: 11, domains: [arithmetic], max_difficulty: 4}}
  - dedup: {{}}
  - select: {{strategy: random, size: 4800, seed: 0}}
  - output: {{trace_column: solution, attempt_column: answer}}
"""


def _run(capsys, *args) -> str:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _scores(run_dir) -> dict[str, float]:
    with open(run_dir / "records.jsonl", encoding="utf-8") as f:
        return {r.id: float(r.correct) for r in (Record.from_dict(json.loads(x)) for x in f)}


def test_pool_curate_train_eval_rises(tmp_path, capsys):
    recipe = tmp_path / "mini-loop.yaml"
    recipe.write_text(RECIPE.format(out=tmp_path / "curate"))
    _run(capsys, "curate", "run", "--recipe", str(recipe), "--quiet")
    curated = tmp_path / "curate" / "s1k.parquet"
    assert len(pq.read_table(curated)) == 4800
    model = tmp_path / "model"
    _run(capsys, "train", "--recipe", "tiny", f"output_dir={model}", f"data.source={curated}",
         "data.max_examples=null")
    assert (model / "config.json").is_file() and (model / "tokenizer.json").is_file()
    record = json.loads((model / "s1_train.json").read_text())
    assert "random weights" in record["model"]
    untrained = tmp_path / "untrained"
    _untrained(untrained)

    common = ["--benchmark", "tiny", "--subset", "domain=arithmetic", "--limit", "60",
              "--engine", "transformers", "--threads", "1", "--batch-size", "64",
              "--max-answer", "24", "--quiet", "--json"]
    caps = "4,64"
    out = json.loads(_run(capsys, "eval", "--model", str(model), *common, "--max-thinking", caps,
                          "--out", str(tmp_path / "trained")))
    runs = {r["a_max"]: r for r in out["runs"]}
    low, high = (tmp_path / "trained" / runs[c]["name"] for c in (4, 64))
    a, b = _scores(high), _scores(low)
    diff = paired_bootstrap(a, b, n_resamples=2000, seed=0)
    assert diff.low > 0, diff
    assert runs[64]["accuracy"] - runs[4]["accuracy"] >= 0.2

    out = json.loads(_run(capsys, "eval", "--model", str(untrained), *common, "--max-thinking",
                          "64", "--out", str(tmp_path / "untrained-runs")))
    [base] = out["runs"]
    assert runs[64]["accuracy"] > base["accuracy"] + 0.2


def _untrained(out):
    """The recipe's model before its first step: the same shape and seed, random weights."""
    from s1.generation.formats import get_format, save_format
    from s1.training import load_recipe
    from s1.training.scratch import char_tokenizer, scratch_model

    recipe = load_recipe("tiny")
    tokenizer = char_tokenizer()
    scratch_model(recipe.model.scratch_config, tokenizer, recipe.train.seed).save_pretrained(out)
    tokenizer.save_pretrained(out)
    save_format(out, get_format("s1"))
