"""`s1 generate`: budget-forced generation from the command line."""

from __future__ import annotations

import json
import sys
from typing import List, Optional

import typer

from s1.cli_options import default, engine_options
from s1.errors import UserError
from s1.generation.budget import Budget, LoopGuard, Sampling
from s1.generation.options import EngineOptions
from s1.generation.trace import Trace
from s1.status import note


def read_questions(path: str) -> list[tuple[str, str]]:
    """(id, question) pairs from a JSONL file with a `question` (or `prompt`/`problem`) field."""
    from pathlib import Path

    from s1.jsonl import json_lines

    p = Path(path)
    if not p.is_file():
        raise UserError(f"input file not found: {path}")
    out = []
    for n, rec in json_lines(p.read_text(encoding="utf-8"), path):
        q = rec.get("question", rec.get("prompt", rec.get("problem"))) if isinstance(rec, dict) else None
        if not isinstance(q, str) or not q.strip():
            raise UserError(f"{path}:{n}: needs a non-empty 'question' field")
        out.append((str(rec.get("id", n)), q))
    if not out:
        raise UserError(f"{path} holds no questions")
    return out


def render_trace(trace: Trace, engine_name: str) -> str:
    """A Trace for a person: one header line, the events, the thinking, the answer."""
    events = ", ".join(f"{e.kind}@{e.at}" + (f"({e.detail})" if e.detail else "")
                       for e in trace.events)
    return "\n".join([
        f"── {trace.id} · {engine_name} · {trace.thinking_tokens} thinking tokens "
        f"({trace.thinking_finish}) · {trace.answer_tokens} answer tokens "
        f"({trace.finish_reason}) · {trace.tokens_per_s:.1f} tok/s",
        f"events: {events or 'none'}",
        *([f"error: {trace.error}"] if trace.error else []),
        "[thinking]",
        trace.thinking,
        # The answer, and only it: the delimiter that closed the thinking is in --json's `end`.
        "[answer]",
        trace.answer.lstrip("\n"),
    ])


def generate(
    question: Optional[str] = typer.Argument(None, help="The question (or use --input)."),
    input: Optional[str] = typer.Option(None, "--input", "-i", help="JSONL file, one {'question': ...} per line."),
    max_thinking: str = typer.Option(default(Budget, "max_thinking_tokens"), help="Max thinking tokens: N, 'auto' (context − prompt − reserve) or 'none'."),
    min_thinking: int = typer.Option(default(Budget, "min_thinking_tokens"), help="Min thinking tokens: earlier ends become the ignore string (or are masked, --min-mode suppress)."),
    min_mode: str = typer.Option(default(Budget, "min_mode"), help="How the minimum holds: wait (append the ignore string, the paper) or suppress (mask the end and EOS, vLLM min_tokens)."),
    num_ignore: int = typer.Option(default(Budget, "num_ignore"), help="Ignore the end of thinking N times, appending the ignore string."),
    ignore_string: Optional[List[str]] = typer.Option(None, help="String appended when an end is ignored (repeatable; used in turn; default: Wait)."),
    max_answer: int = typer.Option(default(Budget, "max_answer_tokens"), help="Max answer tokens."),
    answer_reserve: int = typer.Option(default(Budget, "answer_reserve"), help="Tokens 'auto' thinking leaves free for the answer (the s1 harness: 100)."),
    require_answer: bool = typer.Option(default(Budget, "require_answer"), "--require-answer/--no-require-answer", help="An empty answer gets the forced suffix once; --no-require-answer is the harness exactly."),
    temperature: float = typer.Option(default(Sampling, "temperature"), help="0 = greedy."),
    top_p: float = typer.Option(default(Sampling, "top_p")),
    top_k: int = typer.Option(default(Sampling, "top_k"), help="Sample among the k likeliest tokens (0 = all)."),
    seed: int = typer.Option(default(Sampling, "seed")),
    loop_guard: str = typer.Option(default(LoopGuard, "mode"), help="off, record or stop (stop forcing when thinking loops)."),
    system: Optional[str] = typer.Option(None, help="System prompt (default: the model's own)."),
    json_out: bool = typer.Option(False, "--json", help="Print each Trace as one JSON line."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Append each Trace to this JSONL as it finishes; re-run to resume."),
    *,
    engine: EngineOptions,
):
    """Generate with budget forcing and show the thinking, the answer and the forcing events."""
    from s1.generation.engines import Request
    from s1.jsonl import JsonlAppender, read_jsonl

    if (question is None) == (input is None):
        raise UserError("give a QUESTION or --input FILE.jsonl (one of them)")
    if question is not None and not question.strip():
        raise UserError("the question is empty: give its text (or --input FILE.jsonl)")
    budget = Budget(max_thinking_tokens=max_thinking, min_thinking_tokens=min_thinking,
                    min_mode=min_mode, num_ignore=num_ignore, answer_reserve=answer_reserve,
                    require_answer=require_answer,
                    ignore_strings=tuple(ignore_string) if ignore_string else default(Budget, "ignore_strings"),
                    max_answer_tokens=max_answer,
                    sampling=Sampling(temperature=temperature, top_p=top_p, top_k=top_k, seed=seed),
                    loop=LoopGuard(mode=loop_guard))
    items = read_questions(input) if input else [("0", question)]
    ids = [i for i, _ in items]
    if len(set(ids)) != len(ids):
        raise UserError("question ids repeat in the input; give each line a unique 'id'")
    sink, done = None, set()
    if out:
        # Traces already in the file (a killed run) are not generated again.
        done = {str(r["id"]) for r in read_jsonl(out, repair=True, key="id",
                                                 damaged="give another --out file")}
        items = [(i, q) for i, q in items if i not in done]
        sink = JsonlAppender(out)
        if not items:
            print(f"all {len(done)} traces are already in {out}", file=sys.stderr)
            return
    note(engine.loading_note())
    eng = engine.load()
    requests = [Request(q, system=system, id=i, budget=budget) for i, q in items]
    try:
        traces = eng.generate(requests, on_trace=(lambda i, tr: sink.append(tr.to_dict())) if sink else None)
    finally:
        eng.close()
        if sink:
            sink.close()
    if out:
        print(f"{len(traces)} traces appended to {out}" + (f" ({len(done)} were there)" if done else ""),
              file=sys.stderr)
    for tr in traces:
        print(json.dumps(tr.to_dict(), ensure_ascii=False) if json_out else render_trace(tr, eng.name))
    failed = [tr for tr in traces if tr.error]
    if failed:
        # one line, exit 2 where nothing could be generated (a prompt past the context), 1 where
        # some sequences failed and the others stand
        why = f"{len(failed)} of {len(traces)} sequences failed (first: {failed[0].id}: {failed[0].error})"
        if len(failed) == len(traces):
            raise UserError(why)
        print(why, file=sys.stderr)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(engine_options(generate))
