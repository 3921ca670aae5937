"""Recipes: one YAML file per training run, one validated dataclass per concern.

A recipe has four parts: `model` (what to fine-tune), `data` (what to train on, in which format,
at which block size), `train` (optimisation and checkpointing, mapped onto TRL's SFTConfig) and
`output_dir`. `configs/NAME.yaml` holds the named ones (read by the generic `s1.config`); `key=value` overrides (dotted:
`train.max_steps=10`) change any field, with the value parsed as YAML and checked like the file.
Distribution (how many GPUs, FSDP or DeepSpeed) is not in the recipe: it comes from the accelerate
launch file, and the global batch size stays fixed because gradient accumulation is derived from
the number of processes.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from s1.config import (apply_overrides, build_sections, config_dirs, config_path,  # noqa: F401
                       list_configs, parse_override, read_config)
from s1.errors import UserError
from s1.generation.formats import FORMATS

DTYPES = ("auto", "float32", "bfloat16", "float16")
PRECISIONS = ("fp32", "bf16", "fp16")
SCHEDULERS = ("cosine", "linear", "constant_with_warmup")


@dataclass
class ModelConfig:
    """What to fine-tune."""

    name: str | None = None            # hub id, local dir, .gguf, or None = embedded smollm2-135m
    dtype: str = "auto"                # weights as loaded; mixed precision is train.precision
    attn_implementation: str | None = None   # e.g. flash_attention_2 on GPUs that have it

    def validate(self) -> None:
        if self.dtype not in DTYPES:
            raise UserError(f"model.dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")


@dataclass
class DataConfig:
    """What to train on, and how it becomes tokens."""

    source: str = "simplescaling/s1K"  # hub id, local file/folder, or `math-pool` (shipped)
    split: str = "train"
    question_field: str | None = None  # None: the s1K names, then common alternatives
    trace_field: str | None = None     # s1K-1.1 r1 traces: deepseek_thinking_trajectory
    attempt_field: str | None = None   # s1K-1.1 r1 answers: deepseek_attempt
    format: str = "s1"                 # thinking format: s1 or think-tags
    block_size: int = 32768            # longer examples are truncated, and reported loudly
    max_examples: int | None = None    # seeded subset (smoke runs)
    max_chars: int | None = None       # keep only records with question+trace this short
    seed: int = 0                      # of the subset

    def validate(self) -> None:
        if self.format not in FORMATS:
            raise UserError(f"data.format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.block_size < 16:
            raise UserError(f"data.block_size must be at least 16 tokens, not {self.block_size}")
        if self.max_examples is not None and self.max_examples < 1:
            raise UserError("data.max_examples must be positive")


@dataclass
class TrainConfig:
    """Optimisation and checkpointing; defaults are the paper's (REFERENCE §3)."""

    epochs: float = 5
    max_steps: int = -1                # > 0 overrides epochs
    global_batch_size: int = 16        # sequences per optimizer step, across all processes
    micro_batch_size: int = 1          # sequences per process per forward pass
    learning_rate: float = 1e-5
    warmup_ratio: float = 0.05
    lr_scheduler: str = "cosine"       # cosine decays to 0, as the paper
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    weight_decay: float = 1e-4
    max_grad_norm: float = 1.0
    precision: str = "bf16"            # fp32 on CPU
    gradient_checkpointing: bool = True
    logging_steps: int = 1
    save_steps: int | None = None      # None: a checkpoint at the end of every epoch
    save_total_limit: int | None = 2   # checkpoints kept (each holds optimizer state for resume)
    seed: int = 42
    eval_before_after: bool = False    # mean training-set loss before and after (small runs)
    deepspeed: str | None = None       # DeepSpeed JSON; else taken from an accelerate launch file
    report_to: str = "none"            # e.g. wandb, tensorboard
    threads: int | None = None         # torch CPU threads (None: torch's default)

    def validate(self) -> None:
        if self.lr_scheduler not in SCHEDULERS:
            raise UserError(f"train.lr_scheduler must be one of {', '.join(SCHEDULERS)}")
        if self.precision not in PRECISIONS:
            raise UserError(f"train.precision must be one of {', '.join(PRECISIONS)}")
        for name in ("global_batch_size", "micro_batch_size", "logging_steps"):
            if getattr(self, name) < 1:
                raise UserError(f"train.{name} must be at least 1")
        if self.global_batch_size % self.micro_batch_size:
            raise UserError(f"train.global_batch_size ({self.global_batch_size}) must be a "
                            f"multiple of train.micro_batch_size ({self.micro_batch_size})")
        if self.learning_rate <= 0 or not 0 <= self.warmup_ratio < 1:
            raise UserError("train.learning_rate must be positive and train.warmup_ratio in [0, 1)")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise UserError("set train.epochs or train.max_steps to a positive number")

    def accumulation_steps(self, world_size: int) -> int:
        """Gradient accumulation that keeps the global batch whatever the number of processes."""
        per_step = self.micro_batch_size * world_size
        if self.global_batch_size % per_step:
            raise UserError(f"train.global_batch_size {self.global_batch_size} is not a multiple "
                            f"of micro_batch_size x processes = {self.micro_batch_size} x "
                            f"{world_size}; change one of them")
        return self.global_batch_size // per_step


@dataclass
class Recipe:
    name: str
    output_dir: str
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> "Recipe":
        self.model.validate()
        self.data.validate()
        self.train.validate()
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}


# --- finding and reading recipes (the generic loader is s1.config) ------------------------------

def list_recipes() -> list[str]:
    return list_configs()


def recipe_path(name: str) -> Path:
    return config_path(name, kind="recipe")


def load_recipe(name: str, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a named recipe (or a .yaml path), apply `key=value` overrides, validate."""
    path = recipe_path(name)
    raw = read_config(name, kind="recipe")
    apply_overrides(raw, overrides, _SECTIONS, top_level=("output_dir",))
    parts = build_sections(raw, _SECTIONS, top_level=("output_dir", "name"),
                           where=f"recipe {path}")
    output_dir = raw.get("output_dir") or os.path.join("runs", "train", path.stem)
    recipe = Recipe(name=str(raw.get("name") or path.stem), output_dir=str(output_dir), **parts)
    return recipe.validate()
