"""Shared fixtures: a real llama.cpp server (llama-cpp-python) on loopback."""

from __future__ import annotations

import os

import pytest

from tests.loopback import free_port, start, stop

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # see tests/loopback.py


@pytest.fixture(scope="session")
def llama_server():
    """Base URL of `python -m llama_cpp.server` serving the embedded GGUF, with the settings of
    `load_llama` (n_ctx 8192, one thread per CPU, flash attention), so it computes what the in-process engine does."""
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] is not installed")
    from s1.generation.models import embedded_gguf

    port = free_port()
    proc, url, log = start(["-m", "llama_cpp.server", "--model", str(embedded_gguf()),
                            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "8192",
                            "--n_threads", str(os.cpu_count()), "--flash_attn", "true"],
                           port, "/v1/models", "llama_cpp.server", ready_s=90)
    try:
        yield url
    finally:
        stop(proc, log)
