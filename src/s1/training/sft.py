"""Completion-only supervised fine-tuning with TRL's SFTTrainer: the s1 training run.

`train(recipe)` builds the masked dataset (data.py), loads the model, maps the recipe onto an
SFTConfig and trains; distribution (DDP, FSDP, DeepSpeed) is whatever `accelerate launch` or
`torchrun` set up around it. A run killed mid-way resumes from its last complete checkpoint when
started again with the same output directory. The final directory loads with
`from_pretrained` as it is and records its thinking format for `s1 generate` / `s1 eval`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from s1.generation.formats import get_format, save_format
from s1.generation.models import EMBEDDED, ModelRef, hub_error, load_tokenizer, resolve_model
from s1.training.data import TruncationReport, build_dataset, load_records, select
from s1.training.recipes import Recipe

LOG_FILE = "train_log.jsonl"       # one line per logged step, appended across resumed runs
RECORD_FILE = "s1_train.json"      # what was trained, on what, with which result
RECIPE_FILE = "s1_recipe.yaml"     # the resolved recipe, overrides applied


@dataclass
class TrainResult:
    output_dir: str
    global_step: int
    resumed_from: str | None
    truncation: TruncationReport
    first_loss: float | None = None      # first logged training loss of this run
    last_loss: float | None = None
    eval_loss_before: float | None = None   # mean loss over the training set (eval_before_after)
    eval_loss_after: float | None = None
    train_seconds: float = 0.0
    model: object = field(default=None, repr=False)   # the trained model, for in-process callers


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def last_checkpoint(output_dir: str | Path) -> str | None:
    """Newest checkpoint that finished writing: the Trainer writes trainer_state.json last, so a
    run killed while saving leaves a folder without it, which must not be resumed from."""
    d = Path(output_dir)
    if not d.is_dir():
        return None
    done = [p for p in d.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()
            and (p / "trainer_state.json").is_file()]
    return str(max(done, key=lambda p: int(p.name.split("-")[-1]))) if done else None


def load_model(ref: ModelRef, recipe: Recipe):
    import torch
    from transformers import AutoModelForCausalLM

    cfg = recipe.model
    kwargs = dict(ref.pretrained_kwargs())
    kwargs["dtype"] = "auto" if cfg.dtype == "auto" else getattr(torch, cfg.dtype)
    if ref.is_gguf and cfg.dtype == "auto":
        kwargs["dtype"] = torch.float32   # GGUF weights are dequantized; train them in fp32
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    if not torch.cuda.is_available():
        torch.set_flush_denormal(True)   # denormals make CPU matmuls ~19x slower
    try:
        model = AutoModelForCausalLM.from_pretrained(ref.path, **kwargs)
    except (OSError, ValueError) as err:
        raise hub_error(ref, err) from None
    # A model read from a GGUF remembers it in its config; the dequantized weights we save are
    # plain tensors, and a saved config claiming GGUF would make from_pretrained look for one.
    if getattr(model.config, "quantization_config", None) is not None and ref.is_gguf:
        del model.config.quantization_config
        model.hf_quantizer = None
        model.is_quantized = False
    model.config.use_cache = False   # no KV cache while training (and none with checkpointing)
    return model


def sft_config(recipe: Recipe):
    """The recipe as TRL's SFTConfig. Data are already tokenized, masked and truncated."""
    import torch
    from trl import SFTConfig

    t = recipe.train
    deepspeed = t.deepspeed or os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE") or None
    return SFTConfig(
        output_dir=recipe.output_dir,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.micro_batch_size,
        per_device_eval_batch_size=t.micro_batch_size,
        gradient_accumulation_steps=t.accumulation_steps(world_size()),
        learning_rate=t.learning_rate,
        warmup_steps=t.warmup_ratio,          # a float below 1 is a ratio of the total steps
        lr_scheduler_type=t.lr_scheduler,
        adam_beta1=t.adam_beta1,
        adam_beta2=t.adam_beta2,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        bf16=t.precision == "bf16",
        fp16=t.precision == "fp16",
        activation_checkpointing=t.gradient_checkpointing,
        logging_steps=t.logging_steps,
        save_strategy="steps" if t.save_steps else "epoch",
        save_steps=t.save_steps or 500,
        save_total_limit=t.save_total_limit,
        seed=t.seed,
        report_to=t.report_to,
        deepspeed=deepspeed,
        use_cpu=not torch.cuda.is_available(),
        # Pad-only positions are -100 in the labels already; SFTTrainer must not re-tokenize,
        # re-truncate or re-mask what data.py built.
        max_length=recipe.data.block_size,
        dataset_kwargs={"skip_prepare_dataset": True},
        # Every parameter gets a gradient in a causal LM; searching for unused ones costs a pass.
        ddp_find_unused_parameters=False,
    )


