"""The Hugging Face hub: is it there, asked once and quickly, before anything downloads.

Unreachable, huggingface_hub retries each file for up to a minute and logs every retry, so a
user offline would wait and read a screenful before the one line that matters. `unreachable()`
answers at once: from the offline flags (HF_HUB_OFFLINE and its kin), else from a connection to
the hub with a short timeout (once per process). When the hub cannot be reached it also switches
huggingface_hub, transformers and datasets to offline mode, so what is already in the local
cache still loads and nothing retries.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
from urllib.parse import urlparse

OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
#: Seconds the connection probe may take; a reachable hub answers in a fraction of it.
PROBE_TIMEOUT = 3.0


def offline_flag() -> str | None:
    """The offline flag the user set, if any."""
    for flag in OFFLINE_FLAGS:
        if os.environ.get(flag, "").strip().lower() in ("1", "true", "yes", "on"):
            return flag
    return None


def _endpoint() -> tuple[str, int]:
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


@functools.lru_cache(maxsize=1)
def _probe() -> bool:
    """Whether a TCP connection to the hub opens within PROBE_TIMEOUT. The name lookup runs in a
    thread too: a resolver with no network can hang far longer than the socket's timeout."""
    host, port = _endpoint()
    result: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT).close()
            result.append(True)
        except OSError:
            result.append(False)

    probe = threading.Thread(target=connect, daemon=True, name="s1-hub-probe")
    probe.start()
    probe.join(PROBE_TIMEOUT + 0.5)
    return bool(result and result[0])


def go_offline() -> None:
    """Offline mode for this process: cached files load, nothing is requested or retried."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    # The libraries read the flag when imported; one already imported is told directly.
    try:
        from huggingface_hub import constants
        constants.HF_HUB_OFFLINE = True
    except ImportError:
        pass
    try:
        import datasets.config
        datasets.config.HF_HUB_OFFLINE = True
        datasets.config.HF_DATASETS_OFFLINE = True
    except (ImportError, AttributeError):
        pass


def unreachable() -> str | None:
    """Why the hub cannot be used ("HF_HUB_OFFLINE is set", "huggingface.co cannot be
    reached"), or None when it can. Called before a download; offline it sets offline mode."""
    # huggingface_hub logs each retry of a failing request as a warning: one line is enough.
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    flag = offline_flag()
    if flag is not None:
        go_offline()
        return f"{flag} is set"
    if not _probe():
        go_offline()
        return f"{_endpoint()[0]} cannot be reached"
    return None


def cached(repo_id: str) -> bool:
    """Whether a model's config is in the local hub cache (asked without the network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except (ImportError, ValueError):   # not a valid repo id: nothing cached under it
        return False
