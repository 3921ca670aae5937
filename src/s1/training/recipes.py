"""Recipes: one YAML file per training run, one validated dataclass per concern.

A recipe has five parts: `model` (what to fine-tune), `data` (what to train on, in which format,
at which block size, what to hold out), `train` (optimisation, loss weighting, checkpointing,
tracking; mapped onto TRL's SFTConfig), `lora` (optional adapters instead of full fine-tuning) and
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

from s1.config import (apply_overrides, build_section, build_sections,  # noqa: F401
                       config_dirs, config_path, list_configs, parse_override, read_config)
from s1.errors import UserError
from s1.generation.formats import FORMATS

DTYPES = ("auto", "float32", "bfloat16", "float16")
PRECISIONS = ("fp32", "bf16", "fp16")
SCHEDULERS = ("cosine", "linear", "constant_with_warmup")
LOSS_WEIGHTINGS = ("device", "token")
SAVE_STRATEGIES = ("epoch", "steps", "no")
QUANTIZATIONS = ("4bit", "8bit")


@dataclass
class ModelConfig:
    """What to fine-tune."""

    name: str | None = None            # hub id, local dir, .gguf, or None = embedded smollm2-135m
    dtype: str = "auto"                # weights as loaded; mixed precision is train.precision
    attn_implementation: str | None = None   # e.g. flash_attention_2 on GPUs that have it
    # A Llama from random weights with the character tokenizer instead of `name`: the shape
    # (hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
    # max_position_embeddings; s1.training.scratch.ScratchConfig). The miniature world's recipes.
    scratch: dict | None = None

    def validate(self) -> None:
        if self.dtype not in DTYPES:
            raise UserError(f"model.dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        if self.scratch is not None and self.name is not None:
            raise UserError("set model.name (a model to fine-tune) or model.scratch (a new one), "
                            "not both")
        self.scratch_config   # validated here, so a bad shape fails before anything loads

    @property
    def scratch_config(self):
        if self.scratch is None:
            return None
        from s1.training.scratch import ScratchConfig

        return build_section(ScratchConfig, self.scratch, "model.scratch")


@dataclass
class DataConfig:
    """What to train on, and how it becomes tokens."""

    source: str = "simplescaling/s1K"  # hub id, local file/folder, `math-pool` (shipped) or
    #                                    `synthetic` (the miniature world: max_examples problems)
    split: str = "train"
    question_field: str | None = None  # None: the s1K names, then common alternatives
    trace_field: str | None = None     # s1K-1.1 r1 traces: deepseek_thinking_trajectory
    attempt_field: str | None = None   # s1K-1.1 r1 answers: deepseek_attempt
    format: str = "s1"                 # thinking format: s1 or think-tags
    block_size: int = 32768            # longer examples are truncated, and reported loudly
    max_examples: int | None = None    # seeded subset (smoke runs)
    max_chars: int | None = None       # keep only records with question+trace this short
    seed: int = 0                      # of the subset and of the held-out split
    eval_split: str | None = None      # a split of `source` held out for evaluation (e.g. test)
    eval_size: float = 0               # or hold out records: a share (0.05) or a count (50)
    # source `synthetic`: the world's domains, min_difficulty, max_difficulty, slip_rate
    # (s1.miniature.world.WorldConfig), e.g. data.synthetic.max_difficulty=4
    synthetic: dict = field(default_factory=dict)

    def validate(self) -> None:
        if self.eval_size < 0 or (self.eval_size >= 1 and self.eval_size != int(self.eval_size)):
            raise UserError(f"data.eval_size must be a share below 1 or a whole number of "
                            f"examples, not {self.eval_size}")
        if self.eval_size and self.eval_split:
            raise UserError("set data.eval_split or data.eval_size, not both")
        if self.format not in FORMATS:
            raise UserError(f"data.format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.block_size < 16:
            raise UserError(f"data.block_size must be at least 16 tokens, not {self.block_size}")
        if self.max_examples is not None and self.max_examples < 1:
            raise UserError("data.max_examples must be positive")
        if self.synthetic and self.source != "synthetic":
            raise UserError("data.synthetic sets the miniature world; it needs data.source: synthetic")
        self.world   # a bad world setting fails here

    @property
    def world(self):
        """The miniature world's settings (source `synthetic`)."""
        from s1.miniature.world import WorldConfig

        return build_section(WorldConfig, self.synthetic, "data.synthetic")


