"""LoRA and QLoRA (peft) for one or two GPUs: the s1 run with low-rank adapters instead of every
weight, optionally on a 4-bit base (QLoRA). The output directory still loads as a plain model:
after training, the adapter is merged into a fresh full-precision copy of the base weights.

    s1 train --recipe s1-32b-qlora              # one 80 GB GPU
    s1 train --recipe cpu-smoke lora.r=16       # adapters on the embedded model, on a CPU
"""

from __future__ import annotations

from pathlib import Path

from s1.errors import UserError
from s1.training.recipes import LoraConfig

ADAPTER_DIR = "adapter"   # inside output_dir: the adapter alone (adapter_config.json + weights)


def require_peft():
    try:
        import peft
    except ImportError:
        raise UserError("lora.r > 0 needs peft: pip install 's1[lora]'") from None
    return peft


def peft_config(cfg: LoraConfig):
    """The recipe's lora section as a peft LoraConfig for SFTTrainer(peft_config=...)."""
    peft = require_peft()
    targets = cfg.target_modules
    return peft.LoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha or 2 * cfg.r, lora_dropout=cfg.dropout,
        # peft's "all-linear" is a plain string, not a module name inside a list
        target_modules="all-linear" if targets == ["all-linear"] else list(targets),
        task_type="CAUSAL_LM")


def quantization_kwargs(cfg: LoraConfig, compute_dtype) -> dict:
    """from_pretrained kwargs that load the base weights in 4 or 8 bits (QLoRA), or nothing."""
    if not cfg.quantize:
        return {}
    import torch

    if not torch.cuda.is_available():
        raise UserError(f"lora.quantize={cfg.quantize} needs a CUDA GPU (bitsandbytes); train the "
                        "adapters in full precision with lora.quantize=null")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise UserError("lora.quantize needs bitsandbytes: pip install 's1[qlora]'") from None
    from transformers import BitsAndBytesConfig

    if cfg.quantize == "8bit":
        return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True)}
    # NF4 with double quantization, as the QLoRA paper; storage in the compute dtype lets FSDP
    # shard the packed weights like any other bf16 tensor (two GPUs).
    return {"quantization_config": BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype, bnb_4bit_quant_storage=compute_dtype)}


def merge_adapter(load_base, adapter_dir: Path, out: Path) -> None:
    """Write base + adapter, merged, to `out` as plain full-precision weights.

    The base is loaded afresh (`load_base()`, unquantized), not taken from the trained model:
    a QLoRA model's 4-bit weights cannot take the merged deltas, and under FSDP the trained model
    is sharded across processes.
    """
    peft = require_peft()
    base = load_base()
    merged = peft.PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.config.use_cache = True
    merged.save_pretrained(str(out))


__all__ = ["ADAPTER_DIR", "merge_adapter", "peft_config", "quantization_kwargs", "require_peft"]
