"""`proxy-columns`: a domain and a trace length read from the data itself, for runs without models.

Selection needs a domain and a trace length per question. In the paper they come from an LLM
(MSC domain) and a teacher trace (its length in Qwen tokens): the `domains` and `traces` /
`difficulty` steps. Without models, this step derives stand-ins from what the sources already
say: the domain is the source's own subject label (MATH `type`, the second level of an Omni-MATH
domain path, TheoremQA `field`, OlympiadBench `subfield`, the AGIEval task, else the source family),
and the trace length is the length of the reference solution in words. They are proxies: the
report says so, and a recipe with model steps replaces this step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from s1.curation.steps import StepOutput, column, step
from s1.errors import UserError


@dataclass
class ProxyConfig:
    """Where the stand-in columns come from, and what they are called."""

    domain_column: str = "domain"
    length_column: str = "trace_length"
    length_from: str = "solution"      # the column whose length stands in for the trace's
    unit: str = "words"                # words or chars

    def __post_init__(self):
        if self.unit not in ("words", "chars"):
            raise UserError("proxy-columns.unit must be words or chars")


def domain_of(source_type: str, metadata: str | None) -> str:
    try:
        meta = json.loads(metadata) if metadata else {}
    except ValueError:
        meta = {}
    if not isinstance(meta, dict):
        meta = {}
    paths = meta.get("domain")
    if isinstance(paths, list) and paths:
        parts = [p.strip() for p in str(paths[0]).split("->")]
        return parts[1] if len(parts) > 1 else parts[0]
    # TheoremQA's `field` (Math, Physics, EECS, Finance) before its 30-odd subfields: uniform
    # domain sampling over many tiny subfields would fill half the set with TheoremQA
    for key in ("type", "subject", "field", "subfield"):
        if meta.get(key):
            return str(meta[key])
    if meta.get("task"):
        return f"AGIEval {meta['task']}"
    return "/".join((source_type or "unknown").split("/")[:2])


@step("proxy-columns", ProxyConfig, needs=("source_type", "metadata"), rowwise=True, version=2)
def proxy_columns(data, config: ProxyConfig, ctx) -> StepOutput:
    """Stand-in domain (the source's subject label) and trace length (solution length), for runs without models."""
    if config.length_from not in data.column_names:
        raise UserError(f"proxy-columns.length_from names {config.length_from!r}, which the input "
                        f"does not have (columns: {', '.join(data.column_names)})")
    domains = [domain_of(s, m) for s, m in zip(column(data, "source_type"),
                                               column(data, "metadata"))]
    texts = column(data, config.length_from)
    lengths = [0 if t is None else (len(str(t).split()) if config.unit == "words" else len(str(t)))
               for t in texts]
    out = data
    for name, values in ((config.domain_column, domains), (config.length_column, lengths)):
        if name in out.column_names:
            out = out.remove_columns(name)
        out = out.add_column(name, values)
    return StepOutput(out)
