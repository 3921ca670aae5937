"""`s1 serve` as a user runs it: a subprocess on loopback, reached with the official openai client."""

from __future__ import annotations

import pytest

from tests.loopback import free_port, start, stop

API_KEY = "test-key"


def start_serve(*args: str, ready_s: float = 300):
    """Start `s1 serve ARGS` on a free port; returns (process, base URL, log file)."""
    port = free_port()
    return start(["-m", "s1.cli", "serve", "--port", str(port), *args], port, "/health",
                 "s1 serve", ready_s)


stop_serve = stop


@pytest.fixture(scope="session")
def serve_url():
    """The embedded model in-process (transformers, continuous batching of 4), a queue of 4."""
    proc, url, log = start_serve("--batch-size", "4", "--max-queue", "4", "--api-key", API_KEY,
                                 "--max-body-bytes", "65536", "--threads", "2")
    try:
        yield url
    finally:
        text = stop_serve(proc, log)
        assert "Traceback" not in text, text[-3000:]


@pytest.fixture(scope="session")
def client(serve_url):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=f"{serve_url}/v1", api_key=API_KEY, max_retries=0, timeout=600)
