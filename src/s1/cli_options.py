"""What the stage CLIs share: the engine flags (declared once, handed over as one EngineOptions),
defaults read from the config dataclasses, and comma-separated lists.

    @app.command()
    @engine_options
    def serve(port: int = 8000, *, engine: EngineOptions): ...

adds --model/--server/--engine/--format/--think-start/--think-end/--final-answer/
--context-length/--device/--threads/--batch-size/--tokenizer/--concurrency/--api-key/--timeout/
--dialect to the command and calls it with `engine=EngineOptions(...)`, validated.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable, Optional

import typer

from s1.config import default


def _engine_flags() -> list[inspect.Parameter]:
    from s1.generation.options import EngineOptions as E

    def flag(name: str, annotation, help: str, *decls: str) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                 default=typer.Option(default(E, name), *decls, help=help))

    return [
        flag("model", Optional[str], "HF id, local directory or .gguf file (default: the "
             "embedded SmolLM2-135M-Instruct)"),
        flag("server", Optional[str], "Base URL of an OpenAI-compatible completions server."),
        flag("engine", str, "auto, transformers, llama.cpp or remote."),
        flag("format", Optional[str], "Thinking format: s1, think-tags or none (no thinking: the whole output is the answer; default: per model).",
             "--format"),
        flag("think_start", Optional[str], "Custom thinking start string."),
        flag("think_end", Optional[str], "Custom thinking end string."),
        flag("final_answer", Optional[str], "Suffix forced after the end delimiter when thinking "
             "is cut (default: the format's, '\\nFinal Answer:' for s1; '' for none)."),
        flag("context_length", Optional[int], "Context that 'auto' thinking fills (default: "
             "min(the model's, 32768))."),
        flag("device", Optional[str], "cpu, cuda or cuda:N for the transformers engine "
             "(default: cuda if present)."),
        flag("threads", Optional[int], "CPU threads of the in-process engines (default: one "
             "per core)."),
        flag("batch_size", int, "Sequences decoded together by the in-process engines "
             "(transformers, llama.cpp)."),
        flag("tokenizer", Optional[str], "Remote engine: the served model's tokenizer (hub id, "
             "directory or .gguf; default: --model, else the server's /v1/models)."),
        flag("concurrency", Optional[int], "Remote engine: sequences in flight on the server "
             "(default: 1 for llama-cpp-python's server, which serves one at a time, else 8)."),
        flag("api_key", Optional[str], "Remote engine: the server's API key (or "
             "$S1_SERVER_API_KEY).", "--api-key"),
        flag("timeout", float, "Remote engine: seconds to wait for the server's next byte."),
        flag("dialect", str, "Remote engine: auto, ids (vLLM) or llama-cpp-python."),
    ]


ENGINE_FIELDS = ("model", "server", "engine", "format", "think_start", "think_end",
                 "final_answer", "context_length", "device", "threads", "batch_size",
                 "tokenizer", "concurrency", "api_key", "timeout", "dialect")


def engine_options(command: Callable) -> Callable:
    """Give a command the engine flags; it receives them as `engine: EngineOptions`."""
    from s1.generation.options import EngineOptions

    flags = _engine_flags()
    assert [p.name for p in flags] == list(ENGINE_FIELDS)
    own = [p for p in inspect.signature(command).parameters.values() if p.name != "engine"]

    @functools.wraps(command)
    def wrapper(**kwargs):
        opts = EngineOptions(**{name: kwargs.pop(name) for name in ENGINE_FIELDS})
        return command(engine=opts, **kwargs)

    wrapper.__signature__ = inspect.Signature(
        [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + flags)
    wrapper.__annotations__ = {k: v for k, v in command.__annotations__.items() if k != "engine"}
    return wrapper
