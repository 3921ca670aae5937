"""`s1 serve` as a user runs it: a subprocess on loopback, reached with the official openai client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")
API_KEY = "test-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(*args: str, ready_s: float = 300):
    """Start `s1 serve ARGS` on a free port; returns (process, base URL, log file)."""
    port = free_port()
    log = tempfile.NamedTemporaryFile("w+", prefix="s1_serve_", suffix=".log", delete=False)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "s1.cli", "serve", "--port", str(port), *args],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_s
    while True:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"s1 serve exited with {proc.returncode}:\n{log.read()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url, log
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"s1 serve did not become ready within {ready_s} s")
        time.sleep(0.3)


def stop_serve(proc, log) -> str:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.seek(0)
    text = log.read()
    log.close()
    os.unlink(log.name)
    return text


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
