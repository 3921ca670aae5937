"""`output`: the curated set in the s1K schema, which `s1 train` reads as it is.

s1K's columns: `solution, question, cot_type, source_type, metadata, cot, thinking_trajectories
(a list of one string), attempt`. The trace and attempt come from the teacher (`traces` step:
`thinking_trajectories`, `attempt`); without a teacher, name other columns (the offline recipe trains on the
reference solution as the trace and the reference answer as the attempt, as `s1 train`'s
math-pool does). Rows without a trace are dropped and logged. `question_hash` and the selection
columns are kept after the s1K ones. The step directory's `data.parquet` is the set; `s1k.jsonl`
beside it holds the same rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from s1.curation.steps import Drops, StepOutput, step
from s1.errors import UserError

S1K_COLUMNS = ("solution", "question", "cot_type", "source_type", "metadata", "cot",
               "thinking_trajectories", "attempt")


@dataclass
class OutputConfig:
    """Which columns hold the trace and the attempt, and which extra columns to keep."""

    trace_column: str = "thinking_trajectories"   # the traces step's; a list of one str or a str
    attempt_column: str = "attempt"
    extra_columns: list = field(default_factory=lambda: ["question_hash", "domain", "domain_code",
                                                         "trace_tokens", "trace_length", "teacher",
                                                         "selection_rank"])

    def __post_init__(self):
        if not self.trace_column or not self.attempt_column:
            raise UserError("output.trace_column and output.attempt_column must name columns")


def s1k_rows(data, config: OutputConfig) -> tuple[list[dict], Drops]:
    for col in (config.trace_column, config.attempt_column):
        if col not in data.column_names:
            raise UserError(f"output needs the column {col!r} (the teacher's "
                            f"{'trace' if col == config.trace_column else 'attempt'}; run the "
                            f"traces step, or name another column with "
                            f"output.trace_column / output.attempt_column)")
    extras = [c for c in config.extra_columns if c in data.column_names]
    rows, drops = [], Drops()
    for row in data:
        trace = row[config.trace_column]
        if isinstance(trace, (list, tuple)):
            trace = "\n".join(str(t) for t in trace)
        if trace is None or not str(trace).strip():
            drops.add(row, "no-trace")
            continue
        out = {"solution": row.get("solution"), "question": row["question"],
               "cot_type": row.get("cot_type") or "math", "source_type": row.get("source_type"),
               "metadata": row.get("metadata") or "{}", "cot": None,
               "thinking_trajectories": [str(trace)],
               "attempt": "" if row[config.attempt_column] is None else str(row[config.attempt_column])}
        out.update({c: row[c] for c in extras})
        rows.append(out)
    return rows, drops


@step("output", OutputConfig, needs=("question", "source_type"))
def output(data, config: OutputConfig, ctx) -> StepOutput:
    """The set in the s1K schema (question / thinking_trajectories / attempt ...), Parquet and JSONL."""
    import datasets

    rows, drops = s1k_rows(data, config)
    if not rows:
        raise UserError("output: no row has a trace; nothing to write")
    features = datasets.Features({
        "solution": datasets.Value("string"), "question": datasets.Value("string"),
        "cot_type": datasets.Value("string"), "source_type": datasets.Value("string"),
        "metadata": datasets.Value("string"), "cot": datasets.Value("string"),
        "thinking_trajectories": datasets.Sequence(datasets.Value("string")),
        "attempt": datasets.Value("string")})
    table = datasets.Dataset.from_list(rows)
    table = table.cast(datasets.Features({**table.features, **features}))
    jsonl = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
    return StepOutput(table, drops, {"s1k.jsonl": jsonl}, {"rows": len(rows)})
