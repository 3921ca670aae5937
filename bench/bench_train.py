"""Training throughput and memory of the embedded model on this CPU.

Prints
  - the fp32 matrix-multiply peak of this machine, measured in this run: two seconds of GEMMs
    before every timed training step, so the peak sees the same neighbours as the step (the
    machine is shared); the best of all of them is the peak, which keeps the MFU conservative;
  - training tokens/s of full optimizer steps (forward, backward, AdamW) on s1-formatted MATH
    examples at a fixed length (median step), and the model FLOPs utilisation against that peak
    (target 30%);
  - the same measure for real `s1 train` optimizer steps (TRL's SFTTrainer with its collator,
    padding, fused LM-head loss, the recipe's loss weighting and logging) on the same model,
    batch and block size, and its tokens/s as a ratio of the hand-written loop's: what the
    framework costs (or saves) per step;
  - the peak RSS of a complete `s1 train --recipe cpu-smoke` run against the 8 GiB budget,
    with its training-set loss before and after.

Model FLOPs per token follow the usual 6 * N convention (N counts every weight a token is
multiplied by, the tied lm_head included, the embedding lookup not) plus causal attention:
6 * layers * hidden * L (half of PaLM's 12 * layers * hidden * L, since causal attention skips
the upper triangle).

    python bench/bench_train.py [--batch 4] [--length 256] [--steps 5] [--skip-smoke] [--skip-sft]
    python bench/bench_train.py --tiny --batch 8 --length 160 --steps 20   # the tiny recipe
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # before torch loads OpenMP (see cli.py)

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GiB = 1024 ** 3


def matmul_peak(n: int = 2048, seconds: float = 2.0) -> float:
    """Best fp32 GEMM FLOP/s over repeated n x n products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t))
    return best


def model_flops_per_token(model, length: int) -> float:
    cfg = model.config
    embedding = model.get_input_embeddings().weight.numel()
    n = sum(p.numel() for p in model.parameters()) - embedding
    n += cfg.vocab_size * cfg.hidden_size            # the lm_head matmul (tied or not)
    if not cfg.tie_word_embeddings:
        n -= model.get_output_embeddings().weight.numel()   # already counted in parameters
    return 6 * n + 6 * cfg.num_hidden_layers * cfg.hidden_size * length


def batch_of_examples(tokenizer, batch: int, length: int, tiny: bool = False) -> torch.Tensor:
    """Real s1-formatted examples (MATH, or the miniature world's for the tiny model),
    concatenated and cut into rows of exactly `length`."""
    from s1.generation.formats import get_format
    from s1.training.data import load_math_pool, load_synthetic, tokenize
    from s1.training.format import format_example

    ids: list[int] = []
    for rec in (load_synthetic(2000, 0) if tiny else load_math_pool()):
        ids += tokenize(format_example(rec.question, rec.trace, rec.attempt, tokenizer,
                                       get_format("s1")), tokenizer)[0]
        if len(ids) >= batch * length:
            break
    return torch.tensor(ids[:batch * length]).view(batch, length)


