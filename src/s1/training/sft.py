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
from s1.generation.models import (EMBEDDED, TRAIN_RECORD, ModelRef, check_hub, from_pretrained,
                                  load_tokenizer, resolve_model)
from s1.errors import UserError
from s1.training import lora as lora_
from s1.training.data import (SYNTHETIC, TruncationReport, build_dataset, hold_out, load_records,
                              load_synthetic, select)
from s1.training.recipes import Recipe

LOG_FILE = "train_log.jsonl"       # one line per logged step, appended across resumed runs
RECORD_FILE = TRAIN_RECORD         # what was trained, on what, with which result
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


def load_model(ref: ModelRef, recipe: Recipe, quantize: bool = True):
    """The model to train; `quantize=False` loads the base unquantized (to merge an adapter)."""
    check_hub(ref)
    import torch
    from transformers import AutoModelForCausalLM

    cfg = recipe.model
    kwargs = dict(ref.pretrained_kwargs())
    kwargs["dtype"] = "auto" if cfg.dtype == "auto" else getattr(torch, cfg.dtype)
    if ref.is_gguf and cfg.dtype == "auto":
        kwargs["dtype"] = torch.float32   # GGUF weights are dequantized; train them in fp32
    if quantize and recipe.lora.quantize:
        compute = torch.bfloat16 if recipe.train.precision == "bf16" else torch.float16
        kwargs.update(lora_.quantization_kwargs(recipe.lora, compute))
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    if not torch.cuda.is_available():
        torch.set_flush_denormal(True)   # denormals make CPU matmuls ~19x slower
    model = from_pretrained(AutoModelForCausalLM.from_pretrained, ref, **kwargs)
    # A model read from a GGUF remembers it in its config; the dequantized weights we save are
    # plain tensors, and a saved config claiming GGUF would make from_pretrained look for one.
    if getattr(model.config, "quantization_config", None) is not None and ref.is_gguf:
        del model.config.quantization_config
        model.hf_quantizer = None
        model.is_quantized = False
    model.config.use_cache = False   # no KV cache while training (and none with checkpointing)
    return model


def has_eval_set(recipe: Recipe) -> bool:
    return bool(recipe.data.eval_split or recipe.data.eval_size)


