"""The curation report: report.md, a standalone report.html and PNGs, from a run's directory.

Sections: counts per stage (rows in / out, what each dropped and why), decontamination (flags
per benchmark, flags from boilerplate 8-grams only), the source mix, the domain histogram, the
trace-length and question-length distributions; the s1K reference beside ours wherever it has
the figure (its source mix and question lengths from the 893 shipped questions plus the 107
withheld GPQA rows, its domain counts from the paper's Table 5). Rendering is shared with
`s1 report`; files appear through a rename, never half-written.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from s1.curation.pool import load_reference
from s1.curation.steps import DATA_FILE, read_table
from s1.errors import UserError
from s1.pages import figure, save, write_pages

#: s1K rows that are GPQA questions (withheld from the shipped reference: counted, never shown).
S1K_GPQA_ROWS = 107
#: s1K's top domains, paper Table 5 (#questions); the other 27 domains hold 242.
S1K_TOP_DOMAINS = {
    "Geometry": 109, "Number theory": 98, "Combinatorics": 75, "Real functions": 43, "Biology": 41,
    "Complex functions": 32, "Quantum theory": 32, "Field theory": 28,
    "Calculus of variations": 28, "Difference equations": 24, "Electromagnetic theory": 23,
    "Group theory": 22, "Linear algebra": 22, "Probability theory": 20, "Algebraic systems": 19,
    "Mechanics": 19, "Thermodynamics": 19, "Differential equations": 18, "Computer science": 18,
    "Numerical analysis": 18, "Calculus": 17, "Algebraic structures": 17, "Astronomy": 16,
}

FAMILIES = (("AIME", "AIME"), ("NuminaMath", "NuminaMath"), ("Omni-MATH", "Omni-MATH"),
            ("OlympiadBench", "OlympiadBench"), ("jeebench", "JEEBench"), ("openaimath", "MATH"),
            ("TheoremQA", "TheoremQA"), ("xword", "xword"), ("stats_qual", "s1-prob"),
            ("OlympicArena", "OlympicArena"), ("SciEval", "SciEval"), ("agieval", "AGIEval"),
            ("quant", "s1-teasers"), ("gpqa", "GPQA"), ("gsm8k", "GSM8K"), ("usaco", "USACO"),
            ("livecodebench", "LiveCodeBench"))


def family(source_type: str | None) -> str:
    s = (source_type or "").lower()
    for needle, name in FAMILIES:
        if needle.lower() in s:
            return name
    return "/".join((source_type or "other").split("/")[:2])


def _bars(path: Path, title: str, ours: Counter, ref: Counter | None, top: int = 25) -> None:
    import numpy as np

    names = [n for n, _ in (ours + (ref or Counter())).most_common(top)]
    fig, ax = figure(7.2)
    x = np.arange(len(names))
    width = 0.4 if ref is not None else 0.8
    ax.barh(x - (width / 2 if ref is not None else 0), [ours.get(n, 0) for n in names], width,
            label="ours")
    if ref is not None:
        ax.barh(x + width / 2, [ref.get(n, 0) for n in names], width, label="s1K")
    ax.set_yticks(x, [n[:28] for n in names], fontsize=7)
    ax.invert_yaxis()
    save(fig, ax, path, title, "questions", "")


def _hist(path: Path, title: str, xlabel: str, series: dict[str, list[float]],
          log: bool = True, ylabel: str = "% of questions") -> None:
    """Overlaid histograms, each series in % of its own size; `log`: log-spaced bins of counts."""
    import numpy as np

    fig, ax = figure(7.2)
    keep = (lambda v: v > 0) if log else (lambda v: True)
    values = [v for vs in series.values() for v in vs if keep(v)]
    if values:
        bins = (np.logspace(np.log10(max(1, min(values))), np.log10(max(values) + 1), 30) if log
                else np.linspace(min(values), max(values) + 1e-9, 30))
        for label, vs in series.items():
            kept = [v for v in vs if keep(v)]
            if kept:
                ax.hist(kept, bins=bins, alpha=0.55, label=label,
                        weights=np.full(len(kept), 100.0 / len(vs)))
        if log:
            ax.set_xscale("log")
    save(fig, ax, path, title, xlabel, ylabel)


def _stage_rows(stages: list[dict]) -> list[list]:
    rows = []
    for s in stages:
        dropped = ", ".join(f"{k} {v}" for k, v in s["dropped"].items()) or "–"
        rows.append([s["step"], "–" if s["rows_in"] is None else s["rows_in"], s["rows_out"],
                     dropped, "yes" if s["cached"] else "no", f"{s['seconds']:.1f}"])
    return rows


def _audit_blocks(out: Path, stage: dict, tmp: Path) -> tuple[list, list[str]]:
    """The paraphrase audit: what was flagged, the strongest flags, and the cosines of flagged
    against cleared candidates (similarity alone cannot tell a paraphrase from a template)."""
    st, where = stage["stats"], out / stage["dir"]
    blocks = [("h2", "Paraphrase audit"),
              ("p", f"{st.get('flagged', 0)} questions flagged out of {stage['rows_in']} "
                    f"({st.get('candidates', 0)} candidate pairs; embedder {st.get('embedder')}, "
                    f"decision by {st.get('decide')}). Ranked pairs: {stage['dir']}/audit.md.")]
    path = where / "audit_candidates.jsonl"
    pairs = [json.loads(line) for line in path.open()] if path.exists() else []
    if not pairs:
        return blocks, []
    flagged = [p for p in pairs if p["flagged"]]
    if flagged:
        # the pairs themselves, to be read: equal answers are a lead, not a verdict (GPQA text
        # is withheld in the candidates file already)
        cut = lambda text, n=140: " ".join(str(text or "").split())[:n]  # noqa: E731
        blocks.append(("table", ["cosine", "benchmark item", "pool question", "benchmark question",
                                 "answers", "reason"],
                       [[f"{p['similarity']:.3f}", f"{p['benchmark']}:{p['benchmark_id']}",
                         cut(p["question"]), cut(p["benchmark_question"]),
                         f"{cut(p['answer'], 30)} / {cut(p['benchmark_answer'], 30)}", p["reason"]]
                        for p in flagged[:25]]))
    _hist(tmp / "audit_cosine.png", "Audit candidate pairs", "cosine to the benchmark item",
          {"flagged": [p["similarity"] for p in flagged],
           "cleared": [p["similarity"] for p in pairs if not p["flagged"]]},
          log=False, ylabel="% of the pairs in each group")
    return blocks + [("img", "audit_cosine.png", "audit cosines")], ["audit_cosine.png"]


def blocks_for(out: Path, tmp: Path) -> tuple[list, list[str]]:
    record = json.loads((out / "pipeline.json").read_text())
    stages = record["stages"]
    pngs: list[str] = []
    final = read_table(out / record["final"] / DATA_FILE)
    rows = final.to_list()
    ref = load_reference()
    blocks: list = [("h1", f"Curation report: {record['recipe']['name']}"),
                    ("p", f"{len(rows)} questions in the final set; "
                          f"{stages[0]['rows_out']} in the pool. "
                          + ("Complete." if record.get("complete") else
                             "**Incomplete**: " + ("; ".join(record.get("incomplete") or [])
                                                   or "the run stopped") +
                             " (rerun the recipe to ask the failed requests again)."))]
    blocks += [("h2", "Counts per stage"),
               ("table", ["step", "rows in", "rows out", "dropped (reason count)", "cached", "s"],
                _stage_rows(stages))]
    for s in stages:
        if s["step"] == "decontaminate":
            st = s["stats"]
            per = ", ".join(f"{k.split(':', 1)[1]} {v}" for k, v in st.items()
                            if k.startswith("flagged_by:")) or "none"
            blocks += [("h2", "Decontamination (word 8-grams)"),
                       ("p", f"Flagged: {st.get('flagged_by_benchmark', 0)} by a benchmark, "
                             f"{st.get('flagged_by_pool', 0)} by an earlier source (cumulative); "
                             f"per match: {per}. Flags from boilerplate 8-grams only: "
                             f"{st.get('boilerplate_only', 0)}. Every pair: "
                             f"{s['dir']}/flagged.jsonl.")]
            if st.get("missing_benchmarks"):
                blocks.append(("p", "**Not decontaminated against "
                                    f"{', '.join(st['missing_benchmarks'])}**: not available "
                                    "here (give it as decontaminate.files={NAME: PATH})."))
            if st.get("top_ngrams"):
                blocks.append(("table", ["8-gram behind the most flags", "flags"],
                               [[g, n] for g, n in st["top_ngrams"]]))
        if s["step"] == "near-dup":
            st = s["stats"]
            blocks += [("h2", "Near-duplicates (MinHash-LSH)"),
                       ("p", f"{st.get('clusters_in_pool', 0)} clusters of near-duplicates "
                             f"inside the pool ({st.get('questions_in_clusters', 0)} questions, "
                             f"the largest {st.get('largest_cluster', 0)}); "
                             f"{st.get('questions_near_benchmarks', 0)} questions near benchmark "
                             f"items; {s['dir']}/near_duplicates.jsonl.")]
        if s["step"] == "audit":
            section, figure = _audit_blocks(out, s, tmp)
            blocks += section
            pngs += figure
        if s["step"] == "traces":
            st = s["stats"]
            blocks += [("h2", "Teacher traces"),
                       ("p", f"Teacher {st.get('teacher', '?')}: {st.get('prompt_tokens', 0)} prompt "
                             f"and {st.get('completion_tokens', 0)} completion tokens, cost "
                             f"{st.get('cost', 0):g}; {st.get('failures', 0)} questions failed "
                             "(recorded in the step's drops, not silently lost; a rerun asks them "
                             f"again); {st.get('truncated', 0)} replies cut at max_tokens "
                             "(dropped as teacher-truncated unless keep_truncated).")]
        if s["step"] == "difficulty":
            st = s["stats"]
            solved = ", ".join(f"{k[len('solved_by_'):]} {v}" for k, v in st.items()
                               if k.startswith("solved_by_")) or "none"
            blocks += [("h2", "Difficulty"),
                       ("p", f"Dropped as too easy (solved by a solver): {solved}; "
                             f"{s['rows_out']} of {s['rows_in']} questions kept. "
                             + (f"Trace tokens: {st['trace_tokens_total']} in all, longest "
                                f"{st['trace_tokens_max']}. " if "trace_tokens_total" in st else "")
                             + (f"Rows without a reference answer (dropped): {st['no_reference']}. "
                                if st.get("no_reference") else "")
                             + (f"The teacher's own answer was right on {st['teacher_correct']} of "
                                f"{st['teacher_graded']} graded (teacher_correct)."
                                if "teacher_graded" in st else ""))]
        if s["step"] == "proxy-columns":
            blocks.append(("p", "Domains and trace lengths are PROXIES (source subject labels, "
                                "solution length in words), not the paper's MSC labels and teacher "
                                "traces."))
    ours_src = Counter(family(r.get("source_type")) for r in rows)
    ref_src = Counter(family(r["source_type"]) for r in ref)
    ref_src["GPQA"] += S1K_GPQA_ROWS
    _bars(tmp / "sources.png", "Source mix", ours_src, ref_src)
    pngs.append("sources.png")
    blocks += [("h2", "Source mix"), ("img", "sources.png", "source mix"),
               ("table", ["source", "ours", "s1K"],
                [[n, ours_src.get(n, 0), ref_src.get(n, 0)]
                 for n, _ in (ours_src + ref_src).most_common()])]
    if rows and "domain" in rows[0]:
        doms = Counter(str(r["domain"]) for r in rows)
        _bars(tmp / "domains.png", f"Domains ({len(doms)})", doms, Counter(S1K_TOP_DOMAINS))
        pngs.append("domains.png")
        blocks += [("h2", "Domains"), ("img", "domains.png", "domain histogram"),
                   ("p", f"{len(doms)} domains in ours; s1K: 51 MSC domains (paper Table 5, top "
                         "23 drawn; the other 27 hold 242 questions).")]
    length_col = next((c for c in ("trace_tokens", "trace_length") if rows and c in rows[0]), None)
    lengths = [float(r[length_col]) for r in rows if length_col and r.get(length_col) is not None]
    if lengths:
        unit = "tokens" if length_col == "trace_tokens" else "trace length"
        _hist(tmp / "trace_length.png", "Trace length", unit, {"ours": lengths})
        pngs.append("trace_length.png")
        lengths.sort()
        blocks += [("h2", "Trace length"), ("img", "trace_length.png", "trace length"),
                   ("p", f"median {lengths[len(lengths) // 2]:.0f}, p90 "
                         f"{lengths[int(0.9 * (len(lengths) - 1))]:.0f}, max {lengths[-1]:.0f}, "
                         f"total {sum(lengths):.0f}. s1K: 4.7M Qwen tokens in 1,000 traces, longest "
                         "9,109.")]
    _hist(tmp / "question_length.png", "Question length", "words",
          {"ours": [len(r["question"].split()) for r in rows],
           "s1K (893 shown)": [len(r["question"].split()) for r in ref]})
    pngs.append("question_length.png")
    blocks += [("h2", "Question length"), ("img", "question_length.png", "question length")]
    return blocks, pngs


def write_report(out: str | Path) -> list[Path]:
    out = Path(out)
    if not (out / "pipeline.json").exists():
        raise UserError(f"{out} holds no curation run (no pipeline.json); run `s1 curate run` first")
    return write_pages(out, lambda tmp: blocks_for(out, tmp), "s1 curation report")
