"""What each recipe and launch file resolves to on GPUs, read through TRL's SFTConfig and
accelerate's own launcher code (no GPU and no model needed)."""

import json
from pathlib import Path

import pytest
import yaml

from s1.errors import UserError
from s1.training.data import Record, hold_out
from s1.training.recipes import load_recipe
from s1.training.sft import sft_config

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "configs" / "accelerate"
PAPER = ["s1-32b", "s1.1-32b", "ablation-1k-random", "ablation-1k-diverse", "ablation-1k-longest",
         "ablation-59k-full"]
GPU_RECIPES = PAPER + ["s1-32b-8gpu", "s1-32b-qlora"]


def resolve_launch(name: str):
    """(parsed args, environment) exactly as `accelerate launch --config_file NAME` builds them."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(
        ["--config_file", str(LAUNCH / f"{name}.yaml"), "-m", "s1.cli", "train", "--recipe", "s1-32b"])
    args, defaults, _ = _validate_launch_command(args)
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        cmd, env = prepare_deepspeed_cmd_env(args)
        return args, env, cmd
    return args, prepare_multi_gpu_env(args), None


def launch_files() -> list[str]:
    return sorted(p.stem for p in LAUNCH.glob("*.yaml"))


@pytest.mark.parametrize("name", GPU_RECIPES)
def test_accumulation_syncs_every_micro_step_on_every_launch_file(name):
    recipe = load_recipe(name)
    for launch in launch_files():
        procs = yaml.safe_load((LAUNCH / f"{launch}.yaml").read_text())["num_processes"]
        cfg = sft_config(recipe, processes=procs)
        accumulation = cfg.gradient_accumulation_steps
        assert recipe.train.micro_batch_size * procs * accumulation == recipe.train.global_batch_size
        kwargs = cfg.accelerator_config.gradient_accumulation_kwargs
        # FSDP under no_sync keeps a full unsharded gradient per GPU (the paper's sft.sh flag)
        assert (kwargs == {"sync_each_batch": True}) == (accumulation > 1), (name, launch)


def test_the_paper_recipes_weight_the_loss_per_device_and_token_is_an_option():
    for name in PAPER:
        r = load_recipe(name)
        assert r.train.loss_weighting == "device"
        assert sft_config(r, processes=16).average_tokens_across_devices is False
        assert (r.data.block_size, r.train.learning_rate, r.train.epochs) == (32768 if "1.1" not in
                                                                             name else 20000, 1e-5, 5)
    token = load_recipe("s1-32b", ["train.loss_weighting=token"])
    assert sft_config(token, processes=16).average_tokens_across_devices is True
    with pytest.raises(UserError, match="loss_weighting must be one of device, token"):
        load_recipe("s1-32b", ["train.loss_weighting=sequence"])


def test_save_strategy_no_is_possible_and_steps_needs_a_count():
    r = load_recipe("s1-32b", ["train.save_strategy=no"])
    assert sft_config(r, processes=16).save_strategy == "no"
    assert sft_config(load_recipe("s1-32b"), processes=16).save_strategy == "epoch"
    assert sft_config(load_recipe("cpu-smoke"), processes=1).save_strategy == "steps"
    assert sft_config(load_recipe("s1-32b-8gpu"), processes=8).save_strategy == "no"
    with pytest.raises(UserError, match="save_strategy steps needs train.save_steps"):
        load_recipe("s1-32b", ["train.save_strategy=steps"])
    with pytest.raises(UserError, match="save_strategy must be one of"):
        load_recipe("s1-32b", ["train.save_strategy=sometimes"])


def test_fsdp2_launch_files_and_cpu_offload():
    for name in ("fsdp2-2node-8gpu", "fsdp2-1node-8gpu", "fsdp2-1node-8gpu-offload"):
        args, env, _ = resolve_launch(name)
        assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2", name
        assert env["FSDP_RESHARD_AFTER_FORWARD"] == "true"     # full shard
        assert env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"
        assert env["FSDP_STATE_DICT_TYPE"] == "SHARDED_STATE_DICT"
        assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"
        assert env["FSDP_OFFLOAD_PARAMS"] == ("true" if name.endswith("offload") else "false")
    args, env, _ = resolve_launch("fsdp2-2node-8gpu")
    assert (args.num_machines, args.num_processes) == (2, 16)
    # The FSDP1 files stay, wrapping Qwen2DecoderLayer as the paper's fsdp_config_qwen.json
    _, env, _ = resolve_launch("fsdp-1node-8gpu")
    assert env["FSDP_VERSION"] == "1" and env["FSDP_TRANSFORMER_CLS_TO_WRAP"] == "Qwen2DecoderLayer"


def test_deepspeed_runs_per_node_with_the_standard_launcher_not_pdsh():
    args, env, cmd = resolve_launch("deepspeed-zero3-2node-8gpu")
    assert args.deepspeed_multinode_launcher == "standard"
    assert cmd is None            # accelerate's default for >1 machine builds a `deepspeed` (pdsh) cmd
    assert (args.nnodes, args.nproc_per_node) == ("2", "8")
    assert env["ACCELERATE_DEEPSPEED_CONFIG_FILE"] == "configs/deepspeed/zero3.json"
    args, env, cmd = resolve_launch("deepspeed-zero3-1node-8gpu")
    assert args.deepspeed_multinode_launcher == "standard" and cmd is None
    offload = json.loads((ROOT / env["ACCELERATE_DEEPSPEED_CONFIG_FILE"]).read_text())
    zero = offload["zero_optimization"]
    assert zero["stage"] == 3 and zero["offload_optimizer"]["device"] == "cpu"
    # DeepSpeed's own CPU AdamW, its "auto" values filled from the recipe by transformers
    assert offload["optimizer"]["params"]["betas"] == "auto"


def test_every_launch_file_documents_how_to_run_it():
    for name in launch_files():
        text = (LAUNCH / f"{name}.yaml").read_text()
        assert f"--config_file configs/accelerate/{name}.yaml" in text, name
        if yaml.safe_load(text)["num_machines"] > 1:
            assert "--machine_rank" in text and "shared" in text, name


def test_eight_gpu_variant_and_qlora_recipes():
    r = load_recipe("s1-32b-8gpu")
    cfg = sft_config(r, processes=8)
    assert r.model.dtype == "bfloat16" and cfg.optim == "paged_adamw_8bit"
    assert cfg.gradient_accumulation_steps == 2
    q = load_recipe("s1-32b-qlora")
    assert q.lora.enabled and q.lora.quantize == "4bit" and q.lora.merge
    from s1.training.lora import peft_config

    pc = peft_config(q.lora)
    assert (pc.r, pc.lora_alpha, pc.target_modules) == (64, 128, "all-linear")
    with pytest.raises(UserError, match="lora.quantize needs adapters"):
        load_recipe("cpu-smoke", ["lora.quantize=4bit"])


def test_tracking_hub_and_held_out_settings():
    r = load_recipe("cpu-smoke", ["train.report_to=tensorboard,wandb", "train.run_name=try-1",
                                  "train.project=s1-ablations", "data.eval_size=4",
                                  "train.eval_steps=2"])
    assert r.train.report_to == ["tensorboard", "wandb"]
    cfg = sft_config(r, processes=1)
    assert cfg.run_name == "try-1" and cfg.project == "s1-ablations"
    assert cfg.eval_strategy == "steps" and cfg.eval_steps == 2
    assert sft_config(load_recipe("cpu-smoke", ["data.eval_size=0.1"]), 1).eval_strategy == "epoch"
    assert sft_config(load_recipe("cpu-smoke"), 1).run_name == "cpu-smoke"
    assert load_recipe("cpu-smoke", ["train.push_to_hub=true", "train.hub_model_id=me/s1"]
                       ).train.hub_model_id == "me/s1"
    for bad, match in [("train.eval_steps=5", "needs a held-out set"),
                       ("train.hub_model_id=me/x", "push_to_hub is false"),
                       ("data.eval_size=2.5", "whole number"),
                       ("train.report_to=[1]", "list of names")]:
        with pytest.raises(UserError, match=match):
            load_recipe("cpu-smoke", [bad])


def test_held_out_split_is_seeded_and_disjoint():
    recs = [Record(f"q{i}", "t", str(i)) for i in range(20)]
    train, held = hold_out(recs, 0.25, seed=3)
    assert len(held) == 5 and len(train) == 15 and not set(train) & set(held)
    assert hold_out(recs, 0.25, seed=3) == (train, held)
    assert hold_out(recs, 0.25, seed=4)[1] != held
    assert len(hold_out(recs, 3, seed=0)[1]) == 3
    with pytest.raises(UserError, match="keep at least one"):
        hold_out(recs, 20, seed=0)


def test_memory_plan_flags_the_paper_recipe_on_8_gpus_but_not_on_16_or_the_8gpu_paths():
    from s1.training.memory import plan

    # Qwen2.5-32B: 32.76B parameters, 64 layers, hidden 5120; s1K's longest example 9,109 tokens
    qwen = dict(params=32_763_876_352, layers=64, hidden=5120, tokens=9109, checkpointing=True,
                gpu_gib=79.6)
    fp32 = dict(trainable=qwen["params"], param_bytes=4, optim="adamw_torch")
    on8 = plan(**qwen, **fp32, processes=8, sharded=True, offload=False)
    assert not on8.fits and 60 < on8.state_gib < 62
    assert plan(**qwen, **fp32, processes=16, sharded=True, offload=False).fits
    assert plan(**qwen, **fp32, processes=8, sharded=True, offload=True).fits
    bf16_8bit = plan(**qwen, trainable=qwen["params"], param_bytes=2, optim="paged_adamw_8bit",
                     processes=8, sharded=True, offload=False)
    assert bf16_8bit.fits and bf16_8bit.state_gib < 25
    qlora = plan(**qwen, trainable=qwen["params"] // 100, param_bytes=0.5, optim="adamw_torch",
                 processes=1, sharded=False, offload=False)
    assert qlora.fits
    assert "GiB per GPU" in on8.summary()