def throughput(batch: int, length: int, steps: int, tiny: bool = False) -> dict:
    from s1.generation.models import load_tokenizer, resolve_model
    from s1.training.recipes import load_recipe
    from s1.training.sft import load_model

    if tiny:   # the tiny recipe's model: from random weights, character tokenizer
        from s1.training.scratch import char_tokenizer, scratch_model

        tokenizer = char_tokenizer()
        model = scratch_model(load_recipe("tiny").model.scratch_config, tokenizer, 0)
    else:
        ref = resolve_model(None)
        model, tokenizer = load_model(ref, load_recipe("cpu-smoke")), load_tokenizer(ref)
    model.train()
    x = batch_of_examples(tokenizer, batch, length, tiny)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95), weight_decay=1e-4)

    def step():
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()   # first step allocates the optimizer state
    peaks, times = [], []
    for _ in range(steps):
        peaks.append(matmul_peak())
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    tokens = batch * length
    median = sorted(times)[len(times) // 2]
    return {"tokens_per_step": tokens, "best_s": min(times), "median_s": median,
            "tokens_per_s": tokens / median, "tokens_per_s_best": tokens / min(times),
            "peak": max(peaks), "peak_median": sorted(peaks)[len(peaks) // 2],
            "flops_per_token": model_flops_per_token(model, length)}


def sft_steps(batch: int, length: int, steps: int) -> dict:
    """Median optimizer step of `s1 train` (SFTTrainer) on cpu-smoke data cut at `length`.

    Tokens are the real (unpadded) ones TRL counts; rows shorter than `length` are padded to
    the longest in their batch, which the step pays for as a real run does.
    """
    from transformers import TrainerCallback

    from s1.training import load_recipe, train

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []
            self.tokens: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self.started)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "num_tokens" in logs:      # cumulative, logged every step
                self.tokens.append(float(logs["num_tokens"]))

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        recipe = load_recipe("cpu-smoke", [
            f"train.micro_batch_size={batch}", f"train.global_batch_size={batch}",
            f"data.block_size={length}", "data.max_chars=null",
            f"data.max_examples={batch * (steps + 1)}", f"train.max_steps={steps + 1}",
            "train.epochs=1", "train.save_strategy=no", "train.eval_before_after=false",
            "train.logging_steps=1", f"output_dir={tmp}/run"])
        train(recipe, callbacks=[timer])
    per_step = [b - a for a, b in zip([0.0] + timer.tokens, timer.tokens)][1:]
    times = timer.times[1:]                       # the first step warms up
    median = sorted(times)[len(times) // 2]
    tokens = sorted(per_step)[len(per_step) // 2]
    return {"median_s": median, "best_s": min(times), "tokens_per_step": tokens,
            "tokens_per_s": tokens / median, "padded_share": 1 - tokens / (batch * length)}


def smoke_run() -> dict:
    """A full `s1 train --recipe cpu-smoke` in a child process; its peak RSS and losses."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cpu-smoke"
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "s1.cli", "train", "--recipe", "cpu-smoke",
                            f"output_dir={out}"], cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - t
        if p.returncode:
            sys.exit(f"cpu-smoke failed:\n{p.stderr[-3000:]}")
        record = json.loads((out / "s1_train.json").read_text())
    # ru_maxrss of children is in KiB on Linux: the largest child, i.e. the training process.
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {"seconds": seconds, "peak_rss": rss, "steps": record["global_step"],
            "loss_before": record["eval_loss_before"], "loss_after": record["eval_loss_after"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--skip-smoke", action="store_true", help="skip the full cpu-smoke run")
    ap.add_argument("--skip-sft", action="store_true", help="skip the s1 train (SFTTrainer) steps")
    ap.add_argument("--tiny", action="store_true",
                    help="the tiny recipe's model (0.87M, from random weights) instead of SmolLM2; "
                         "its real s1 train run is read from the shipped s1-tiny's record")
    args = ap.parse_args()
    torch.set_flush_denormal(True)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    tp = throughput(args.batch, args.length, args.steps, args.tiny)
    peak = tp["peak"]
    achieved = tp["tokens_per_s"] * tp["flops_per_token"]
    print(f"matmul peak (fp32, 2048^3): {peak / 1e9:.1f} GFLOP/s, best of {args.steps} "
          f"measurements (median {tp['peak_median'] / 1e9:.1f})")
    print(f"training step, batch {args.batch} x {args.length} tokens: median {tp['median_s']:.2f}s, "
          f"best {tp['best_s']:.2f}s over {args.steps} steps")
    print(f"tokens/s: {tp['tokens_per_s']:.0f} (best step {tp['tokens_per_s_best']:.0f}); "
          f"model FLOPs/token {tp['flops_per_token'] / 1e6:.0f} M; "
          f"achieved {achieved / 1e9:.1f} GFLOP/s")
    print(f"MFU = achieved / matmul peak = {achieved / peak:.1%} (target >= 30%; against the "
          f"median peak {achieved / tp['peak_median']:.1%})")
    if args.tiny:
        from s1.generation.models import TRAIN_RECORD, tiny_model_dir

        rec = json.loads((tiny_model_dir() / TRAIN_RECORD).read_text())
        real = rec["tokens_per_second"] * tp["flops_per_token"]
        print(f"the shipped s1-tiny's own s1 train run (as recorded when it was trained, under that load): "
              f"{rec['tokens_per_second']:.0f} tokens/s over {rec['global_step']} steps = "
              f"{real / 1e9:.2f} GFLOP/s, {real / peak:.1%} of this run's matmul peak")
        return
    if not args.skip_sft:
        sft = sft_steps(args.batch, args.length, args.steps)
        print(f"s1 train (SFTTrainer) step, batch {args.batch} x <= {args.length} tokens: median "
              f"{sft['median_s']:.2f}s, best {sft['best_s']:.2f}s; {sft['tokens_per_step']:.0f} "
              f"real tokens per step ({sft['padded_share']:.0%} of the block unused: short "
              f"examples and padding)")
        print(f"s1 train tokens/s: {sft['tokens_per_s']:.0f} = {sft['tokens_per_s'] / tp['tokens_per_s']:.2f}x "
              f"the hand-written loop ({tp['tokens_per_s']:.0f}); MFU "
              f"{sft['tokens_per_s'] * tp['flops_per_token'] / peak:.1%}")
    if args.skip_smoke:
        return
    smoke = smoke_run()
    print(f"cpu-smoke: {smoke['steps']} steps in {smoke['seconds']:.0f}s (model load and the "
          f"two loss evaluations included); training-set loss {smoke['loss_before']:.4f} -> "
          f"{smoke['loss_after']:.4f} (ratio {smoke['loss_after'] / smoke['loss_before']:.2f})")
    print(f"cpu-smoke peak RSS: {smoke['peak_rss'] / GiB:.2f} GiB = "
          f"{smoke['peak_rss'] / (8 * GiB):.0%} of the 8 GiB budget")


if __name__ == "__main__":
    main()
