"""A process reward model trained here: the miniature world's step labels, a tiny Llama that
classifies each step (`s1 train --recipe tiny-prm`, a recipe with `objective: prm`).

The examples are the teacher's traces with slips (the world's `slip_rate`); with probability
`UNCORRECTED` a slip's "Wait, <step>" correction is dropped, so the lines after it build on a
wrong value and are wrong too. Every line is labelled by the exact checker
(`s1.miniature.steps.check_steps`: right given the question and the lines before it, or not) and
written in Qwen2.5-Math-PRM's convention (`rewards.qwen_text`: `<extra_0>` after each step), so
the model is a two-label token classifier read at the `<extra_0>` marks, and `prm:DIR` loads it
like any PRM. A character tokenizer, as the tiny generator's.

Training is a plain loop (AdamW, warmup then cosine): cross-entropy at the marks only. A
checkpoint (weights, optimizer, step) is written through a rename every `train.save_steps`
steps; a killed run resumes from it, the examples in the same seeded order. The model, its
tokenizer and `s1_train.json` (with held-out step metrics: accuracy, AUC) are written at the end.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import os
import random
import time
from pathlib import Path

from s1.errors import UserError

UNCORRECTED = 0.5          # slips left uncorrected: what follows them is wrong too
CHECKPOINT = "prm-checkpoint.pt"
HELD_OUT = 400             # problems (of another seed) the step accuracy is measured on


def examples(n: int, seed: int, world) -> list[tuple[str, list[str], list[int]]]:
    """(question, lines, labels) of n generated problems, never the benchmark's."""
    from s1.miniature.steps import check_steps
    from s1.miniature.world import benchmark_questions, generate

    rng = random.Random(f"s1-prm-{seed}")
    out = []
    for row in generate(n, seed, world, exclude=set(benchmark_questions())):
        lines = row["trace"].split("\n")
        if row["slip"] and rng.random() < UNCORRECTED:
            at = next(i for i in range(1, len(lines)) if lines[i].startswith("Wait, ")
                      and lines[i][len("Wait, "):] != lines[i - 1].removeprefix("Wait, "))
            del lines[at]
        out.append((row["question"], lines,
                    [int(v) for v in check_steps(row["question"], lines)]))
    return out


def encode(tokenizer, mark: int, question: str, lines: list[str], labels: list[int]):
    """Token ids and per-token labels: the step's label at its mark, -100 elsewhere."""
    from s1.evaluation.rewards import qwen_text

    ids = tokenizer.encode(qwen_text(tokenizer, question, lines))
    at = [i for i, t in enumerate(ids) if t == mark]
    if len(at) != len(labels):
        raise UserError(f"a step of {question!r} contains the step mark")
    target = [-100] * len(ids)
    for i, label in zip(at, labels):
        target[i] = label
    return ids, target


