"""Shared fixtures: the shipped pool, loaded once, and its step directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(autouse=True)
def _hub_offline(monkeypatch):
    """No test reaches for the hub (a benchmark the defaults name but nothing ships, GPQA)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def pool():
    from s1.curation.pool import load_pool

    return load_pool()


@pytest.fixture(scope="session")
def pool_dir(tmp_path_factory, pool):
    """The offline pool as a finished `pool` step directory (the input of `s1 curate STEP`)."""
    from s1.curation.pool import PoolConfig
    from s1.curation.steps import run_step

    out = tmp_path_factory.mktemp("curate") / "pool"
    run_step("pool", None, "source", PoolConfig(), out, progress=False, quiet=True)
    return out


@pytest.fixture(scope="session")
def s1_cli():
    return _s1_cli


def _s1_cli(*args, cwd=None, timeout=600, **popen):
    """Run `python -m s1.cli ARGS` with this checkout first on the path."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "s1.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, **popen)
