"""Shared fixtures: real llama.cpp servers (llama-cpp-python) on loopback."""

from __future__ import annotations

import os

import pytest

from tests.loopback import free_port, start, stop

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # see tests/loopback.py

SMALL_CTX = 1024     # the context of `small_llama_server`, below the GGUF's trained 8192


def _llama_server(n_ctx: int):
    """`python -m llama_cpp.server` serving the embedded GGUF with a context of n_ctx; yields its URL."""
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] is not installed")
    from s1.generation.models import embedded_gguf

    port = free_port()
    proc, url, log = start(["-m", "llama_cpp.server", "--model", str(embedded_gguf()),
                            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
                            "--n_threads", str(os.cpu_count()), "--flash_attn", "true"],
                           port, "/v1/models", "llama_cpp.server", ready_s=90)
    try:
        yield url
    finally:
        stop(proc, log)


@pytest.fixture(scope="session")
def llama_server():
    """Base URL of a llama.cpp server with the settings of `load_llama` (n_ctx 8192, one thread
    per CPU, flash attention), so it computes what the in-process engine does."""
    yield from _llama_server(8192)


@pytest.fixture(scope="session")
def small_llama_server():
    """A llama.cpp server whose context (SMALL_CTX) is less than the model was trained on: what
    it tells nobody, and what a client must find out."""
    yield from _llama_server(SMALL_CTX)
