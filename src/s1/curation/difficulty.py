"""Difficulty: drop what is easy. Each solver model answers every question (the paper: Qwen2.5-7B-
and 32B-Instruct, bare question, default system prompt); each answer is graded against the
reference; a question is dropped when any solver is right. The trace length in tokens of a
chosen tokenizer (the paper: Qwen2.5-32B-Instruct's, of `thinking_trajectories[0]`) is the
difficulty proxy the selection step samples by.

Solvers go through any engine (`s1.curation.llm`) and their answers are cached and resumable
exactly like teacher traces (they are asked through `s1.curation.traces`, one cache per solver).
Grading: `rules`, the evaluation stage's grader (`s1.evaluation.grading`: last box or "Answer:",
integers, math-verify), or `llm`, the paper's grader prompt (its Fig. 8, `data/grading.txt`)
through any engine, the verdict being the reply's last line, Yes or No.

The reference: `answer`, else the last \\boxed{} of `solution` (the 59K pool has no answer
column), else (rules grader with `grader_llm` set) the solution through the LLM grader. When
most rows have none, the step refuses (every solver would count as wrong, nothing dropped); a
few without one are dropped (`no-reference`), as the paper dropped rows without a grade.

Config: `DifficultyConfig`. Columns in: `question`, `answer` (the reference; `solution` is used
by the LLM grader when there is no answer), `thinking_trajectories` (for `trace_tokens`),
`attempt` (the teacher's answer, graded into `teacher_correct`, the paper's isgeminicorrect).
Columns out: `correct_<solver>` (bool per solver), `teacher_correct` (bool, None when it could
not be graded; with an `attempt` column), `trace_tokens` (int, when a tokenizer is set).
Dropped rows (`on_drop`): "solved by <solver>", "solver <name> failed: ...", "no reference
answer" (the paper drops questions whose grades are missing).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from datasets import Dataset

from s1.curation.llm import LLMConfig, llm_config
from s1.curation.traces import TracesConfig, traces
from s1.errors import UserError

log = logging.getLogger("s1.curation")

GRADERS = ("rules", "llm")

# The paper's grader prompt (Fig. 8; data/grading.txt of simplescaling/s1), used as the system prompt.
GRADING_SYSTEM = """\
You are an AI assistant for grading a science problem.
The user will provide you with the question itself, an attempt made by a student and the correct answer to the problem.
Your job is to judge whether the attempt is correct by comparing it with the correct answer.
If the expected solution concludes with a number or choice, there should be no ambiguity.
If the expected solution involves going through the entire reasoning process, you should judge the attempt based on whether the reasoning process is correct with correct answer if helpful.

The user will provide the attempt and the correct answer in the following format:

# Problem
{problem}

## Attempt
{attempt}

## Correct answer
{solution}

