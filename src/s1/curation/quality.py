"""Quality filter: the rules of s1's `data/filter.ipynb` (paper §2.3), each counted.

1. missing fields: a required column is None or blank (the notebook drops NAs over every
   featurised column, which also removes solution-less items such as USACO);
2. `[asy]` (Asymptote figure code) unless the source is AIME (`'AIME' in source_type`);
3. `![Image]` (a reference to an image that is not there);
4. question numbering `p1.` ... `p999.` (the notebook tests `f"p{i}." in q` for i in 1..999;
   one regex here, same answers);
5. bold-wrapped tokens with a digit on the line: the notebook's regex
   `\\*\\*(?=.*\\d)[^\\s\\]]*\\*\\*`, kept verbatim.

A row is dropped by the first rule it fails, and `stats` counts every rule a row fails, so the
report shows both. The notebook went 54,116 -> 51,607 with rules 2-5.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from s1.curation.steps import Drops, StepOutput, column, step
from s1.errors import UserError

_NUMBERING = re.compile(r"p[1-9]\d{0,2}\.")      # == any(f"p{i}." in q for i in 1..999)
_BOLD = re.compile(r"\*\*(?=.*\d)[^\s\]]*\*\*")   # the notebook's pattern, verbatim

RULES = ("missing", "asy", "image", "numbering", "bold")


@dataclass
class QualityConfig:
    """Which of the paper's rules apply, and which columns must be present."""

    required: list = field(default_factory=lambda: ["question", "solution"])
    asy: bool = True               # drop `[asy]` outside AIME
    image: bool = True             # drop `![Image]`
    numbering: bool = True         # drop `p1.`-style numbering
    bold: bool = True              # drop the bold-number pattern
    min_question_chars: int = 1

    def __post_init__(self):
        if not isinstance(self.required, list) or not all(isinstance(c, str) for c in self.required):
            raise UserError("quality.required must be a list of column names")
        if self.min_question_chars < 0:
            raise UserError("quality.min_question_chars must be >= 0")


def failures(row: dict, config: QualityConfig) -> list[tuple[str, str]]:
    """Every rule this row fails, as (rule, detail), in RULES order."""
    out = []
    missing = [c for c in config.required if row.get(c) is None or not str(row.get(c)).strip()]
    q = row.get("question") or ""
    if len(q.strip()) < config.min_question_chars and "question" not in missing:
        missing.append("question")
    if missing:
        out.append(("missing", ",".join(missing)))
    if config.asy and "[asy]" in q and "AIME" not in (row.get("source_type") or ""):
        out.append(("asy", ""))
    if config.image and "![Image]" in q:
        out.append(("image", ""))
    if config.numbering:
        m = _NUMBERING.search(q)
        if m:
            out.append(("numbering", m.group(0)))
    if config.bold:
        m = _BOLD.search(q)
        if m:
            out.append(("bold", m.group(0)[:40]))
    return out


@step("quality", QualityConfig, needs=("question", "source_type", "question_hash"), rowwise=True,
      shard_rows=2000)
def quality(data, config: QualityConfig, ctx) -> StepOutput:
    """The paper's quality rules: missing fields, Asymptote outside AIME, image refs, p1. numbering, bold numbers."""
    for c in config.required:
        if c not in data.column_names:
            raise UserError(f"quality.required names {c!r}, which the input does not have "
                            f"(columns: {', '.join(data.column_names)})")
    keep, drops, counts = [], Drops(), {f"fails_{r}": 0 for r in RULES}
    names = list(dict.fromkeys(["question", "source_type", "question_hash", *config.required]))
    cols = [column(data, c) for c in names]
    for i, values in enumerate(zip(*cols)):
        row = dict(zip(names, values))
        failed = failures(row, config)
        for rule, _ in failed:
            counts[f"fails_{rule}"] += 1
        if failed:
            drops.add(row, failed[0][0], failed[0][1])
        else:
            keep.append(i)
    return StepOutput(data.select(keep), drops, stats=counts)
