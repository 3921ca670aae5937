"""`s1 report`: Markdown, a standalone HTML page (plots embedded as base64) and PNGs from runs.

Sections: the runs (answer-cut and loop shares among them) and their diagnostics (grading
reasons, rejection tries, accuracy by Waits); per benchmark the scaling curve (accuracy vs
thinking tokens per question, log2 axis, Wilson 95% bars, one line per curve), the Control /
Scaling (with its bootstrap 95% interval) / Performance table, the matched-compute plot
(accuracy vs FLOPs per question, sequential vs parallel methods), thinking histograms per
budget, per-question thinking across budgets, the spread over ignore strings, per-question
outcomes, and (in the HTML page) each question's trace per run, opened with a click
(`drilldown.py`). Incomplete runs are listed and left out of the curves. Everything is computed from the
records on disk.

The page is built once as a list of blocks and rendered twice (Markdown, HTML), so the two never
disagree. Files are written into a temporary directory and renamed into place, so a failure
leaves no half-written report. A question never appears: the tables hold ids, gold answers and
extracted answers, and the HTML drill-down the model's text without its prompt; of GPQA runs
(which must stay out of anything that could be published), not even that.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from s1.errors import UserError
from s1.evaluation import drilldown
from s1.evaluation.aggregate import Curve, RunData, curves, find_runs, outcomes
from s1.evaluation.curves import incomplete_runs
from s1.evaluation.diagnostics import benchmark_blocks, run_blocks
from s1.evaluation.records import Record
from s1.pages import figure, render_html, render_markdown, save, write_pages  # noqa: F401 (re-exported)

PARALLEL = ("majority", "best-of-n", "weighted-majority")
MAX_QUESTION_ROWS = 200
# The scaling plot's bars are each point's own interval, while the points share their questions.
BARS = "bars: each point's own Wilson 95%; the points share questions"
BARS_NOTE = ("The bars are each point's own Wilson 95% interval, as if the points were drawn on "
             "different questions. They share their questions, so the difference between two "
             "points is surer than overlapping bars suggest: the paired comparison is Scaling's "
             "bootstrap interval below (or `s1 compare` for two runs).")


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}"


def _share(x: float | None) -> str:
    """A share of samples in percent; None means unknown (imported outputs), not "none"."""
    return "unknown" if x is None else _pct(x, 0)


def _num(x: float | None, fmt: str = "{:.1f}") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower() or "x"


# ---------------------------------------------------------------------------------------------
# plots


def _accuracy_axis(ax, highest: float) -> None:
    """0 at the bottom always; the top just above the highest value drawn (at least 10%), so a
    curve of zeros is not blown up into noise."""
    ax.set_ylim(-1, max(10.0, min(101.0, highest + 5)))


def _plot_scaling(path: Path, bench: str, cs: list[Curve], multi_model: bool) -> None:
    fig, ax = figure()
    for c in cs:
        pts = [p for p in c.points if p.thinking > 0]
        if not pts:
            continue
        ys = [100 * p.accuracy for p in pts]
        # Clamped: at 0% or 100% the interval's edge can sit a rounding error past the point.
        err = [[max(0.0, 100 * (p.accuracy - p.low)) for p in pts],
               [max(0.0, 100 * (p.high - p.accuracy)) for p in pts]]
        label = f"{c.name} · {c.model}" if multi_model else c.name
        ax.errorbar([p.thinking for p in pts], ys, yerr=err, marker="o", capsize=3, label=label)
    ax.set_xscale("log", base=2)
    _accuracy_axis(ax, max((100 * p.high for c in cs for p in c.points), default=0.0))
    save(fig, ax, path, f"{bench}: test-time scaling\n{BARS}",
         "average thinking tokens per question (log2)", "accuracy (%)")


def _plot_compute(path: Path, bench: str, cs: list[Curve], use_flops: bool,
                  multi_model: bool) -> None:
    fig, ax = figure()
    for c in cs:
        pts = [p for p in c.points if (p.flops if use_flops else p.tokens)]
        if not pts:
            continue
        parallel = c.label.startswith(("majority", "best-of", "weighted majority"))
        label = (f"{c.name} ({'parallel' if parallel else 'sequential'})"
                 + (f" · {c.model}" if multi_model else ""))
        ax.plot([p.flops if use_flops else p.tokens for p in pts],
                [100 * p.accuracy for p in pts], marker="s" if parallel else "o",
                linestyle="--" if parallel else "-", label=label)
    ax.set_xscale("log")
    _accuracy_axis(ax, max((100 * p.accuracy for c in cs for p in c.points), default=0.0))
    save(fig, ax, path, f"{bench}: accuracy at matched compute",
         "estimated FLOPs per question" if use_flops else "tokens per question", "accuracy (%)")


# ---------------------------------------------------------------------------------------------
# the page as blocks


def _how_made(card: dict) -> str:
    world = card.get("world")
    data = f"{card.get('data')}" + (f" ({', '.join(f'{k}={v}' for k, v in world.items())})"
                                    if world else "")
    made = (f"`s1 train --recipe {card.get('recipe')}`: {card.get('steps')} steps on "
            f"{card.get('examples') or 'all'} examples of {data}, seed {card.get('seed')}")
    if card.get("train_seconds"):
        made += f", {card['train_seconds'] / 60:.1f} min"
    if card.get("last_loss") is not None:
        made += f", last loss {card['last_loss']:.3f}"
    return made


def _blocks(runs: list[RunData], cs: list[Curve], tmp: Path) -> tuple[list, list[str]]:
    blocks: list[tuple] = [("h1", "s1 evaluation report")]
    pngs: list[str] = []
    summaries = [r.summary for r in runs]

    cards = {r.manifest.get("config", {}).get("model"): r.manifest.get("model_card")
             for r in runs if r.manifest.get("model_card")}
    if cards:
        blocks.append(("h2", "Models"))
        blocks.append(("table", ["model", "what it is", "how it was made"],
                       [[name, str(c.get("model")), _how_made(c)] for name, c in cards.items()]))

    blocks.append(("h2", "Runs"))
    rows = []
    for s in summaries:
        if s.empty:
            rows.append([s.name] + ["–"] * 14 + [_pct(s.error_share, 0), "no graded records"])
            continue
        c = s.compute
        rows.append([s.name, s.benchmark, s.model, s.engine, str(s.seed),
                     f"{s.questions}×{s.samples_per_question}",
                     f"{_pct(s.accuracy)} [{_pct(s.wilson_low)}, {_pct(s.wilson_high)}]",
                     _num(s.thinking_per_question, "{:.0f}"),
                     f"{s.thinking['median']:.0f} / {s.thinking['p90']:.0f} / "
                     f"{s.thinking['max']:.0f}",
                     _num(s.waits_mean, "{:.2f}"), _share(s.forced_end_share),
                     _share(s.answer_cut_share), _share(s.context_full_share),
                     _share(s.loop_share),
                     _num(c["flops"], "{:.3g}") if c["flops"] else str(c["generated_tokens"]),
                     _pct(s.error_share, 0),
                     "yes" if s.complete else f"no ({s.questions}/{s.expected_questions})"])
    blocks.append(("table", ["run", "benchmark", "model", "engine", "seed", "questions×samples",
                             "accuracy % [Wilson 95%]", "thinking tok/q",
                             "thinking per sample: median / p90 / max", "Waits/sample",
                             "forced end %", "answer cut %", "thinking filled context %",
                             "loops %",
                             "FLOPs total (or tokens)", "engine errors %", "complete"], rows))
    blocks.append(("p", "forced end: samples whose thinking was ended at its cap; answer cut: "
                        "samples whose answer ran into the answer cap (or the context) instead "
                        "of ending; thinking filled context: samples whose thinking used the "
                        "whole context (no room left to force an end or answer); loops: samples "
                        "where the loop guard saw a repeated n-gram in the thinking; unknown: "
                        "imported outputs, whose generation was not observed; engine errors: samples the engine "
                        "failed (a server error, a prompt over the context), not graded and not "
                        "in the accuracy: the run stays incomplete until a re-run asks them "
                        "again."))
    left_out = incomplete_runs(runs)
    if left_out:
        blocks.append(("p", f"Incomplete, left out of the curves: {', '.join(left_out)} "
                            "(re-run the same command to finish them)."))
    multi = [s for s in summaries if s.at_k]
    if multi:
        blocks.append(("h3", "Several samples per question"))
        rows = [[s.name, k, _pct(a["pass"]), _pct(a["cov"]), _pct(a["prediction"]),
                 _num(a["thinking_per_question"], "{:.0f}")]
                for s in multi for k, a in s.at_k.items()]
        blocks.append(("table", ["run", "k", "pass@k %", "cov@k %", "maj@k / best-of-k %",
                                 "thinking tok/q"], rows))

    diagnostics = run_blocks(runs)
    if diagnostics:
        blocks.append(("h2", "Diagnostics"))
        blocks.extend(diagnostics)

    benches = sorted({c.benchmark for c in cs})
    for bench in benches:
        bc = [c for c in cs if c.benchmark == bench]
        multi_model = len({c.model for c in bc}) > 1
        blocks.append(("h2", f"{bench}"))
        name = f"scaling-{_slug(bench)}.png"
        _plot_scaling(tmp / name, bench, bc, multi_model)
        pngs.append(name)
        blocks.append(("img", name, f"{bench} scaling curve"))
        blocks.append(("p", BARS_NOTE))
        blocks.append(("h3", "Control, Scaling, Performance (paper §3.2)"))
        blocks.append(("table", ["method", "model", "points", "Control % (per point)",
                                 "Control % (per sample)",
                                 "Scaling, paper: mean pairwise slope (pp per doubling) "
                                 "[bootstrap 95%]",
                                 "least-squares slope (pp per doubling) [bootstrap 95%]",
                                 "Scaling (pp per 1k tokens) [bootstrap 95%]",
                                 "pairs < 0.1 doublings apart", "Performance %"],
                       [[c.name, c.model, str(len(c.points)), _pct(c.control, 0),
                         _pct(c.control_per_sample, 0),
                         _interval(c.scaling_log2, c.scaling_log2_low, c.scaling_log2_high),
                         _interval(c.scaling_log2_fit, c.scaling_log2_fit_low,
                                   c.scaling_log2_fit_high),
                         _interval(c.scaling, c.scaling_low, c.scaling_high, 1000),
                         "; ".join(" ~ ".join(pair) for pair in c.near_ties) or "none",
                         _num(c.performance)] for c in bc]))
        blocks.append(("p", "Control per point (the paper's): share of points whose mean "
                            "thinking tokens stay within the bound they asked for (points without "
                            "a bound are left out); per sample: share of the samples that do, "
                            "which a mean inside the bound can hide. Scaling "
                            "(the paper's): mean slope over all pairs of points, with a 95% "
                            "bootstrap interval resampling questions (the same draw for every "
                            "point): an interval that spans 0 is a slope noise could give. Two "
                            "points at almost the same thinking (a cap the model never reaches) "
                            "make one pair's slope noise over a tiny step, which can dominate that "
                            "mean: such pairs are listed, and the least-squares slope beside it "
                            "is not swung by them. Where the two disagree, trust the "
                            "least-squares slope. Performance: best accuracy."))
        blocks.append(("table", ["method", "point", "thinking tok/q", "accuracy % (mean ± sd "
                                 "over seeds)", "Wilson 95%", "bound", "FLOPs/q"],
                       [[c.name, p.name, f"{p.thinking:.0f}",
                         f"{_pct(p.accuracy)}" + (f" ± {_pct(p.sd)}" if p.seeds > 1 else ""),
                         f"[{_pct(p.low)}, {_pct(p.high)}]",
                         "–" if p.a_max is None else str(p.a_max), _num(p.flops, "{:.3g}")]
                        for c in bc for p in c.points]))
        use_flops = all(p.flops for c in bc for p in c.points)
        name = f"compute-{_slug(bench)}.png"
        _plot_compute(tmp / name, bench, bc, use_flops, multi_model)
        pngs.append(name)
        blocks.append(("h3", "Matched compute: sequential vs parallel"))
        blocks.append(("img", name, f"{bench} accuracy against compute"))
        if not use_flops:
            blocks.append(("p", "FLOPs are unknown for some runs (give --model-params to s1 eval), "
                                "so compute is counted in tokens."))

        more, images = benchmark_blocks(bench, runs, bc, tmp, _slug(bench))
        blocks.extend(more)
        pngs.extend(images)

        blocks.append(("h3", "Per-question outcomes"))
        bruns = [r for r in runs if r.config["benchmark"]["name"] == bench and r.records]
        outs = {r.name: outcomes(r) for r in bruns}
        ids: list[str] = []
        for r in bruns:
            for rec in r.records:
                if rec.id not in ids:
                    ids.append(rec.id)
        gold = {rec.id: rec.gold for r in bruns for rec in r.records}
        rows = []
        for q in ids[:MAX_QUESTION_ROWS]:
            row = [q, str(gold[q])]
            for r in bruns:
                o = outs[r.name].get(q)
                row.append("·" if o is None else
                           ("✓ " if o["correct"] else "✗ ") + _short(o["extracted"]))
            rows.append(row)
        blocks.append(("table", ["question", "gold"] + [r.name for r in bruns], rows))
        if len(ids) > MAX_QUESTION_ROWS:
            blocks.append(("p", f"First {MAX_QUESTION_ROWS} of {len(ids)} questions; every "
                                "record is in the runs' records.jsonl."))
        blocks.append(("h3", "Traces"))
        blocks.append(_traces(bench, bruns, ids[:MAX_QUESTION_ROWS], gold))
    return blocks, pngs


def _traces(bench: str, bruns: list[RunData], ids: list[str], gold: dict) -> tuple:
    """The drill-down block: every question's first sample in each run, in the HTML page."""
    from s1.evaluation.runs import is_gpqa

    first: dict[str, dict[str, Record]] = {}
    for r in bruns:
        mine = first.setdefault(r.name, {})
        for rec in r.records:
            if rec.id not in mine or rec.sample < mine[rec.id].sample:
                mine[rec.id] = rec
    strings = {r.name: r.config["setting"].get("budget", {}).get("ignore_strings") or ["Wait"]
               for r in bruns}
    parts = [f"<p>{drilldown.LEGEND}</p>"]
    for q in ids:
        rows = [(r.name, first[r.name].get(q), strings[r.name], r.setting.samples) for r in bruns]
        parts.append(drilldown.question_block(q, gold[q], rows, is_gpqa(bench)))
    return ("html", "\n".join(parts),
            "Each question's trace per run, with its Waits, forced end and cuts marked: open "
            "report.html and click a question.", drilldown.CSS)


def _interval(value: float | None, low: float | None, high: float | None,
              scale: float = 1.0) -> str:
    if value is None:
        return "–"
    text = f"{scale * value:.2f}"
    return text if low is None else f"{text} [{scale * low:.2f}, {scale * high:.2f}]"


def _short(extracted: str | None, width: int = 24) -> str:
    if extracted is None:
        return "(none)"
    text = " ".join(str(extracted).split())
    return text if len(text) <= width else text[:width - 1] + "…"


# ---------------------------------------------------------------------------------------------
# rendering


def write_report(dirs: Sequence[str], out: str | None = None) -> list[Path]:
    """Write report.md, report.html and the PNGs; returns their paths."""
    if not dirs:
        raise UserError("give at least one run or sweep directory")
    runs = find_runs(dirs)
    if not any(r.records for r in runs):
        raise UserError(f"the runs under {', '.join(dirs)} hold no records yet")
    out_dir = Path(out) if out else Path(dirs[0])
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    cs = curves(runs)
    return write_pages(out_dir, lambda tmp: _blocks(runs, cs, tmp), "s1 evaluation report")