Explain your reasoning, and end your response on a new line with only "Yes" or "No" (without quotes).
"""
GRADING_USER = "## Problem\n{question}\n\n## Attempt\n{attempt}\n\n## Correct answer\n{solution}"


@dataclass
class DifficultyConfig:
    """Solvers, grader, and the tokenizer that measures trace length."""

    solvers: dict = field(default_factory=lambda: {"smollm2": LLMConfig()})   # name -> LLMConfig
    grader: str = "rules"              # rules | llm
    grader_llm: LLMConfig | None = None   # for grader=llm
    answer_type: str = "math"          # rules grader: math | integer
    cache_dir: str | None = None       # one JSONL per solver (and the LLM grader); None = no resume
    tokenizer: str | None = None       # hub id / path / smollm2-135m; None = no trace_tokens
    drop_solved: bool = True           # False: only add the columns
    grade_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.solvers:
            raise UserError("the difficulty step needs at least one solver")
        if not isinstance(self.solvers, dict):
            raise UserError("difficulty.solvers must map solver names to models "
                            "({name: {api: ..., base_url: ..., model: ...}})")
        self.solvers = {name: llm_config(c if c is not None else {}, f"difficulty.solvers.{name}")
                        for name, c in self.solvers.items()}
        for name in self.solvers:
            if not re.fullmatch(r"[A-Za-z0-9_]+", name):
                raise UserError(f"solver name {name!r} must be letters, digits and underscores")
        if self.grader not in GRADERS:
            raise UserError(f"unknown grader {self.grader!r}; choose rules or llm")
        self.grader_llm = llm_config(self.grader_llm, "difficulty.grader_llm")
        if self.grader == "llm" and self.grader_llm is None:
            raise UserError("grader=llm needs grader_llm (an LLMConfig: api, base_url, model)")
        if self.answer_type not in ("math", "integer"):
            raise UserError(f"answer_type must be math or integer, not {self.answer_type!r}")


def parse_yes_no_last_line(text: str) -> bool | None:
    """The paper's parse: the reply's last non-empty line is Yes or No."""
    lines = [ln.strip().strip("*.").lower() for ln in (text or "").splitlines() if ln.strip()]
    return {"yes": True, "no": False}.get(lines[-1] if lines else "")


def _cache(cfg: DifficultyConfig, name: str, llm: LLMConfig) -> str | None:
    # keyed by the model too: renaming nothing but the model must not reuse the old replies
    return str(Path(cfg.cache_dir) / f"{name}-{llm.fingerprint()}.jsonl") if cfg.cache_dir else None


def _grade_rules(attempts: list[str], refs: list[str], cfg: DifficultyConfig) -> list[bool]:
    from s1.evaluation.benchmarks import Item
    from s1.evaluation.grading import grade_many

    pairs = [(a, Item(str(i), "", r, cfg.answer_type)) for i, (a, r) in enumerate(zip(attempts, refs))]
    return [g.correct for g in grade_many(pairs, timeout=cfg.grade_timeout_s)]


def _grade_llm(questions, attempts, refs, cfg: DifficultyConfig, name: str
               ) -> tuple[list[bool | None], int]:
    """(verdicts, failed requests): a verdict is None when the reply failed or said neither."""
    if not questions:
        return [], 0
    grader = LLMConfig(**{**cfg.grader_llm.__dict__, "system": cfg.grader_llm.system or GRADING_SYSTEM})
    prompts = Dataset.from_dict({"question": [GRADING_USER.format(question=q, attempt=a, solution=r)
                                              for q, a, r in zip(questions, attempts, refs)]})
    graded = traces(prompts, TracesConfig(teacher=grader, cache=_cache(cfg, f"grader_{name}", grader),
                                          keep_failed=True, keep_truncated=True, progress=f"grading {name}"))
    errors = list(graded["teacher_error"])
    return ([None if err else parse_yes_no_last_line(text)
             for text, err in zip(graded["attempt"], errors)], sum(bool(e) for e in errors))


def references(ds, config: DifficultyConfig) -> tuple[list[str], list[str | None]]:
    """(reference, how to grade: rules | llm | None) per row. The rules grader compares short
    answers: the `answer` column, else the solution's last \\boxed{} or the solution itself when
    it is a bare answer (`pool.answer_of`; the 59K pool has no answer column); a row with none
    goes to the LLM grader against its solution where one is configured (the paper graded every
    row that way), else has no reference."""
    from s1.curation.pool import answer_of

    answers = [str(a).strip() if a is not None else "" for a in ds["answer"]]
    solutions = ([str(x) if x is not None else "" for x in ds["solution"]]
                 if "solution" in ds.column_names else [""] * len(answers))
    refs, how = [], []
    for a, sol in zip(answers, solutions):
        if config.grader == "llm":
            refs.append(a or sol)
            how.append("llm" if (a or sol).strip() else None)
            continue
        short = (answer_of(a, sol) or "").strip()
        if short:
            refs.append(short)
            how.append("rules")
        elif sol.strip() and config.grader_llm is not None:
            refs.append(sol)
            how.append("llm")
        else:
            refs.append("")
            how.append(None)
    return refs, how


def grade(questions: list[str], attempts: list[str], refs: list[str], how: list[str | None],
          config: DifficultyConfig, name: str) -> tuple[list[bool | None], int]:
    """Each attempt graded the row's way (None: not graded); and the grader's failed requests."""
    out: list[bool | None] = [None] * len(attempts)
    rules = [i for i, h in enumerate(how) if h == "rules"]
    for i, g in zip(rules, _grade_rules([attempts[i] for i in rules], [refs[i] for i in rules], config)):
        out[i] = g
    llm = [i for i, h in enumerate(how) if h == "llm"]
    verdicts, errors = _grade_llm([questions[i] for i in llm], [attempts[i] for i in llm],
                                  [refs[i] for i in llm], config, name)
    for i, g in zip(llm, verdicts):
        out[i] = g
    return out, errors


def difficulty(ds, config: DifficultyConfig | None = None,
               on_drop: Callable[[dict, str], None] | None = None, stats: dict | None = None):
    """Solve, grade, measure, drop (see the module docstring). `stats`, when given, receives the
    counts the report needs (failed requests, rows without a reference, the teacher's grade)."""
    config = config or DifficultyConfig()
    stats = {} if stats is None else stats
    for col in ("question", "answer"):
        if col not in ds.column_names:
            raise UserError(f"the difficulty step needs a {col!r} column")
    questions = list(ds["question"])
    refs, how = references(ds, config)
    missing = sum(h is None for h in how)
    if missing and missing * 2 > len(how):
        raise UserError(f"difficulty: {missing} of {len(how)} rows have no reference answer (no "
                        "`answer`, no \\boxed{} in `solution`), so every solver would count as "
                        "wrong; map an answer column in the pool, or grade against the solution "
                        "with grader=llm and grader_llm")
    stats.update(no_reference=missing, failed_requests=0)

    correct: dict[str, list[bool | None]] = {}
    failed: dict[str, list[str]] = {}
    for name, solver in config.solvers.items():
        answered = traces(ds.select_columns(["question"] + (["question_hash"] if "question_hash" in ds.column_names else [])),
                          TracesConfig(teacher=solver, cache=_cache(config, name, solver), keep_failed=True,
                                       keep_truncated=True,
                                       progress=f"solver {name}"))
        attempts = [a or t[0] for a, t in zip(answered["attempt"], answered["thinking_trajectories"])]
        failed[name] = list(answered["teacher_error"])
        # a failed answer, or a row without a reference, is not graded
        graded_how = [h if not failed[name][i] else None for i, h in enumerate(how)]
        correct[name], errors = grade(questions, attempts, refs, graded_how, config, name)
        stats["failed_requests"] += errors + sum(bool(e) for e in failed[name])
        log.info("difficulty: %s solved %d of %d", name, sum(bool(c) for c in correct[name]), len(questions))

    teacher = None
    if "attempt" in ds.column_names:
        # the teacher's own answer against the reference (the paper's isgeminicorrect: its
        # benchmark-related questions are the ones the teacher got right)
        thinking = (ds["thinking_trajectories"] if "thinking_trajectories" in ds.column_names
                    else [[""]] * len(questions))
        answers = [a or (t[0] if t else "") for a, t in zip(ds["attempt"], thinking)]
        teacher, errors = grade(questions, [a or "" for a in answers], refs,
                                [h if a else None for h, a in zip(how, answers)], config, "teacher")
        stats["failed_requests"] += errors
        stats["teacher_correct"] = sum(bool(t) for t in teacher)
        stats["teacher_graded"] = sum(t is not None for t in teacher)

    keep, reasons = [], []
    for i in range(len(questions)):
        why = "" if how[i] else "no reference answer to grade against"
        for name in config.solvers:
            if why:
                break
            if failed[name][i]:
                why = f"solver {name} failed: {failed[name][i]}"
            elif correct[name][i] is None:
                why = f"grader gave no verdict on {name}'s answer"
            elif correct[name][i] and config.drop_solved:
                why = f"solved by {name}"
        if not why or not config.drop_solved:
            keep.append(i)
        elif on_drop:
            on_drop(ds[i], why)
        reasons.append(why)

    out = ds.select(keep)
    columns = {f"correct_{name}": [bool(correct[name][i]) for i in keep] for name in config.solvers}
    if teacher is not None:
        columns["teacher_correct"] = [teacher[i] for i in keep]   # None: not graded
    for col, values in columns.items():
        if col in out.column_names:
            out = out.remove_columns(col)
        out = out.add_column(col, values)
    if config.tokenizer:
        if "thinking_trajectories" not in out.column_names:
            raise UserError("trace_tokens needs a thinking_trajectories column (run the traces step first)")
        count = token_counter(config.tokenizer)
        lengths = [count(t[0] if t else "") for t in out["thinking_trajectories"]]
        if "trace_tokens" in out.column_names:
            out = out.remove_columns("trace_tokens")
        out = out.add_column("trace_tokens", lengths)
    return out


def token_counter(tokenizer: str) -> Callable[[str], int]:
    """len(tokenizer.encode(text)), as the paper measured gemini_length."""
    from s1.generation.models import load_tokenizer, resolve_model

    tok = load_tokenizer(resolve_model(tokenizer))
    return lambda text: len(tok.encode(text or "", add_special_tokens=False))


# ---------------------------------------------------------------------------------------------
# the `difficulty` step of `s1 curate` (contract: s1.curation.steps; caches: s1.curation.modelsteps)

from s1.curation.steps import Drops, StepOutput, step  # noqa: E402


@step("difficulty", DifficultyConfig, needs=("question", "question_hash", "answer"))
def difficulty_step(data, config: DifficultyConfig, ctx) -> StepOutput:
    """Drop what any solver model gets right (graded against the reference); trace length in tokens."""
    import dataclasses

    from s1.curation.modelsteps import bars, drop_into, replies_dir, split_reason

    cache_dir = config.cache_dir or str(replies_dir(ctx) / "difficulty")
    drops = Drops()
    reasons = {f"solved by {n}": f"solved-by-{n}" for n in config.solvers}
    reasons.update({f"solver {n} failed": "solver-error" for n in config.solvers})
    reasons["grader gave no verdict"] = "no-verdict"
    reasons["no reference answer"] = "no-reference"
    counts: dict = {}
    with bars(ctx):
        out = difficulty(data, dataclasses.replace(config, cache_dir=cache_dir),
                         on_drop=drop_into(drops, split_reason(reasons, "difficulty")), stats=counts)
    stats = {f"solved_by_{n}": sum(r["reason"] == f"solved-by-{n}" for r in drops.records)
             for n in config.solvers}
    stats.update(counts)
    if "trace_tokens" in out.column_names and len(out):
        tokens = out["trace_tokens"]
        stats.update(trace_tokens_total=int(sum(tokens)), trace_tokens_max=int(max(tokens)))
    failed = counts["failed_requests"]
    return StepOutput(out, drops, stats=stats,
                      incomplete=f"{failed} solver or grader requests failed" if failed else "")
