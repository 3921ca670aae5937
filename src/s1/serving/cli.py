"""`s1 serve`: the OpenAI-compatible server, in-process or as a proxy (`--upstream URL`)."""

from __future__ import annotations

import logging
import sys

import typer

from s1.errors import UserError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def register(app: typer.Typer) -> None:
    app.command()(serve)


def serve(
    model: str = typer.Option(None, help="HF id, local directory or .gguf file (default: the embedded "
                                         "SmolLM2-135M-Instruct); with --upstream, the upstream's model name."),
    upstream: str = typer.Option(None, help="Proxy mode: base URL of an OpenAI-compatible completions "
                                            "server (vLLM, llama-cpp-python) to budget-force."),
    upstream_api_key: str = typer.Option(None, envvar="S1_UPSTREAM_API_KEY",
                                         help="API key of the upstream (or $S1_UPSTREAM_API_KEY)."),
    tokenizer: str = typer.Option(None, help="Proxy mode: the upstream model's tokenizer (.gguf, directory "
                                             "or hub id; default: --model, else the embedded GGUF's)."),
    engine: str = typer.Option("transformers", help="In-process engine: transformers or llama.cpp "
                                                    "(both batch continuously)."),
    format: str = typer.Option(None, "--format", help="Thinking format: s1 or think-tags (default: per model)."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (0.0.0.0 exposes the server: set an API key)."),
    port: int = typer.Option(8000),
    api_key: str = typer.Option(None, envvar="S1_API_KEY", help="Require Authorization: Bearer KEY "
                                                                  "(or $S1_API_KEY)."),
    served_model_name: str = typer.Option(None, help="Model id clients send (default: --model, else "
                                                     "smollm2-135m, or the upstream's)."),
    batch_size: int = typer.Option(16, help="Sequences decoded together (transformers or llama.cpp engine)."),
    concurrency: int = typer.Option(None, help="Proxy mode: requests in flight upstream (default: 1 "
                                               "for llama-cpp-python's server, which serves one at a "
                                               "time, else 8)."),
    context_length: int = typer.Option(None, help="Context length (default: the model's, at most "
                                                  "32768; proxy mode: what the upstream tells)."),
    timeout: float = typer.Option(600.0, help="Proxy mode: seconds to wait for the upstream's next byte."),
    dialect: str = typer.Option("auto", help="Proxy mode: auto, ids (vLLM) or llama-cpp-python."),
    max_queue: int = typer.Option(256, help="Requests waiting beyond the running ones; more get 429."),
    max_body_bytes: int = typer.Option(2 * 2**20, help="Larger request bodies get 413."),
    max_thinking: str = typer.Option("auto", help="Default max thinking tokens: N, 'auto' or 'none'."),
    min_thinking: int = typer.Option(0, help="Default min thinking tokens."),
    num_ignore: int = typer.Option(0, help="Default times to ignore the end of thinking."),
    ignore_string: list[str] = typer.Option(None, help="Default ignore string(s) (default: Wait)."),
    loop_guard: str = typer.Option("record", help="off, record or stop."),
    device: str = typer.Option(None, help="cpu, cuda or cuda:N for the transformers engine."),
    threads: int = typer.Option(None, help="CPU threads of the in-process engine."),
    log_level: str = typer.Option("warning", help="uvicorn log level."),
):
    """Serve budget forcing behind the OpenAI API: /v1/chat/completions, /v1/completions,
    /v1/models, /health, with max/min thinking tokens per request."""
    import uvicorn

    from s1.generation.budget import DEFAULT_IGNORE, Budget, LoopGuard, parse_max_thinking
    from s1.generation.formats import resolve_format
    from s1.generation.models import EMBEDDED
    from s1.serving.app import ServeConfig, create_app

    if not 0 < port < 65536:
        raise UserError(f"--port must be in 1..65535 ({port})")
    if batch_size < 1 or (concurrency is not None and concurrency < 1):
        raise UserError("--batch-size and --concurrency must be at least 1")
    if context_length is not None and context_length < 1:
        raise UserError(f"--context-length must be a positive number of tokens ({context_length})")
    if engine not in ("transformers", "llama.cpp"):
        raise UserError(f"unknown in-process engine {engine!r}; choose transformers or llama.cpp")
    defaults = Budget(max_thinking_tokens=parse_max_thinking(max_thinking, "--max-thinking"),
                      min_thinking_tokens=min_thinking, num_ignore=num_ignore,
                      ignore_strings=tuple(ignore_string or DEFAULT_IGNORE),
                      loop=LoopGuard(mode=loop_guard))
    fmt = resolve_format(model, format) if format else None
    config = ServeConfig(model_name=served_model_name or "pending", api_key=api_key,
                         max_queue=max_queue, max_body_bytes=max_body_bytes, budget=defaults)
    if upstream:
        from s1.serving.proxy import load_upstream
        eng = load_upstream(upstream, model=model, tokenizer=tokenizer, fmt=fmt,
                            concurrency=concurrency, api_key=upstream_api_key,
                            timeout=timeout, dialect=dialect, context_length=context_length)
        config.model_name = served_model_name or eng.model
    else:
        from s1.generation.engines import load_engine
        eng = load_engine(model, None, engine, fmt=fmt, batch_size=batch_size, device=device,
                          threads=threads, context_length=context_length)
        config.model_name = served_model_name or model or EMBEDDED
    if host not in LOOPBACK and not api_key:
        print(f"warning: serving on {host} without an API key; anyone who can reach it can use it",
              file=sys.stderr)
    where = f"proxy to {upstream}" if upstream else f"{eng.name} engine"
    print(f"s1 serve: {config.model_name} ({where}) on http://{host}:{port}/v1", file=sys.stderr)
    # failed requests and ignored fields are logged (s1.serving) beside uvicorn's own lines
    logging.basicConfig(format="%(levelname)s:     %(name)s: %(message)s", level=logging.WARNING)
    try:
        uvicorn.run(create_app(eng, config), host=host, port=port, log_level=log_level,
                    timeout_graceful_shutdown=5)
    finally:
        eng.close()
