"""`s1 train`: fine-tune on s1-formatted traces from a recipe."""

from __future__ import annotations

import os
from typing import List, Optional

import typer


def train(
    recipe: str = typer.Option(..., "--recipe", "-r",
                               help="recipe in configs/ (s1-32b, s1.1-32b, cpu-smoke) or a .yaml path"),
    overrides: Optional[List[str]] = typer.Argument(None, metavar="[KEY=VALUE]...",
                                                    help="e.g. train.max_steps=10 data.block_size=20000 "
                                                         "output_dir=runs/x"),
    no_resume: bool = typer.Option(False, "--no-resume",
                                   help="start over even if the output directory has checkpoints"),
    show: bool = typer.Option(False, "--show", help="print the resolved recipe and exit"),
) -> None:
    """Fine-tune a model on s1-formatted traces: TRL SFT, loss on the assistant turn only."""
    # Idle OpenMP workers spin by default; on a shared CPU that starves the busy ones (training
    # steps measured 4-7x slower). Only effective if torch is not imported yet.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    from s1.config import dump
    from s1.training import load_recipe
    from s1.training import train as run_training

    resolved = load_recipe(recipe, overrides or [])
    if show:
        print(dump(resolved.to_dict()), end="")
        return
    result = run_training(resolved, resume=not no_resume)
    if os.environ.get("RANK", "0") != "0":
        return
    print(f"trained {result.global_step} steps in {result.train_seconds:.0f}s -> {result.output_dir}")
    if result.eval_loss_before is not None and result.eval_loss_after is not None:
        print(f"training-set loss {result.eval_loss_before:.4f} -> {result.eval_loss_after:.4f}")
    elif result.first_loss is not None:
        print(f"logged loss {result.first_loss:.4f} (first) -> {result.last_loss:.4f} (last)")
    print(result.truncation.summary())


def register(app: typer.Typer) -> None:
    app.command()(train)
