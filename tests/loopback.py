"""Real servers on loopback for the tests: start a process on a free port, wait until it answers,
stop it and hand back its log; a relay in front of one that fails chosen completions (`Flaky`).
llama.cpp's OpenMP threads wait passively here: spinning threads make a shared CI machine
10-20x slower for every other process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], port: int, ready_path: str, name: str, ready_s: float = 300):
    """Run `python ARGS` with this checkout first on the path; return (process, base URL, log)
    once GET ready_path answers 200. A process that exits or never gets ready fails the test
    with the tail of its log."""
    log = tempfile.NamedTemporaryFile("w+", prefix=f"{name.replace(' ', '_')}_", suffix=".log",
                                      delete=False)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    proc = subprocess.Popen([sys.executable, *args], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_s
    while True:
        if proc.poll() is not None:
            text = stop(proc, log)
            pytest.fail(f"{name} exited with {proc.returncode}:\n{text[-3000:]}")
        try:
            if httpx.get(url + ready_path, timeout=2).status_code == 200:
                return proc, url, log
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            text = stop(proc, log)
            pytest.fail(f"{name} did not become ready within {ready_s} s:\n{text[-3000:]}")
        time.sleep(0.3)


def stop(proc, log) -> str:
    """Stop the process (terminate, then kill) and return its log, which is deleted."""
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


class JsonHandler(BaseHTTPRequestHandler):
    """A fake server's request handler: JSON replies, no access log."""

    def _send(self, code, data, headers=None):
        raw = json.dumps(data).encode()
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


class Flaky:
    """A real HTTP server on loopback that fails the first `failures` completions with
    `status`, then forwards to `upstream`."""

    def __init__(self, upstream: str, failures: int, status: int = 503,
                 headers: dict | None = None):
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _relay(self, method):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if method == "POST" and self.path.endswith("/completions"):
                    outer.calls += 1
                    if outer.calls <= failures:
                        msg = b'{"error": {"message": "busy, try later"}}'
                        self.send_response(status)
                        for k, v in (headers or {}).items():
                            self.send_header(k, v)
                        self.send_header("Content-Length", str(len(msg)))
                        self.end_headers()
                        self.wfile.write(msg)
                        return
                r = httpx.request(method, upstream + self.path, content=body or None,
                                  headers={"content-type": "application/json"}, timeout=120)
                self.send_response(r.status_code)
                self.send_header("Content-Type", r.headers.get("content-type", "application/json"))
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            def do_GET(self):
                self._relay("GET")

            def do_POST(self):
                self._relay("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
