"""Recipes, overrides and the CLI's handling of bad input (no model runs here)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from s1.errors import UserError
from s1.training.recipes import list_recipes, load_recipe

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_recipes_carry_the_papers_hyperparameters():
    assert {"s1-32b", "s1.1-32b", "cpu-smoke"} <= set(list_recipes())
    r = load_recipe("s1-32b")
    assert r.model.name == "Qwen/Qwen2.5-32B-Instruct" and r.data.source == "simplescaling/s1K"
    t = r.train
    assert (t.learning_rate, t.warmup_ratio, t.lr_scheduler, t.epochs) == (1e-5, 0.05, "cosine", 5)
    assert (t.adam_beta1, t.adam_beta2, t.weight_decay, t.global_batch_size) == (0.9, 0.95, 1e-4, 16)
    assert (r.data.block_size, t.precision, t.gradient_checkpointing) == (32768, "bf16", True)
    r11 = load_recipe("s1.1-32b")
    assert r11.data.block_size == 20000 and r11.data.source == "simplescaling/s1K-1.1"
    assert r11.data.trace_field == "deepseek_thinking_trajectory"
    assert load_recipe("cpu-smoke").model.name is None   # the embedded model


def test_global_batch_is_kept_across_launch_files():
    t = load_recipe("s1-32b").train
    for name, accumulation in [("fsdp-1node-8gpu", 2), ("fsdp-2node-8gpu", 1),
                               ("deepspeed-zero3-1node-8gpu", 2)]:
        launch = yaml.safe_load((ROOT / "configs" / "accelerate" / f"{name}.yaml").read_text())
        procs = launch["num_processes"]
        assert t.accumulation_steps(procs) == accumulation
        assert t.micro_batch_size * procs * accumulation == 16
    fsdp = yaml.safe_load((ROOT / "configs/accelerate/fsdp-1node-8gpu.yaml").read_text())
    assert fsdp["fsdp_config"]["fsdp_sharding_strategy"] == "FULL_SHARD"
    assert fsdp["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"] == "Qwen2DecoderLayer"
    with pytest.raises(UserError, match="not a multiple"):
        t.accumulation_steps(5)


def test_overrides_are_typed_and_checked(tmp_path):
    r = load_recipe("cpu-smoke", ["train.max_steps=7", "train.learning_rate=3e-4",
                                  f"output_dir={tmp_path}", "data.max_examples=null",
                                  "model.name=smollm2-135m"])
    assert (r.train.max_steps, r.train.learning_rate, r.output_dir) == (7, 3e-4, str(tmp_path))
    assert r.data.max_examples is None and r.model.name == "smollm2-135m"
    for bad, match in [("train.nope=1", "unknown field train.nope"),
                       ("train.max_steps=ten", "train.max_steps must be int"),
                       ("train.gradient_checkpointing=maybe", "must be bool"),
                       ("data.format=xml", "data.format must be one of"),
                       ("train.global_batch_size=6", "multiple of train.micro_batch_size"),
                       ("optim.lr=1", "unknown override key"),
                       ("max_steps", "must look like section.field=value")]:
        with pytest.raises(UserError, match=match):
            load_recipe("cpu-smoke", [bad])


def test_unknown_recipe_and_files(tmp_path):
    with pytest.raises(UserError, match="unknown recipe 'nope'.*cpu-smoke"):
        load_recipe("nope")
    with pytest.raises(UserError, match="recipe file not found"):
        load_recipe(str(tmp_path / "x.yaml"))
    f = tmp_path / "mine.yaml"
    f.write_text("data:\n  block_size: 128\n  source: math-pool\nfoo: 1\n")
    with pytest.raises(UserError, match="unknown top-level keys: foo"):
        load_recipe(str(f))


def _s1(*args, **env):
    return subprocess.run([sys.executable, "-m", "s1.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=300, cwd=ROOT)


def test_cli_bad_input_is_one_line_and_exit_code_2():
    p = _s1("train", "--recipe", "nope")
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0
    assert p.stderr.startswith("error: unknown recipe 'nope'")
    p = _s1("train", "--recipe", "cpu-smoke", "train.max_steps=abc")
    assert p.returncode == 2 and "train.max_steps must be int" in p.stderr


@pytest.mark.slow
def test_cli_offline_hub_ids_name_what_to_do(tmp_path):
    offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    p = _s1("train", "--recipe", "s1-32b", f"output_dir={tmp_path}/out", **offline)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "Qwen/Qwen2.5-32B-Instruct" in p.stderr and "huggingface-cli download" in p.stderr
    # With the embedded model the data is the next hub id to fail.
    p = _s1("train", "--recipe", "s1-32b", "model.name=smollm2-135m",
            f"output_dir={tmp_path}/out", **offline)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "simplescaling/s1K" in p.stderr and "math-pool" in p.stderr
