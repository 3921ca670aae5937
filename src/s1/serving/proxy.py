"""Proxy mode: s1's budget forcing in front of any OpenAI-compatible engine.

The upstream (vLLM, or llama-cpp-python's server: the remote engine's dialects) only ever sees
plain completions;
the remote engine cuts the generation into segments at the end of thinking and the Forcer
decides what follows, so min/max thinking and "Wait" work on engines that offer neither.
Streamed responses arrive a segment at a time.
"""

from __future__ import annotations

from urllib.parse import urlparse

from s1.errors import UserError
from s1.generation.engines.remote import RemoteEngine, load_remote_engine
from s1.generation.formats import ThinkingFormat


def load_upstream(url: str, model: str | None = None, tokenizer: str | None = None,
                  fmt: ThinkingFormat | None = None, concurrency: int | None = None,
                  api_key: str | None = None, context_length: int | None = None,
                  timeout: float = 600.0, dialect: str = "auto") -> RemoteEngine:
    """The remote engine for `s1 serve --upstream URL`; `concurrency` requests run upstream at
    once (the rest wait in the server's queue; None: what the upstream serves, see
    `remote._concurrency`)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UserError(f"--upstream must be an http(s) URL such as http://127.0.0.1:8001, not {url!r}")
    return load_remote_engine(url, model=model, tokenizer=tokenizer, fmt=fmt,
                              concurrency=concurrency, context_length=context_length,
                              api_key=api_key, timeout=timeout, dialect=dialect,
                              key_hint="--upstream-api-key or $S1_UPSTREAM_API_KEY")