def sft_config(recipe: Recipe, processes: int | None = None):
    """The recipe as TRL's SFTConfig for `processes` processes (default: this launch's world).

    Data are already tokenized, masked and truncated, so TRL only collates them.
    """
    import torch
    from trl import SFTConfig

    t = recipe.train
    accumulation = t.accumulation_steps(processes or world_size())
    deepspeed = t.deepspeed or os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE") or None
    evaluating = has_eval_set(recipe)
    if t.project and "wandb" in t.report_to:
        os.environ.setdefault("WANDB_PROJECT", t.project)   # W&B reads its project from here
    return SFTConfig(
        output_dir=recipe.output_dir,
        run_name=t.run_name or recipe.name,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.micro_batch_size,
        per_device_eval_batch_size=t.micro_batch_size,
        gradient_accumulation_steps=accumulation,
        # Without this, transformers runs the first accumulation micro-steps under no_sync, and
        # under FSDP that keeps a full unsharded gradient on every GPU (65 GB for 32B): the
        # paper's train/sft.sh sets it for that reason. Costs one reduce-scatter per micro-step.
        accelerator_config=({"gradient_accumulation_kwargs": {"sync_each_batch": True}}
                            if accumulation > 1 else None),
        # `device`: each process's micro-batch loss is its own token mean, and processes and
        # micro-steps are averaged (the paper's transformers 4.46; see train()). `token`: one
        # token-weighted mean over the global batch.
        average_tokens_across_devices=t.loss_weighting == "token",
        learning_rate=t.learning_rate,
        warmup_steps=t.warmup_ratio,          # a float below 1 is a ratio of the total steps
        lr_scheduler_type=t.lr_scheduler,
        optim=t.optim,
        adam_beta1=t.adam_beta1,
        adam_beta2=t.adam_beta2,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        bf16=t.precision == "bf16",
        fp16=t.precision == "fp16",
        activation_checkpointing=t.gradient_checkpointing,
        logging_steps=t.logging_steps,
        save_strategy=t.resolved_save_strategy,
        save_steps=t.save_steps or 500,
        save_total_limit=t.save_total_limit,
        save_only_model=t.save_only_model,
        eval_strategy=("steps" if t.eval_steps else "epoch") if evaluating else "no",
        eval_steps=t.eval_steps,
        seed=t.seed,
        report_to=t.report_to,
        project=t.project or "huggingface",
        # train.push_to_hub uploads the finished output directory itself (push_to_hub()), with
        # its tokenizer, format and record; the Trainer's own pushes would upload checkpoints.
        push_to_hub=False,
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
            self.tokens = 0.0

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            row = {"step": state.global_step, "epoch": state.epoch, **logs, "time": time.time()}
            if "loss" in logs:
                self.losses.append(float(logs["loss"]))
            if "num_tokens" in logs:   # TRL's running count of real (unpadded) training tokens
                self.tokens = float(logs["num_tokens"])
            with open(Path(output_dir) / LOG_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

    return JsonlLog()


def _stop_after(steps: int):
    from transformers import TrainerCallback

    class StopAfter(TrainerCallback):
        """Ends training after `steps` optimizer steps; the schedule stays the whole run's."""

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= steps:
                control.should_training_stop = True
            return control

    return StopAfter()


def _warn(message: str) -> None:
    if is_main_process():
        print(f"\n{'!' * 78}\nWARNING: {message}\n{'!' * 78}\n", file=sys.stderr, flush=True)


def checkpoint_note(model, args) -> str:
    """What the checkpoints will take on disk: each holds the weights and, to resume, AdamW's two
    fp32 moments per trainable parameter (cpu-smoke: 1.6 GB each for a 135M model)."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    moments = 8 * sum(p.numel() for p in model.parameters() if p.requires_grad)
    strategy = getattr(args.save_strategy, "value", args.save_strategy)
    every = f"every {args.save_steps} steps" if strategy == "steps" else f"every {strategy}"
    kept = f"the last {args.save_total_limit} kept" if args.save_total_limit else "all kept"
    size = weights + moments
    size_text = f"{size / 1e9:.1f} GB" if size >= 1e8 else f"{size / 1e6:.1f} MB"
    return (f"checkpoints {every}, about {size_text} each (weights and optimizer state), "
            f"{kept}; train.save_strategy=no saves only the final model")


def check_memory(model, recipe: Recipe, longest: int) -> None:
    """Warn before the first step when the run cannot fit its GPUs (see memory.py)."""
    import torch

    from s1.training import memory

    if not torch.cuda.is_available() or not is_main_process():
        return
    env = os.environ
    ds_file = recipe.train.deepspeed or env.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
    sharded = env.get("ACCELERATE_USE_FSDP") == "true" or bool(ds_file)
    offload = env.get("FSDP_OFFLOAD_PARAMS") == "true" or (
        bool(ds_file) and "offload" in Path(ds_file).read_text(errors="ignore"))
    params = model.num_parameters()
    quantized = {"4bit": 0.5, "8bit": 1.0}.get(recipe.lora.quantize or "")
    config = model.config.get_text_config()
    plan = memory.plan(
        params=params, trainable=params // 100 if recipe.lora.enabled else params,
        param_bytes=quantized or model.dtype.itemsize, optim=recipe.train.optim,
        processes=world_size(), sharded=sharded, offload=offload,
        layers=config.num_hidden_layers, hidden=config.hidden_size,
        tokens=recipe.train.micro_batch_size * min(longest, recipe.data.block_size),
        checkpointing=recipe.train.gradient_checkpointing,
        gpu_gib=torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
        / memory.GiB)
    if not plan.fits:
        _warn(f"this run needs {plan.summary()} with {world_size()} processes"
              f"{', sharded' if sharded else ''}{', offloaded' if offload else ''}: it will run "
              f"out of memory. For s1-32b use 16 GPUs (configs/accelerate/fsdp2-2node-8gpu.yaml), "
              f"CPU offload (fsdp2-1node-8gpu-offload.yaml), or the s1-32b-8gpu recipe")


def _datasets(recipe: Recipe, tokenizer, fmt):
    """(train set, held-out set or None, truncation report of the train set)."""
    d = recipe.data
    fields = (d.question_field, d.trace_field, d.attempt_field, d.max_chars)
    if d.source == SYNTHETIC:
        records = load_synthetic(d.max_examples, d.seed, d.world)
    else:
        records = select(load_records(d.source, d.split, *fields), d.max_examples, d.seed)
    held_out = []
    if d.eval_split:
        held_out = load_records(d.source, d.eval_split, *fields)
    elif d.eval_size:
        records, held_out = hold_out(records, d.eval_size, d.seed)
    dataset, report = build_dataset(records, tokenizer, fmt, d.block_size)
    eval_data = build_dataset(held_out, tokenizer, fmt, d.block_size)[0] if held_out else None
    return dataset, eval_data, report


def train(recipe: Recipe, resume: bool = True, callbacks=()) -> TrainResult:
    """Fine-tune recipe.model on recipe.data; resume from the last checkpoint if one exists.

    `callbacks`: extra transformers TrainerCallbacks (timing, custom logging).
    """
    if recipe.objective == "prm":     # a step classifier, not a generator: its own loop
        from s1.training.prm import train_prm

        return train_prm(recipe, resume=resume)
    import torch
    from trl import SFTTrainer

    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    fmt = get_format(recipe.data.format)
    scratch = recipe.model.scratch_config
    if scratch is not None:
        from s1.training.scratch import char_tokenizer

        ref, tokenizer = ModelRef(SCRATCH_NAME, ""), char_tokenizer()
    else:
        ref = resolve_model(recipe.model.name)
        tokenizer = load_tokenizer(ref)
    if tokenizer.pad_token is None:
        # Harmless even when it equals the end-of-turn token: the loss mask comes from offsets.
        tokenizer.pad_token = tokenizer.eos_token

    dataset, held_out, report = _datasets(recipe, tokenizer, fmt)
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
        evaluated = f", {len(held_out)} held out" if held_out is not None else ""
        print(f"resuming from {checkpoint}" if checkpoint else
              f"training {ref.name} on {len(dataset)} examples{evaluated} from "
              f"{recipe.data.source} -> {out}", flush=True)

    # The config comes first: under DeepSpeed ZeRO-3 its existence makes from_pretrained build
    # the model already sharded instead of whole on every process.
    args = sft_config(recipe)
    if scratch is not None:
        from s1.training.scratch import scratch_model

        model = scratch_model(scratch, tokenizer, recipe.train.seed)
    else:
        model = load_model(ref, recipe)
    check_memory(model, recipe, report.longest)
    if is_main_process() and args.save_strategy != "no":
        print(checkpoint_note(model, args), flush=True)
    log = _callbacks(str(out))
    eval_set = held_out if held_out is not None else (
        dataset if recipe.train.eval_before_after else None)
    stop = [_stop_after(recipe.train.stop_after_steps)] if recipe.train.stop_after_steps else []
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, eval_dataset=eval_set,
                         processing_class=tokenizer, callbacks=[log, *stop, *callbacks],
                         peft_config=lora_.peft_config(recipe.lora) if recipe.lora.enabled else None)
    if recipe.train.loss_weighting == "device":
        # The Trainer hands the token count of the whole accumulated (and, with
        # average_tokens_across_devices, global) batch only to models that take loss kwargs.
        # Without it TRL divides each micro-batch's loss by its own trained tokens and the Trainer
        # divides by the accumulation steps: the per-device mean of transformers 4.46.
        trainer.model_accepts_loss_kwargs = False
    before = None
    # Under FSDP2 the model can only be prepared together with its optimizer, so an evaluation
    # before train() fails (seen on an H100/H200); the Trainer's eval_on_start evaluates inside
    # the loop, after that preparation.
    in_loop = os.environ.get("ACCELERATE_USE_FSDP") == "true"
    want_before = eval_set is not None and recipe.train.eval_before_after and checkpoint is None
    if want_before and in_loop:
        trainer.args.eval_on_start = True
    elif want_before:
        before = trainer.evaluate()["eval_loss"]
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=checkpoint)
    if want_before and in_loop:
        before = next((h["eval_loss"] for h in trainer.state.log_history if "eval_loss" in h), None)
    seconds = time.perf_counter() - started
    after = (trainer.evaluate()["eval_loss"]
             if eval_set is not None and recipe.train.eval_before_after else None)
    _save(trainer, recipe, ref, out)
    result = TrainResult(str(out), trainer.state.global_step, checkpoint, report,
                         log.losses[0] if log.losses else None,
                         log.losses[-1] if log.losses else None, before, after, seconds,
                         model=trainer.model)
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(out))
        save_format(out, fmt)
        record = {"recipe": recipe.to_dict(), "model": _model_name(ref, trainer.model), "format": fmt.to_dict(),
                  "truncation": report.to_dict(), "global_step": result.global_step,
                  "resumed_from": checkpoint, "first_loss": result.first_loss,
                  "last_loss": result.last_loss, "eval_loss_before": before,
                  "eval_loss_after": after, "train_seconds": seconds,
                  # this run's tokens over its seconds (a resumed run counts from its start)
                  "train_tokens": log.tokens,
                  "tokens_per_second": log.tokens / seconds if seconds and not checkpoint else None,
                  "peak_gpu_memory_gib": (torch.cuda.max_memory_allocated() / 2**30
                                          if torch.cuda.is_available() else None),
                  "held_out_examples": len(held_out) if held_out is not None else 0,
                  "world_size": world_size(),
                  "gradient_accumulation_steps": trainer.args.gradient_accumulation_steps,
                  "loss_weighting": recipe.train.loss_weighting,
                  "lora": recipe.lora.enabled, "versions": _versions()}
        (out / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
        if recipe.train.push_to_hub:
            push(out, recipe)
    return result


SCRATCH_NAME = "scratch"


def _model_name(ref: ModelRef, model) -> str:
    """What was trained, as the record and the reports name it."""
    if ref.name == EMBEDDED:
        return f"{EMBEDDED} (embedded GGUF, dequantized)"
    if ref.name == SCRATCH_NAME:
        c = model.config
        params = sum(p.numel() for p in model.parameters())
        return (f"Llama from random weights ({params / 1e6:.2f}M parameters: {c.num_hidden_layers} "
                f"layers, width {c.hidden_size}, {c.num_attention_heads} heads, character tokenizer)")
    return ref.name


def _save(trainer, recipe: Recipe, ref: ModelRef, out: Path) -> None:
    """The final directory: full weights that load with from_pretrained as they are."""
    # Generation wants the KV cache back; save_model gathers FSDP / ZeRO-3 shards and writes
    # only on the main process.
    trainer.model.config.use_cache = True
    if getattr(trainer, "is_fsdp_enabled", False):
        # Checkpoints may stay sharded (fast, resumable), but the final directory must load
        # with from_pretrained as it is.
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    if not recipe.lora.enabled:
        trainer.save_model(str(out))
        return
    adapter = out / lora_.ADAPTER_DIR
    trainer.save_model(str(adapter))
    if recipe.lora.merge and trainer.is_world_process_zero():
        lora_.merge_adapter(lambda: load_model(ref, recipe, quantize=False), adapter, out)


def push(out: Path, recipe: Recipe) -> str:
    """Upload the finished output directory (weights, tokenizer, format, record) to the hub."""
    from huggingface_hub import HfApi

    t = recipe.train
    repo = t.hub_model_id or out.name
    try:
        api = HfApi()
        repo = api.create_repo(repo, private=t.hub_private_repo, exist_ok=True).repo_id
        api.upload_folder(repo_id=repo, folder_path=str(out), commit_message=f"s1 train {recipe.name}",
                          ignore_patterns=["checkpoint-*", "checkpoint-*/**", "*.tmp"])
    except Exception as err:  # offline, no token, no permission: the model itself is safe
        raise UserError(f"trained and saved to {out}, but the upload to {repo} failed "
                        f"({type(err).__name__}: {str(err).splitlines()[0][:160]}); upload it "
                        f"later with `huggingface-cli upload {repo} {out}`") from None
    print(f"pushed {out} to https://huggingface.co/{repo}", flush=True)
    return repo


def _versions() -> dict:
    import torch
    import transformers
    import trl

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "trl": trl.__version__}


__all__ = ["TrainResult", "train", "last_checkpoint", "sft_config", "load_model", "push"]
