"""The loss each weighting really computes, and a LoRA run, on the embedded model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from s1.training import load_recipe, train

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

# One short and one long example: the two weightings differ only when lengths differ.
RECORDS = [{"question": "What is 2+2?", "thinking_trajectories": ["2+2=4."], "attempt": "4"},
           {"question": "Sum the first ten odd numbers.",
            "thinking_trajectories": ["The first ten odd numbers are 1, 3, 5, 7, 9, 11, 13, 15, "
                                      "17 and 19. Their sum is n^2 for n = 10, so 100. Check: "
                                      "1+19 = 20, five such pairs, 5 x 20 = 100."],
            "attempt": "\\boxed{100}"}]
ONE_STEP = ["data.max_examples=null", "data.max_chars=null", "data.block_size=128",
            "train.micro_batch_size=1", "train.global_batch_size=2", "train.max_steps=1",
            "train.warmup_ratio=0", "train.eval_before_after=false", "train.save_strategy=no",
            "train.threads=1"]


@pytest.fixture(scope="module")
def two_records(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "two.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return path


def per_sequence_losses(recipe):
    """(summed token loss, trained tokens) of each example under the untrained model."""
    from s1.generation.formats import get_format
    from s1.generation.models import load_tokenizer, resolve_model
    from s1.training.data import build_dataset, load_records
    from s1.training.sft import load_model

    ref = resolve_model(recipe.model.name)
    tok = load_tokenizer(ref)
    ds, _ = build_dataset(load_records(recipe.data.source), tok, get_format("s1"),
                          recipe.data.block_size)
    model = load_model(ref, recipe).eval()
    out = []
    with torch.no_grad():
        for row in ds:
            ids, labels = torch.tensor([row["input_ids"]]), torch.tensor(row["labels"][1:])
            logp = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
            keep = labels != -100
            out.append((-logp[keep].gather(1, labels[keep, None]).sum().item(), int(keep.sum())))
    return out


def first_logged_loss(out: Path) -> float:
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return next(r["loss"] for r in rows if "loss" in r)


def test_device_weighting_averages_sequences_and_token_weighting_averages_tokens(two_records,
                                                                                 tmp_path):
    device = load_recipe("cpu-smoke", ONE_STEP + [f"data.source={two_records}",
                                                  f"output_dir={tmp_path}/device"])
    (s_short, n_short), (s_long, n_long) = per_sequence_losses(device)
    assert n_long > 3 * n_short
    per_device = (s_short / n_short + s_long / n_long) / 2
    per_token = (s_short + s_long) / (n_short + n_long)
    assert abs(per_device - per_token) > 0.05 * per_token   # the test can tell them apart

    train(device)   # micro 1 x accumulation 2: each micro-step is one sequence
    assert first_logged_loss(tmp_path / "device") == pytest.approx(per_device, rel=2e-3)
    token = load_recipe("cpu-smoke", ONE_STEP + [f"data.source={two_records}",
                                                 "train.loss_weighting=token",
                                                 f"output_dir={tmp_path}/token"])
    train(token)
    assert first_logged_loss(tmp_path / "token") == pytest.approx(per_token, rel=2e-3)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    pytest.importorskip("peft")
    out = tmp_path_factory.mktemp("lora") / "model"
    recipe = load_recipe("cpu-smoke", [
        "lora.r=8", "lora.alpha=16", "lora.dropout=0", "data.max_examples=4",
        "data.block_size=64", "train.micro_batch_size=4", "train.global_batch_size=4",
        "train.max_steps=6", "train.learning_rate=2e-3", "train.warmup_ratio=0",
        "train.save_strategy=no", "train.eval_before_after=true", "train.threads=2",
        f"output_dir={out}"])
    return out, train(recipe)


def test_lora_lowers_the_loss_and_trains_only_adapters(lora_run):
    out, result = lora_run
    assert result.global_step == 6
    assert result.eval_loss_after < 0.9 * result.eval_loss_before
    model = result.model
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"]) == (8, 16)
    record = json.loads((out / "s1_train.json").read_text())
    assert record["lora"] is True and record["recipe"]["lora"]["r"] == 8


def test_merged_lora_output_is_the_trained_model_as_plain_weights(lora_run):
    from transformers import AutoModelForCausalLM

    out, result = lora_run
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    ids = torch.tensor([[1, 504, 3458, 314, 253, 1345, 30, 2]])
    trained = result.model.eval()
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, trained(input_ids=ids).logits,
                              atol=1e-4)


def test_lora_output_answers_through_s1_generate(lora_run):
    out, _ = lora_run
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep +
           os.environ.get("PYTHONPATH", ""), "OMP_WAIT_POLICY": "PASSIVE"}
    p = subprocess.run([sys.executable, "-m", "s1.cli", "generate", "--model", str(out),
                        "--max-thinking", "12", "--max-answer", "8", "--json", "What is 2+3?"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    trace = json.loads(p.stdout.strip().splitlines()[-1])
    assert trace["end"].startswith("<|im_start|>answer")   # the s1 format read from the directory
    assert 0 < trace["thinking_tokens"] <= 12
