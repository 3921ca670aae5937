"""Notes for a person at a terminal: what is loading while nothing else shows (importing torch
alone takes up to a minute on a cold start, and a silent terminal reads as a hang). Only when
stderr is a terminal: logs, pipes and tests see the command's own output and nothing else."""

from __future__ import annotations

import sys


def note(text: str) -> None:
    if sys.stderr.isatty():
        print(text, file=sys.stderr, flush=True)
