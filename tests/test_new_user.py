"""What a new user hit (issue 20, item 5), each tried as they would: a terminal that stays silent
while torch loads, a rejection run whose thinking mean hid its failures, and a help text that
said --batch-size does nothing on llama.cpp."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
       "COLUMNS": "200"}
S1 = [sys.executable, "-m", "s1.cli"]
QUESTION = "Compute 7+6 from left to right."


@pytest.mark.slow
def test_a_terminal_is_told_what_loads_and_a_pipe_is_not():
    leader, follower = pty.openpty()
    args = [*S1, "generate", "--model", "s1-tiny", "--max-thinking", "16", "--max-answer", "16",
            "--threads", "1", QUESTION]
    with_tty = subprocess.run(args, stdout=subprocess.PIPE, stderr=follower, env=ENV,
                              timeout=300)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 1 << 16)
        except OSError:          # the terminal's other end is closed: all read
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert with_tty.returncode == 0
    first = seen.decode(errors="replace").splitlines()[0]
    assert first.startswith("loading s1-tiny (") and "10-60 s" in first
    piped = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=300)
    assert piped.returncode == 0 and "loading s1-tiny" not in piped.stderr
    lines = piped.stdout.splitlines()
    answer = lines[lines.index("[answer]") + 1]
    assert answer.startswith(("Answer:", "Final Answer:")), piped.stdout


@pytest.mark.slow
def test_a_rejection_run_prints_its_failed_samples_apart(tmp_path):
    p = subprocess.run([*S1, "eval", "--model", "s1-tiny", "--benchmark", "tiny", "--limit", "6",
                        "--method", "rejection", "--max-thinking", "20", "--max-tries", "3",
                        "--max-answer", "16", "--threads", "1", "--quiet",
                        "--out", str(tmp_path / "r")],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert p.returncode == 0, p.stderr
    [line] = [x for x in p.stdout.splitlines() if x.startswith("tiny-reject-max20-s0:")]
    recs = [json.loads(x) for x in
            (tmp_path / "r" / "tiny-reject-max20-s0" / "records.jsonl").read_text().splitlines()]
    failed = [r for r in recs if r["accepted"] is False]
    kept = [r["thinking_tokens"] for r in recs if r["accepted"]]
    assert failed, "the threshold is meant to be missed by some questions"
    assert f"{len(failed)}/{len(recs)} out of tries (scored wrong)" in line
    if kept:    # the mean is over the samples within the threshold, as Control counts them
        assert f"· {sum(kept) / len(kept):.0f} thinking tokens/sample within the threshold" in line
        assert all(t <= 20 for t in kept)


@pytest.mark.parametrize("command", ["eval", "generate", "serve"])
def test_batch_size_help_names_both_in_process_engines(command):
    p = subprocess.run([*S1, command, "--help"], capture_output=True, text=True, env=ENV,
                       timeout=120)
    text = " ".join(p.stdout.split())
    start = text.index("--batch-size")
    assert "llama.cpp" in text[start:start + 200], text[start:start + 200]


def test_training_says_what_its_checkpoints_take_on_disk():
    import torch

    from s1.training.recipes import load_recipe
    from s1.training.sft import checkpoint_note, sft_config

    args = sft_config(load_recipe("cpu-smoke"), processes=1)
    # SmolLM2-135M's size: 135M fp32 weights and two AdamW moments each, 1.6 GB a checkpoint.
    model = torch.nn.Linear(11_000, 12_300)
    assert checkpoint_note(model, args) == (
        "checkpoints every 6 steps, about 1.6 GB each (weights and optimizer state), the last 1 "
        "kept; train.save_strategy=no saves only the final model")
