"""Training the embedded model for real: output directory, resume after a kill, 2 processes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from s1.training import load_recipe, train

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

# A few tiny steps: 2 short examples per step cut at 64 tokens, lr high enough to move the
# weights, one thread per process (the test machine's cores are shared).
TINY = ["data.max_examples=4", "data.block_size=64", "train.micro_batch_size=1",
        "train.global_batch_size=2", "train.learning_rate=1e-4", "train.warmup_ratio=0",
        "train.eval_before_after=false", "train.threads=1", "train.save_steps=1000"]


def _env(**extra):
    src = str(ROOT / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_WAIT_POLICY": "PASSIVE", **extra}


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("sft") / "model"
    result = train(load_recipe("cpu-smoke", TINY + ["train.max_steps=2", f"output_dir={out}"]))
    return out, result


def test_training_reports_steps_losses_and_truncation(trained):
    out, result = trained
    assert result.global_step == 2 and result.resumed_from is None
    assert result.truncation.truncated > 0          # 64 tokens cuts these MATH examples
    record = json.loads((out / "s1_train.json").read_text())
    assert record["truncation"]["truncated"] == result.truncation.truncated
    assert record["recipe"]["data"]["block_size"] == 64
    steps = [row for row in _log(out) if "loss" in row]
    assert [row["step"] for row in steps] == [1, 2]
    assert all(row["loss"] > 0 and row["grad_norm"] > 0 for row in steps)


def test_output_directory_loads_as_is_and_records_the_format(trained):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from s1.generation.formats import format_for_model

    out, result = trained
    assert format_for_model(str(out)).name == "s1"
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    assert model.config.use_cache and getattr(model.config, "quantization_config", None) is None
    trained_weights = result.model.state_dict()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, trained_weights[name]), name


def test_trained_model_answers_through_s1_generate(trained):
    out, _ = trained
    p = subprocess.run([sys.executable, "-m", "s1.cli", "generate", "--model", str(out),
                        "--max-thinking", "12", "--max-answer", "8", "--json", "What is 2+3?"],
                       capture_output=True, text=True, env=_env(), timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    trace = json.loads(p.stdout.strip().splitlines()[-1])
    assert trace["end"].startswith("<|im_start|>answer")   # the s1 format read from the directory
    assert 0 < trace["thinking_tokens"] <= 12


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "s1.cli", "train", "--recipe", "cpu-smoke", *TINY,
           "train.max_steps=4", "train.save_steps=2", "train.save_total_limit=1",
           f"output_dir={out}"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 240
        while not (out / "checkpoint-2" / "trainer_state.json").exists():
            assert proc.poll() is None and time.time() < deadline, "no checkpoint-2 written"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)   # no chance to clean up, as a preempted job
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    from s1.training.sft import last_checkpoint

    resume_from = last_checkpoint(out)
    killed_at = int(resume_from.rsplit("-", 1)[1])
    assert killed_at == 2, "the run finished before it could be killed"
    logged_before = [row["step"] for row in _log(out) if "loss" in row]

    p = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert f"resuming from {resume_from}" in p.stdout
    record = json.loads((out / "s1_train.json").read_text())
    assert record["resumed_from"] == resume_from and record["global_step"] == 4
    logged_after = [row["step"] for row in _log(out) if "loss" in row][len(logged_before):]
    assert logged_after == [3, 4]   # continued from the checkpoint, not restarted
    assert logged_before[:2] == [1, 2]


def test_two_gloo_processes_end_with_identical_weights(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_port=29533", str(ROOT / "tests/training/gloo_worker.py"), *TINY,
           "train.threads=1", "train.max_steps=2", f"output_dir={out}"]
    p = subprocess.run(cmd, env=_env(OMP_NUM_THREADS="1"), capture_output=True, text=True,
                       timeout=420)
    assert p.returncode == 0, p.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [r["backend"] for r in ranks] == ["gloo", "gloo"]
    assert ranks[0]["step"] == ranks[1]["step"] == 2
    assert ranks[0]["sha256"] == ranks[1]["sha256"]
    record = json.loads((out / "s1_train.json").read_text())
    assert record["world_size"] == 2
    # The global batch of 2 = micro 1 x 2 processes, so no accumulation.
    assert record["gradient_accumulation_steps"] == 1
