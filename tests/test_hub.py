"""`s1.hub`: whether the hub can be used is answered at once, from the flags or a short probe."""

import socket
import time

import pytest
from huggingface_hub import constants

from s1 import hub


@pytest.fixture
def fresh_probe(monkeypatch):
    # unreachable() switches the process to offline mode: each test gets it restored
    for flag in hub.OFFLINE_FLAGS:
        monkeypatch.delenv(flag, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", constants.HF_HUB_OFFLINE)
    hub._probe.cache_clear()
    yield
    hub._probe.cache_clear()


def test_a_closed_port_is_offline_at_once_and_switches_to_offline_mode(fresh_probe, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    start = time.monotonic()
    assert hub.unreachable() == "127.0.0.1 cannot be reached"
    assert time.monotonic() - start < hub.PROBE_TIMEOUT + 1
    assert constants.HF_HUB_OFFLINE is True


def test_a_listening_hub_is_reachable(fresh_probe, monkeypatch):
    server = socket.create_server(("127.0.0.1", 0))
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert hub.unreachable() is None
    finally:
        server.close()


def test_the_offline_flags_answer_without_a_probe(fresh_probe, monkeypatch):
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert hub.unreachable() == "TRANSFORMERS_OFFLINE is set"
    assert hub._probe.cache_info().currsize == 0


def test_nothing_is_cached_under_an_unknown_id(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert not hub.cached("foo-org/no-such-model")
    assert not hub.cached("not a repo id")