def _batches(encoded, size: int, pad: int):
    import torch

    for start in range(0, len(encoded) - size + 1, size):
        chunk = encoded[start:start + size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((size, width), pad)
        labels = torch.full((size, width), -100)
        mask = torch.zeros((size, width), dtype=torch.long)
        for row, (x, y) in enumerate(chunk):
            ids[row, :len(x)], labels[row, :len(y)], mask[row, :len(x)] = (
                torch.tensor(x), torch.tensor(y), 1)
        yield ids, mask, labels


def step_metrics(model, encoded, pad: int, size: int = 32) -> dict:
    """How well the model tells right steps from wrong ones: the share it labels right, the
    share of right steps (what always saying "right" scores) and the AUC of P(right)."""
    import torch

    probs, labels_seen = [], []
    with torch.inference_mode():
        for ids, mask, labels in _batches(encoded, size, pad):
            logits = model(input_ids=ids, attention_mask=mask).logits
            keep = labels != -100
            probs += logits.softmax(-1)[..., 1][keep].tolist()
            labels_seen += labels[keep].tolist()
    right = [p for p, y in zip(probs, labels_seen) if y == 1]
    wrong = [p for p, y in zip(probs, labels_seen) if y == 0]
    # AUC: the chance a right step scores above a wrong one (ties count half)
    ranked = sorted(wrong)
    pairs = sum(bisect.bisect_left(ranked, p) + 0.5 * (bisect.bisect_right(ranked, p)
                                                       - bisect.bisect_left(ranked, p))
                for p in right)
    return {"steps": len(probs),
            "accuracy": sum((p > 0.5) == (y == 1) for p, y in zip(probs, labels_seen))
            / max(1, len(probs)),
            "right_share": len(right) / max(1, len(probs)),
            "auc": pairs / (len(right) * len(wrong)) if right and wrong else None}


def train_prm(recipe, resume: bool = True):
    import torch
    from transformers import get_cosine_schedule_with_warmup

    from s1.evaluation.rewards import QWEN_STEP
    from s1.generation.models import TRAIN_RECORD
    from s1.training.data import TruncationReport
    from s1.training.scratch import char_tokenizer, scratch_model
    from s1.training.sft import TrainResult

    scratch, data, opt = recipe.model.scratch_config, recipe.data, recipe.train
    if scratch is None or data.source != "synthetic":
        raise UserError("objective prm trains a model.scratch on data.source synthetic (the "
                        "miniature world's step labels)")
    if opt.threads:
        torch.set_num_threads(opt.threads)
    tokenizer = char_tokenizer()
    tokenizer.add_tokens([QWEN_STEP], special_tokens=True)
    mark, pad = tokenizer.convert_tokens_to_ids(QWEN_STEP), tokenizer.pad_token_id
    n = data.max_examples or 20_000
    train_set = [encode(tokenizer, mark, *e) for e in examples(n, data.seed, data.world)]
    held_out = [encode(tokenizer, mark, *e)
                for e in examples(HELD_OUT, data.seed + 7_919, data.world)]
    longest = max(len(ids) for ids, _ in train_set)
    if longest > data.block_size:
        raise UserError(f"an example has {longest} tokens, more than data.block_size "
                        f"{data.block_size}: raise it")
    random.Random(opt.seed).shuffle(train_set)
    size = opt.global_batch_size
    steps = len(train_set) // size * max(1, int(opt.epochs))
    if opt.max_steps and opt.max_steps > 0:
        steps = min(steps, opt.max_steps)

    model = scratch_model(scratch, tokenizer, opt.seed, head="steps")
    optimizer = torch.optim.AdamW(model.parameters(), lr=opt.learning_rate,
                                  betas=(opt.adam_beta1, opt.adam_beta2),
                                  weight_decay=opt.weight_decay)
    schedule = get_cosine_schedule_with_warmup(optimizer, math.ceil(opt.warmup_ratio * steps),
                                               steps)
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt, step, losses = out / CHECKPOINT, 0, []
    if resume and ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        step, losses = state["step"], state["losses"]
        torch.set_rng_state(state["rng"])     # the head's dropout draws on where it stopped
        print(f"resuming from step {step} ({ckpt})", flush=True)
    else:
        print(f"training a step classifier on {len(train_set)} problems of the miniature world "
              f"-> {out}", flush=True)
    started = time.perf_counter()
    every = opt.save_steps or 200
    epochs = itertools.chain.from_iterable(
        _batches(train_set, size, pad) for _ in range(max(1, int(opt.epochs))))
    model.train()
    for ids, mask, labels in itertools.islice(epochs, step, steps):   # resumed: the same order
        loss = torch.nn.functional.cross_entropy(
            model(input_ids=ids, attention_mask=mask).logits.flatten(0, 1), labels.flatten(),
            ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), opt.max_grad_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        step += 1
        losses.append(loss.item())
        if step % opt.logging_steps == 0:
            recent = losses[-opt.logging_steps:]
            print(f"step {step}/{steps} loss {sum(recent) / len(recent):.4f}", flush=True)
        if step % every == 0 and step < steps:
            tmp = ckpt.with_name(f".{CHECKPOINT}.tmp")
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(), "step": step, "losses": losses,
                        "rng": torch.get_rng_state()}, tmp)
            os.replace(tmp, ckpt)
    model.eval()
    metrics = step_metrics(model, held_out, pad)
    seconds = time.perf_counter() - started
    # The model directory appears whole: written aside, then renamed file by file.
    tmp_dir = out / ".prm-final"
    model.save_pretrained(tmp_dir)
    tokenizer.save_pretrained(tmp_dir)
    (tmp_dir / TRAIN_RECORD).write_text(json.dumps({
        "model": "scratch", "objective": "prm", "recipe": recipe.to_dict(), "global_step": step,
        "train_seconds": seconds, "last_loss": losses[-1] if losses else None,
        "held_out": metrics}, indent=1))
    for f in tmp_dir.iterdir():
        os.replace(f, out / f.name)
    tmp_dir.rmdir()
    ckpt.unlink(missing_ok=True)
    auc = "n/a" if metrics["auc"] is None else f"{metrics['auc']:.3f}"
    print(f"held-out steps: {metrics['steps']}, labelled right {metrics['accuracy']:.3f} (all "
          f"'right' would be {metrics['right_share']:.3f}), AUC {auc}", flush=True)
    return TrainResult(str(out), step, None, TruncationReport(data.block_size, len(train_set),
                                                               longest=longest),
                       first_loss=losses[0] if losses else None,
                       last_loss=losses[-1] if losses else None, train_seconds=seconds,
                       model=model)
