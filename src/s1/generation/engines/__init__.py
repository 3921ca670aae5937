"""Engines drive Forcers with a model. `load_engine` picks one from what the user gave."""

from __future__ import annotations

import importlib.util

from s1.errors import UserError
from s1.generation.engines.base import Engine, Request
from s1.generation.formats import ThinkingFormat, format_for_model
from s1.generation.models import check_hub, resolve_model

ENGINES = ("auto", "transformers", "llama.cpp", "remote")


def load_engine(model: str | None = None, server: str | None = None, engine: str = "auto",
                fmt: ThinkingFormat | None = None, batch_size: int = 16,
                device: str | None = None, context_length: int | None = None,
                tokenizer: str | None = None, concurrency: int | None = None,
                threads: int | None = None, api_key: str | None = None,
                timeout: float = 600.0, dialect: str = "auto") -> Engine:
    """`server` → the remote engine; a GGUF → llama.cpp when installed; else transformers.

    `device`: cpu, cuda, cuda:N (transformers engine; default cuda when there is one).
    `context_length`: the context `auto` fills (default: min(the model's, 32768); a server's own).
    `threads`: CPU threads for the in-process engines (default: one per core).
    `concurrency`: requests in flight on a server (default: 1 for llama-cpp-python's, else 8).
    """
    if context_length is not None and context_length < 1:
        raise UserError(f"context length must be a positive number of tokens ({context_length})")
    if engine not in ENGINES:
        raise UserError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if threads is not None and threads < 1:
        raise UserError(f"threads must be at least 1 ({threads})")
    if device is not None:
        _check_device(device)
    if server or engine == "remote":
        if not server:
            raise UserError("the remote engine needs --server URL")
        from s1.generation.engines.remote import load_remote_engine
        return load_remote_engine(server, model=model, tokenizer=tokenizer, fmt=fmt,
                                  concurrency=concurrency, context_length=context_length,
                                  api_key=api_key, timeout=timeout, dialect=dialect)
    ref = resolve_model(model)
    check_hub(ref)   # offline, a model that is not cached is refused before torch is imported
    fmt = fmt or format_for_model(ref.path if not ref.is_gguf else model)
    has_llama = importlib.util.find_spec("llama_cpp") is not None
    if engine == "llama.cpp" or (engine == "auto" and ref.is_gguf and has_llama and device in (None, "cpu")):
        if not has_llama:
            raise UserError("llama.cpp is not installed: pip install 'llama-cpp-python[server]'")
        from s1.generation.engines.llamacpp import LlamaCppEngine
        return LlamaCppEngine(str(ref.gguf_path), fmt, n_ctx=context_length, n_threads=threads,
                              batch_size=batch_size)
    import torch

    from s1.generation.engines.hf import HFEngine
    if threads:
        torch.set_num_threads(threads)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return HFEngine(ref, fmt, device=device, batch_size=batch_size, context_length=context_length)


def _check_device(device: str) -> None:
    import torch

    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()):
        raise UserError(f"unknown device {device!r}; use cpu, cuda or cuda:N")
    if kind == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0 or (index and int(index) >= n):
            raise UserError(f"device {device} is not available here ({n} CUDA devices); use --device cpu")


__all__ = ["Engine", "Request", "load_engine", "ENGINES"]
