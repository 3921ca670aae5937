"""Curation: from a raw pool of questions to an s1K-style training set (paper §2).

One module per step, each a function `Dataset -> Dataset` registered under a name (the contract
is in `s1.curation.steps`); `s1 curate STEP IN --out OUT` runs one, `s1 curate run --recipe
configs/curate-*.yaml` runs them in order, cached and resumable.
"""

from __future__ import annotations

import importlib

#: Modules that register steps, imported on first use: the data-only steps, then the model-driven
#: ones (`audit`: paraphrase-level contamination audit, `traces`: teacher traces, `difficulty`:
#: solver models + trace length, `domains`: MSC classification; their shared plumbing is
#: `s1.curation.modelsteps`). Torch / llama.cpp load only when a model step runs.
STEP_MODULES = [
    "s1.curation.pool",
    "s1.curation.decontaminate",
    "s1.curation.dedup",
    "s1.curation.quality",
    "s1.curation.proxies",
    "s1.curation.select",
    "s1.curation.output",
    "s1.curation.audit",
    "s1.curation.traces",
    "s1.curation.difficulty",
    "s1.curation.domains",
]


def load_steps() -> None:
    for name in STEP_MODULES:
        importlib.import_module(name)