def _callbacks(output_dir: str):
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):
        """Append every logged step to train_log.jsonl, flushed, so a kill loses nothing."""

        def __init__(self):
            self.losses: list[float] = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            row = {"step": state.global_step, "epoch": state.epoch, **logs, "time": time.time()}
            if "loss" in logs:
                self.losses.append(float(logs["loss"]))
            with open(Path(output_dir) / LOG_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

    return JsonlLog()


def _warn(message: str) -> None:
    if is_main_process():
        print(f"\n{'!' * 78}\nWARNING: {message}\n{'!' * 78}\n", file=sys.stderr, flush=True)


def train(recipe: Recipe, resume: bool = True) -> TrainResult:
    """Fine-tune recipe.model on recipe.data; resume from the last checkpoint if one exists."""
    import torch
    from trl import SFTTrainer

    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    fmt = get_format(recipe.data.format)
    ref = resolve_model(recipe.model.name)
    tokenizer = load_tokenizer(ref)
    if tokenizer.pad_token is None:
        # Harmless even when it equals the end-of-turn token: the loss mask comes from offsets.
        tokenizer.pad_token = tokenizer.eos_token

    d = recipe.data
    records = load_records(d.source, d.split, d.question_field, d.trace_field, d.attempt_field,
                           d.max_chars)
    dataset, report = build_dataset(select(records, d.max_examples, d.seed), tokenizer, fmt,
                                    d.block_size)
    if report.truncated:
        _warn(report.summary())
    elif is_main_process():
        print(report.summary(), flush=True)

    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = last_checkpoint(out) if resume else None
    if is_main_process():
        if checkpoint is None:
            (out / LOG_FILE).unlink(missing_ok=True)   # a fresh run gets a fresh loss log
        (out / RECIPE_FILE).write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
        print(f"resuming from {checkpoint}" if checkpoint else
              f"training {ref.name} on {len(dataset)} examples from {d.source} -> {out}", flush=True)

    # The config comes first: under DeepSpeed ZeRO-3 its existence makes from_pretrained build
    # the model already sharded instead of whole on every process.
    args = sft_config(recipe)
    model = load_model(ref, recipe)
    log = _callbacks(str(out))
    eval_set = dataset if recipe.train.eval_before_after else None
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset,
                         eval_dataset=eval_set, processing_class=tokenizer, callbacks=[log])
    before = None
    if eval_set is not None and checkpoint is None:
        before = trainer.evaluate()["eval_loss"]
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - started
    after = trainer.evaluate()["eval_loss"] if eval_set is not None else None

    # Generation wants the KV cache back; save_model gathers FSDP / ZeRO-3 shards and writes
    # only on the main process.
    trainer.model.config.use_cache = True
    if getattr(trainer, "is_fsdp_enabled", False):
        # Checkpoints may stay sharded (fast, resumable), but the final directory must load
        # with from_pretrained as it is.
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(out))
    result = TrainResult(str(out), trainer.state.global_step, checkpoint, report,
                         log.losses[0] if log.losses else None,
                         log.losses[-1] if log.losses else None, before, after, seconds,
                         model=trainer.model)
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(out))
        save_format(out, fmt)
        record = {"recipe": recipe.to_dict(), "model": ref.name if ref.name != EMBEDDED else
                  f"{EMBEDDED} (embedded GGUF, dequantized)", "format": fmt.to_dict(),
                  "truncation": report.to_dict(), "global_step": result.global_step,
                  "resumed_from": checkpoint, "first_loss": result.first_loss,
                  "last_loss": result.last_loss, "eval_loss_before": before,
                  "eval_loss_after": after, "train_seconds": seconds,
                  "world_size": world_size(),
                  "gradient_accumulation_steps": trainer.args.gradient_accumulation_steps,
                  "versions": _versions()}
        (out / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return result


def _versions() -> dict:
    import torch
    import transformers
    import trl

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "trl": trl.__version__}


__all__ = ["TrainResult", "train", "last_checkpoint", "sft_config", "load_model"]
