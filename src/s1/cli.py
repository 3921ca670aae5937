"""The `s1` command. Thin: parse the flags, call the stage, print the result.

Each stage registers its commands on `app` in its own section below. A UserError anywhere
becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys

import typer

from s1.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="s1: simple test-time scaling — budget forcing, evaluation, training.")


@app.callback()
def _root() -> None:
    """s1: simple test-time scaling — budget forcing, evaluation, training."""


def fail(message: str) -> None:
    """Report a user error the one way the project does it."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(2)


# --- generation ----------------------------------------------------------------------------

MODEL_HELP = "HF id, local directory or .gguf file (default: the embedded SmolLM2-135M-Instruct)"


def budget_from_flags(max_thinking: str, min_thinking: int, num_ignore: int,
                      ignore_string: list[str] | None, max_answer: int, temperature: float,
                      top_p: float, seed: int, loop_guard: str):
    from s1.generation.budget import Budget
    mx = None if max_thinking.lower() in ("none", "inf") else max_thinking
    return Budget(max_thinking_tokens=mx, min_thinking_tokens=min_thinking, num_ignore=num_ignore,
                  ignore_strings=tuple(ignore_string or ("Wait",)), max_answer_tokens=max_answer,
                  temperature=temperature, top_p=top_p, seed=seed, loop_guard=loop_guard)


def read_questions(path: str) -> list[tuple[str, str]]:
    """(id, question) pairs from a JSONL file with a `question` (or `prompt`/`problem`) field."""
    import json
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise UserError(f"input file not found: {path}")
    out = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{n}: not valid JSON ({err.msg})") from None
        q = rec.get("question", rec.get("prompt", rec.get("problem"))) if isinstance(rec, dict) else None
        if not isinstance(q, str) or not q.strip():
            raise UserError(f"{path}:{n}: needs a non-empty 'question' field")
        out.append((str(rec.get("id", n)), q))
    if not out:
        raise UserError(f"{path} holds no questions")
    return out


@app.command()
def generate(
    question: str = typer.Argument(None, help="The question (or use --input)."),
    input: str = typer.Option(None, "--input", "-i", help="JSONL file, one {'question': ...} per line."),
    model: str = typer.Option(None, help=MODEL_HELP),
    server: str = typer.Option(None, help="Base URL of an OpenAI-compatible completions server."),
    engine: str = typer.Option("auto", help="auto, transformers, llama.cpp or remote."),
    format: str = typer.Option(None, "--format", help="Thinking format: s1 or think-tags (default: per model)."),
    think_start: str = typer.Option(None, help="Custom thinking start string."),
    think_end: str = typer.Option(None, help="Custom thinking end string."),
    max_thinking: str = typer.Option("auto", help="Max thinking tokens: N, 'auto' (context − prompt − reserve) or 'none'."),
    min_thinking: int = typer.Option(0, help="Min thinking tokens: earlier ends become the ignore string."),
    num_ignore: int = typer.Option(0, help="Ignore the end of thinking N times, appending the ignore string."),
    ignore_string: list[str] = typer.Option(None, help="String appended when an end is ignored (repeatable; used in turn)."),
    max_answer: int = typer.Option(512, help="Max answer tokens."),
    temperature: float = typer.Option(0.0, help="0 = greedy."),
    top_p: float = typer.Option(1.0),
    seed: int = typer.Option(0),
    loop_guard: str = typer.Option("record", help="off, record or stop (stop forcing when thinking loops)."),
    system: str = typer.Option(None, help="System prompt (default: the model's own)."),
    batch_size: int = typer.Option(16, help="Rows decoded together (transformers engine)."),
    json_out: bool = typer.Option(False, "--json", help="Print each Trace as one JSON line."),
):
    """Generate with budget forcing and show the thinking, the answer and the forcing events."""
    import json

    from s1.generation.engines import Request, load_engine
    from s1.generation.formats import resolve_format

    if (question is None) == (input is None):
        fail("give a QUESTION or --input FILE.jsonl (one of them)")
    if batch_size < 1:
        fail("--batch-size must be at least 1")
    budget = budget_from_flags(max_thinking, min_thinking, num_ignore, ignore_string, max_answer,
                               temperature, top_p, seed, loop_guard)
    items = read_questions(input) if input else [("0", question)]
    fmt = resolve_format(model, format, think_start, think_end) if (format or think_start or think_end) else None
    eng = load_engine(model, server, engine, fmt=fmt, batch_size=batch_size)
    requests = [Request(q, system=system, id=i) for i, q in items]
    try:
        traces = eng.generate(requests, budget)
    finally:
        eng.close()
    for tr in traces:
        if json_out:
            print(json.dumps(tr.to_dict(), ensure_ascii=False))
            continue
        events = ", ".join(f"{e.kind}@{e.at}" + (f"({e.detail})" if e.detail else "") for e in tr.events)
        print(f"── {tr.id} · {eng.name} · {tr.thinking_tokens} thinking tokens "
              f"({tr.thinking_finish}) · {tr.answer_tokens} answer tokens ({tr.finish_reason}) · "
              f"{tr.tokens_per_s:.1f} tok/s")
        print(f"events: {events or 'none'}")
        print("[thinking]")
        print(tr.thinking)
        print(f"[answer] {tr.end!r}")
        print(tr.answer)


# --- training ------------------------------------------------------------------------------


@app.command()
def train(
    recipe: str = typer.Option(..., "--recipe", "-r",
                               help="recipe in configs/ (s1-32b, s1.1-32b, cpu-smoke) or a .yaml path"),
    overrides: list[str] = typer.Argument(None, metavar="[KEY=VALUE]...",
                                          help="e.g. train.max_steps=10 data.block_size=20000 "
                                               "output_dir=runs/x"),
    no_resume: bool = typer.Option(False, "--no-resume",
                                   help="start over even if the output directory has checkpoints"),
    show: bool = typer.Option(False, "--show", help="print the resolved recipe and exit"),
) -> None:
    """Fine-tune a model on s1-formatted traces: TRL SFT, loss on the assistant turn only."""
    import os

    import yaml

    from s1.training import load_recipe
    from s1.training import train as run_training

    resolved = load_recipe(recipe, overrides or [])
    if show:
        print(yaml.safe_dump(resolved.to_dict(), sort_keys=False), end="")
        return
    result = run_training(resolved, resume=not no_resume)
    if os.environ.get("RANK", "0") != "0":
        return
    print(f"trained {result.global_step} steps in {result.train_seconds:.0f}s -> {result.output_dir}")
    if result.eval_loss_before is not None and result.eval_loss_after is not None:
        print(f"training-set loss {result.eval_loss_before:.4f} -> {result.eval_loss_after:.4f}")
    elif result.first_loss is not None:
        print(f"logged loss {result.first_loss:.4f} (first) -> {result.last_loss:.4f} (last)")
    print(result.truncation.summary())


def main() -> None:
    try:
        app()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