@dataclass
class TrainConfig:
    """Optimisation and checkpointing; defaults are the paper's (§4.1, train/sft.sh)."""

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
    optim: str = "adamw_torch"         # a transformers optimizer; paged_adamw_8bit: bitsandbytes
    # How the loss is averaged. `device`: each process's micro-batch loss is the mean over its
    # own trained tokens, then micro-steps and processes are averaged, so with micro_batch_size 1
    # every sequence counts the same however long it is: the paper's run (transformers 4.46).
    # `token`: one token-weighted mean over the global batch (transformers 5 / TRL default),
    # which gives long traces more weight.
    loss_weighting: str = "device"
    # epoch, steps or no (nothing mid-run, as the paper); None: steps if save_steps else epoch.
    # bool because YAML 1.1 reads a bare `no` as false.
    save_strategy: str | bool | None = None
    save_steps: int | None = None      # with save_strategy steps
    save_total_limit: int | None = 2   # checkpoints kept (each holds optimizer state for resume)
    save_only_model: bool = False      # checkpoints without optimizer state: small, not resumable
    seed: int = 42
    eval_steps: int | None = None      # evaluate the held-out set every N steps (else each epoch)
    eval_before_after: bool = False    # loss before and after (held-out set, else training set)
    deepspeed: str | None = None       # DeepSpeed JSON; else taken from an accelerate launch file
    report_to: list[str] = field(default_factory=lambda: ["none"])   # wandb, tensorboard, trackio
    run_name: str | None = None        # the run's name in the trackers (default: the recipe name)
    project: str | None = None         # tracker project (W&B / trackio); None: their default
    push_to_hub: bool = False          # upload the final model to the hub (needs a token, online)
    hub_model_id: str | None = None    # user/name; default: the output directory's name
    hub_private_repo: bool | None = None
    threads: int | None = None         # torch CPU threads (None: torch's default)
    # Stop after this many optimizer steps with the schedule of the whole run unchanged (a check
    # that a recipe reproduces a run's first steps; the checkpoint resumes it). None: run it all.
    stop_after_steps: int | None = None

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
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise UserError(f"train.loss_weighting must be one of {', '.join(LOSS_WEIGHTINGS)}")
        if self.save_strategy is False:
            self.save_strategy = "no"
        if self.save_strategy is not None and self.save_strategy not in SAVE_STRATEGIES:
            raise UserError(f"train.save_strategy must be one of {', '.join(SAVE_STRATEGIES)}")
        if self.save_strategy == "steps" and not self.save_steps:
            raise UserError("train.save_strategy steps needs train.save_steps")
        for name in ("save_steps", "eval_steps", "stop_after_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UserError(f"train.{name} must be at least 1 (or null)")
        if self.hub_model_id and not self.push_to_hub:
            raise UserError("train.hub_model_id is set but train.push_to_hub is false")

    @property
    def resolved_save_strategy(self) -> str:
        if self.save_strategy is not None:
            return self.save_strategy
        return "steps" if self.save_steps else "epoch"

    def accumulation_steps(self, world_size: int) -> int:
        """Gradient accumulation that keeps the global batch whatever the number of processes."""
        per_step = self.micro_batch_size * world_size
        if self.global_batch_size % per_step:
            raise UserError(f"train.global_batch_size {self.global_batch_size} is not a multiple "
                            f"of micro_batch_size x processes = {self.micro_batch_size} x "
                            f"{world_size}; change one of them")
        return self.global_batch_size // per_step


@dataclass
class LoraConfig:
    """Low-rank adapters (peft) instead of full fine-tuning, for one or two GPUs; a 4-bit base
    makes it QLoRA. Off by default: the paper fine-tunes every weight."""

    r: int = 0                         # adapter rank; 0 = full fine-tuning (e.g. 16 or 64)
    alpha: int | None = None           # scaling numerator; None: 2 x r
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    quantize: str | None = None        # 4bit (QLoRA, nf4) or 8bit base weights: bitsandbytes, CUDA
    merge: bool = True                 # output_dir gets merged full weights (loads anywhere);
    #                                    the adapter alone is always kept in output_dir/adapter

    @property
    def enabled(self) -> bool:
        return self.r > 0

    def validate(self) -> None:
        if self.r < 0:
            raise UserError(f"lora.r must be 0 (off) or a positive rank, not {self.r}")
        if self.quantize is not None and self.quantize not in QUANTIZATIONS:
            raise UserError(f"lora.quantize must be one of {', '.join(QUANTIZATIONS)} or null")
        if self.quantize and not self.enabled:
            raise UserError("lora.quantize needs adapters to train: set lora.r (e.g. 16)")
        if not 0 <= self.dropout < 1:
            raise UserError("lora.dropout must be in [0, 1)")
        if not self.target_modules:
            raise UserError("lora.target_modules must name at least one module (or all-linear)")


OBJECTIVES = ("sft", "prm")


@dataclass
class Recipe:
    name: str
    output_dir: str
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    # sft: the s1 fine-tuning; prm: a step classifier on the miniature world's step labels
    # (s1.training.prm)
    objective: str = "sft"

    def validate(self) -> "Recipe":
        if self.objective not in OBJECTIVES:
            raise UserError(f"objective must be one of {', '.join(OBJECTIVES)}, not "
                            f"{self.objective!r}")
        self.model.validate()
        self.data.validate()
        self.train.validate()
        self.lora.validate()
        if self.model.scratch is not None and self.lora.enabled:
            raise UserError("lora needs a pretrained model.name; a model.scratch model trains "
                            "every weight")
        if self.train.eval_steps and not (self.data.eval_split or self.data.eval_size):
            raise UserError("train.eval_steps needs a held-out set: data.eval_split or "
                            "data.eval_size")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig,
             "lora": LoraConfig}


# --- finding and reading recipes (the generic loader is s1.config) ------------------------------

def list_recipes() -> list[str]:
    return list_configs()


def recipe_path(name: str) -> Path:
    return config_path(name, kind="recipe")


def load_recipe(name: str, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a named recipe (or a .yaml path), apply `key=value` overrides, validate."""
    path = recipe_path(name)
    raw = read_config(name, kind="recipe")
    apply_overrides(raw, overrides, _SECTIONS, top_level=("output_dir", "objective"))
    parts = build_sections(raw, _SECTIONS, top_level=("output_dir", "name", "objective"),
                           where=f"recipe {path}")
    output_dir = raw.get("output_dir") or os.path.join("runs", "train", path.stem)
    recipe = Recipe(name=str(raw.get("name") or path.stem), output_dir=str(output_dir),
                    objective=str(raw.get("objective") or "sft"), **parts)
    return recipe.validate()
