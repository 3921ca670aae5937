"""The report's drill-down: click a question to read its trace at every budget, with each forced
"Wait", the forced end and a cut answer marked, and the grade with its reason.

Plain HTML `<details>` elements: they open on a click with no script, so the page stays one
self-contained file that works offline. The Markdown report gets one line pointing to it.

Where a Wait went is known in tokens (`Event.at`); the engines also record where it starts in
the text (`meta["wait_chars"]`). Traces without it (older runs, imported outputs) are marked
exactly when the tokenizer has one character per token (the miniature model's), and otherwise
at the occurrence of the ignore string nearest to the same share of the text, which the mark's
title says. GPQA traces are never shown: their thinking may quote the question.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Sequence

from s1.evaluation.records import Record

#: Longer texts show their first and last half of this many characters, the middle elided.
MAX_TEXT_CHARS = 12_000
FINISH = {"end": "ended by the model", "max": "end forced at the cap",
          "loop": "end forced by the loop guard", "context": "filled the context",
          "none": "no thinking", "": "not observed"}
ANSWER_FINISH = {"stop": "ended by the model", "length": "cut at the answer cap",
                 "error": "engine error", "": "not observed"}

CSS = (".s1-q{border:1px solid #ddd;border-radius:4px;margin:4px 0;padding:2px 8px}"
       ".s1-q>summary{cursor:pointer;font-size:14px;padding:2px 0}"
       ".s1-run{border-top:1px solid #eee;padding:6px 0}.s1-head{font-size:13px;color:#333}"
       ".s1-text{white-space:pre-wrap;background:#fafafa;border:1px solid #eee;padding:6px;"
       "font-size:12px;max-height:28em;overflow:auto;margin:4px 0}"
       ".s1-wait{background:#ffe08a;font-weight:bold}.s1-mark{font-size:11px;padding:0 4px;"
       "border-radius:3px;margin:0 2px}.s1-forced{background:#f8c4c4}.s1-cut{background:#f8c4c4}"
       ".s1-delim{background:#d8e4f8}.s1-elided{color:#888;font-style:italic}"
       ".s1-ok{color:#1a7f37;font-weight:bold}.s1-bad{color:#c0392b;font-weight:bold}")


_WHITESPACE = re.compile(r"\s*")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    title: str


def wait_spans(thinking: str, thinking_tokens: int, events: Sequence[dict],
               ignore_strings: Sequence[str], chars: Sequence[int] | None = None) -> list[Span]:
    """Where each forced Wait stands in the thinking text (see the module's note); `chars`: the
    engine's record of where each starts."""
    strings = [s for s in ignore_strings if s] or ["Wait"]
    waits = [e for e in events if e.get("kind") == "wait"]
    starts = list(chars) if chars and len(chars) == len(waits) else None
    if starts is None and len(thinking) == thinking_tokens:
        starts = [int(e.get("at", 0)) for e in waits]      # one character per token
    spans: list[Span] = []
    after = 0
    for i, e in enumerate(waits):
        at = int(e.get("at", 0))
        found = None
        if starts is not None:
            pos = _WHITESPACE.match(thinking, starts[i]).end()   # a tokenizer's leading space
            found = next(((pos, pos + len(s)) for s in strings if thinking.startswith(s, pos)),
                         None)
        if found is None:
            guess = at / max(1, thinking_tokens) * len(thinking)
            hits = [(m.start(), m.end()) for s in strings
                    for m in re.finditer(re.escape(s), thinking) if m.start() >= after]
            found = min(hits, key=lambda h: abs(h[0] - guess), default=None)
            how = "placed by its share of the text"
        else:
            how = "exact"
        if found is None:
            continue
        why = e.get("detail") or ""
        spans.append(Span(found[0], found[1], f"Wait forced after {at} thinking tokens"
                                              + (f" ({why})" if why else "") + f"; {how}"))
        after = found[1]
    return spans


def _marked(text: str, spans: Sequence[Span]) -> str:
    """`text` escaped, each span as a highlighted mark, a long middle elided."""
    esc = html.escape
    cut = (MAX_TEXT_CHARS // 2, len(text) - MAX_TEXT_CHARS // 2) \
        if len(text) > MAX_TEXT_CHARS else None
    out, pos = [], 0
    pieces = sorted(spans, key=lambda s: s.start)
    for s in pieces:
        if cut and s.start < cut[1] and s.end > cut[0]:
            continue        # inside the elided middle: still counted in the header
        out.append(_plain(text, pos, s.start, cut))
        out.append(f"<mark class='s1-wait' title='{esc(s.title)}'>{esc(text[s.start:s.end])}</mark>")
        pos = s.end
    out.append(_plain(text, pos, len(text), cut))
    return "".join(out)


def _plain(text: str, a: int, b: int, cut: tuple[int, int] | None) -> str:
    if not cut or b <= cut[0] or a >= cut[1]:
        return html.escape(text[a:b])
    return (html.escape(text[a:max(a, cut[0])])
            + f"<span class='s1-elided'>[… {cut[1] - cut[0]} characters not shown …]</span>"
            + html.escape(text[min(b, cut[1]):b]))


def _grade(rec: Record) -> str:
    mark = "<span class='s1-ok'>✓ right</span>" if rec.correct else \
        "<span class='s1-bad'>✗ wrong</span>"
    got = "(none)" if rec.extracted is None else rec.extracted
    return (f"{mark} · extracted <code>{html.escape(str(got))}</code> · gold "
            f"<code>{html.escape(str(rec.gold))}</code> · grading: {html.escape(rec.reason)}")


def run_trace(run_name: str, rec: Record, ignore_strings: Sequence[str], samples: int) -> str:
    """One run's trace of one question, as an HTML fragment."""
    esc = html.escape
    tr = rec.trace or {}
    thinking, answer = str(tr.get("thinking", "")), str(tr.get("answer", ""))
    events = rec.events or tr.get("events", [])
    spans = wait_spans(thinking, rec.thinking_tokens, events, ignore_strings,
                       (tr.get("meta") or {}).get("wait_chars"))
    others = [f"{e.get('kind')} at {e.get('at')}" + (f" ({e['detail']})" if e.get("detail") else "")
              for e in events if e.get("kind") not in ("wait", "forced_end")]
    head = (f"<b>{esc(run_name)}</b>" + (f" (sample 1 of {samples})" if samples > 1 else "")
            + f" · {_grade(rec)}<br>thinking: {rec.thinking_tokens} tokens, "
            f"{FINISH.get(rec.thinking_finish, esc(rec.thinking_finish))}"
            + (f", {rec.waits} Wait{'s' * (rec.waits != 1)} forced" if rec.waits else "")
            + f" · answer: {rec.answer_tokens} tokens, "
            f"{ANSWER_FINISH.get(rec.finish_reason, esc(rec.finish_reason))}"
            + (f" · other events: {esc('; '.join(others))}" if others else ""))
    if rec.thinking_finish in ("max", "loop"):
        forced = next((e for e in events if e.get("kind") == "forced_end"), {})
        end = (f"<span class='s1-mark s1-forced' title='the end of thinking was forced'>⟂ end "
               f"forced at {forced.get('at', rec.thinking_tokens)} tokens</span>")
    elif rec.thinking_finish == "context":
        end = "<span class='s1-mark s1-forced'>⟂ the thinking filled the context</span>"
    else:
        end = ""
    delim = tr.get("end") or ""
    cut = ("<span class='s1-mark s1-cut' title='the answer ran into its cap'>✂ answer cut "
           "here</span>" if rec.finish_reason == "length" else "")
    return (f"<div class='s1-run'><div class='s1-head'>{head}</div>"
            f"<div class='s1-text s1-thinking'>{_marked(thinking, spans)}{end}</div>"
            + (f"<span class='s1-mark s1-delim'>{esc(delim)}</span>" if delim else "")
            + f"<div class='s1-text s1-answer'>{_marked(answer, [])}{cut}</div></div>")


def question_block(qid: str, gold: str, rows: Sequence[tuple[str, Record | None, Sequence[str], int]],
                   withheld: bool) -> str:
    """One question: a summary line (its grade per run) that opens to every run's trace."""
    esc = html.escape
    marks = " ".join(f"<span title='{esc(name)}'>"
                     + ("·" if rec is None else ("✓" if rec.correct else "✗")) + "</span>"
                     for name, rec, _, _ in rows)   # hover: which run
    body = ("<p>Traces of GPQA questions are not shown (they may quote the question).</p>"
            if withheld else
            "".join(run_trace(name, rec, strings, samples) for name, rec, strings, samples in rows
                    if rec is not None))
    return (f"<details class='s1-q' id='trace-{esc(qid)}'><summary><b>{esc(qid)}</b> · gold "
            f"<code>{esc(str(gold))}</code> · {marks}</summary>{body}</details>")


LEGEND = ("Click a question to read its trace in every run (one per budget), in the order of the "
          "table above. Marked: each forced Wait (highlighted; hover for where it went in), a "
          "forced end of thinking (⟂), the delimiter that closed the thinking, and an answer cut "
          "at its cap (✂); each run's line gives the grade and the grader's reason.")
