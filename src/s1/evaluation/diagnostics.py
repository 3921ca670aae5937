"""The report's diagnostics: what the runs record beyond accuracy, shown so a reader can judge
the numbers (issue 7.17).

- grading reasons per run (why answers scored as they did);
- rejection sampling's tries and failures;
- accuracy against the number of Waits appended (does forcing help or hurt?);
- the thinking-length histogram of each budget, and each question's thinking across budgets;
- the spread of the scaling curve over ignore strings (the review's L1: mean ± sd over "Wait",
  "Hmm", ...).

Answer-cut and loop shares are columns of the report's runs table. Every block is built from
the summaries and curves, which come from the records on disk; no question text appears.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from s1.evaluation.curves import Curve, ignore_string_spread, point_config

if TYPE_CHECKING:
    from s1.evaluation.aggregate import RunData

MAX_QUESTION_ROWS = 200
MAX_WAIT_COLUMNS = 6     # 0..4 Waits, then "5+"


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}"


def _pm(pair: tuple[float | None, float | None], fmt: str = "{:.2f}") -> str:
    mean, sd = pair
    if mean is None:
        return "–"
    return fmt.format(mean) + ("" if sd is None or sd != sd else " ± " + fmt.format(sd))


def run_blocks(runs: list["RunData"]) -> list[tuple]:
    """Diagnostics of single runs: grading reasons, rejection tries, accuracy by Waits."""
    summaries = [r.summary for r in runs if not r.summary.empty]
    blocks: list[tuple] = []
    reasons = sorted({k for s in summaries for k in s.grading_reasons})
    if reasons:
        blocks.append(("h3", "Grading reasons"))
        blocks.append(("table", ["run"] + reasons,
                       [[s.name] + [str(s.grading_reasons.get(k, 0)) for k in reasons]
                        for s in summaries]))
        blocks.append(("p", "How each sample's answer was graded (one count per sample): a "
                            "reason such as no_answer or judge tells how much rests on what."))
    rejection = [s for s in summaries if s.tries_mean is not None]
    if rejection:
        blocks.append(("h3", "Rejection sampling: tries and failures"))
        blocks.append(("table", ["run", "tries mean", "tries max", "failed questions",
                                 "a failure scores"],
                       [[s.name, f"{s.tries_mean:.1f}", str(s.tries_max),
                         f"{s.rejection_failed}/{s.questions * s.samples_per_question}",
                         "wrong (paper)" if s.rejection_on_failure == "wrong"
                         else "its last, cut sample"] for s in rejection]))
    waited = [s for s in summaries if s.by_waits and set(s.by_waits) != {"0"}]
    if waited:
        blocks.append(("h3", "Accuracy against the number of Waits"))
        cols = [str(i) for i in range(MAX_WAIT_COLUMNS - 1)] + [f"{MAX_WAIT_COLUMNS - 1}+"]
        rows = []
        for s in waited:
            cells = {c: [0, 0] for c in cols}
            for w, (correct, n) in s.by_waits.items():
                c = cols[min(int(w), MAX_WAIT_COLUMNS - 1)]
                cells[c][0] += correct
                cells[c][1] += n
            rows.append([s.name] + [f"{100 * k / n:.0f}% ({n})" if n else "·"
                                    for k, n in cells.values()])
        blocks.append(("table", ["run"] + [f"{c} Waits: acc (samples)" for c in cols], rows))
        blocks.append(("p", "Samples grouped by how many ignore strings were appended; a "
                            "falling row means extra thinking hurt (or the model looped)."))
    return blocks


def benchmark_blocks(bench: str, runs: list["RunData"], cs: list[Curve], tmp: Path,
                     slug: str) -> tuple[list[tuple], list[str]]:
    """Diagnostics of one benchmark's curves: thinking histograms, per-question thinking, the
    spread over ignore strings."""
    blocks: list[tuple] = []
    pngs: list[str] = []
    bruns = [r for r in runs if r.records and r.config["benchmark"]["name"] == bench]
    if bruns:
        name = f"thinking-{slug}.png"
        _plot_histograms(tmp / name, bench, bruns)
        pngs.append(name)
        blocks.append(("h3", "Thinking length per budget"))
        blocks.append(("img", name, f"{bench} thinking-token histograms"))
    for c in cs:
        pts = [p for p in c.points if p.thinking_by_question]
        if len(pts) < 2 or "@" in pts[0].name:
            continue   # one point, or a parallel method's k (its thinking is a sum of samples)
        ids = sorted(set().union(*(p.thinking_by_question for p in pts)))
        blocks.append(("h3", f"Thinking per question across budgets: {c.name}"))
        rows = []
        for q in ids[:MAX_QUESTION_ROWS]:
            row = [q]
            for p in pts:
                t, score = p.thinking_by_question.get(q), p.scores.get(q)
                mark = "" if score is None else ("✓" if score == 1 else "✗" if score == 0
                                                 else f"{100 * score:.0f}%")
                row.append("·" if t is None else f"{t:.0f} {mark}".strip())
            rows.append(row)
        blocks.append(("table", ["question"] + [p.name for p in pts], rows))
        if len(ids) > MAX_QUESTION_ROWS:
            blocks.append(("p", f"First {MAX_QUESTION_ROWS} of {len(ids)} questions."))
    spreads = ignore_string_spread(cs)
    if spreads:
        blocks.append(("h3", "Variance across ignore strings"))
        rows = []
        for s in spreads:
            rows.append([s["label"], s["model"], ", ".join(s["strings"]),
                         _pm(s["scaling_log2"]), _pm(s["scaling"]), _pm(s["performance"], "{:.1f}")]
                        + ["; ".join(f"{n}: {_pm(v, '{:.1f}')}" for n, v in s["points"].items())])
        blocks.append(("table", ["method", "model", "ignore strings",
                                 "Scaling pp/doubling (mean ± sd)", "Scaling pp/1k tokens",
                                 "Performance %", "accuracy % per budget"], rows))
        blocks.append(("p", "One scaling curve per continuation string, summarised by mean ± sd "
                            "over the strings: how much of the curve is the string's doing."))
    return blocks, pngs


def _plot_histograms(path: Path, bench: str, runs: list["RunData"]) -> None:
    import numpy as np

    from s1.pages import figure, save

    groups: dict[str, tuple[str, list[int]]] = {}
    for r in runs:
        key = repr(sorted(point_config(r).items(), key=lambda kv: kv[0]))
        label, values = groups.setdefault(key, (r.setting.name, []))
        values.extend(rec.thinking_tokens for rec in r.records)
    labels = [label for label, _ in groups.values()]
    dupes = {lab for lab in labels if labels.count(lab) > 1}
    top = max((max(v) for _, v in groups.values() if v), default=1)
    bins = np.linspace(0, max(1, top), 31)
    fig, ax = figure()
    for i, (label, values) in enumerate(groups.values()):
        ax.hist(values, bins=bins, histtype="step", linewidth=1.4,
                label=f"{label} #{i}" if label in dupes else label)
    save(fig, ax, path, f"{bench}: thinking length per budget", "thinking tokens per sample",
         "samples", legend_size=7)
