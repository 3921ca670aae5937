"""Teacher traces: ask a reasoning model every question and keep its thinking and its answer,
as the paper did with Gemini 2.0 Flash Thinking (the prompt is the bare question, issue #33).

Any engine (`s1.curation.llm`): in-process (the embedded model or any local one), or any
OpenAI-compatible server or hosted API, chat or completions, concurrent, rate-limited, with
backoff on 429. The thinking comes from `reasoning_content` or `<think>` tags (remote), or the
model's thinking format (local).

Every reply is appended to the cache (`cache`, JSONL keyed by `question_hash`, fsynced line by
line with `s1.jsonl`) the moment it arrives, so a killed run loses at most the replies in flight
and a rerun asks only what is missing. A failed request is recorded in the cache with its error
(and retried on the next run unless `retry_failed` is off); its row is dropped with the reason
(`on_drop`) or kept with empty traces (`keep_failed`); the step is then marked incomplete, so a
recipe rerun asks again. More failures than the model's `max_failure_rate` stop the asking with
one clear error. A reply cut at `max_tokens` (`finish_reason: length`) is no finished trace: it
is cached (asking again gives the same) but dropped as `teacher-truncated` unless
`keep_truncated`; kept rows say so in `teacher_truncated`. Token and cost totals of every request in
the cache are written beside it (`<cache>.usage.json`) and returned by `trace_usage`.

A pool that already carries its teacher's thinking (the miniature world's generator writes it;
a pool exported with traces) is read instead of asked: `from_pool: FIELD` takes it from the
row's `metadata[FIELD]`.

Config: `TracesConfig`. Columns in: `question` (`question_hash` is used when present, else
sha256(question)[:16]). Columns out, as s1K: `thinking_trajectories` (list of one str), `attempt`
(str); plus `teacher` (model label), `teacher_error` (str, "" when it worked) and
`teacher_truncated` (bool).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from s1.curation.llm import LLM, LLMConfig, Reply, llm_config
from s1.errors import UserError
from s1.jsonl import JsonlAppender, read_jsonl, write_json_atomic

log = logging.getLogger("s1.curation")
SHOW_BARS = True   # the step runner turns the bars off under --quiet (s1.curation.modelsteps.bars)


@dataclass
class TracesConfig:
    """Which teacher, where its replies are kept, and what a failure does."""

    teacher: LLMConfig = field(default_factory=LLMConfig)
    cache: str | None = None           # JSONL of replies by question_hash; None = no resume
    prompt_template: str = "{question}"   # the paper sends the bare question
    require_thinking: bool = False     # a reply with no separate thinking counts as a failure
    retry_failed: bool = True          # a rerun asks again for questions that failed before
    keep_failed: bool = False          # keep failed rows (empty traces) instead of dropping them
    keep_truncated: bool = False       # keep replies cut at max_tokens (flagged) instead of dropping
    from_pool: str | None = None       # the pool's `metadata` field that already holds the teacher's
                                       # thinking (the synthetic world: `trace`): no model is asked
    progress: str = "teacher traces"   # the progress bar's label

    def __post_init__(self) -> None:
        self.teacher = llm_config(self.teacher, "traces.teacher") or LLMConfig()
        if "{question}" not in self.prompt_template:
            raise UserError("prompt_template must contain {question}")


def question_hash(question: str) -> str:
    """s1's key: the first 16 hex digits of sha256(question)."""
    return hashlib.sha256(question.encode("utf-8")).hexdigest()[:16]


def hashes_of(ds) -> list[str]:
    if "question_hash" in ds.column_names:
        return list(ds["question_hash"])
    return [question_hash(q or "") for q in ds["question"]]


def load_cache(path: Path | None) -> dict[str, dict]:
    """Latest record per question_hash (a torn last line from a kill is cut off)."""
    if path is None:
        return {}
    return {r["question_hash"]: r for r in read_jsonl(path, repair=True, key="question_hash",
                                                       damaged="delete the damaged line or the cache")}


def trace_usage(path: str | Path) -> dict:
    """Token, request and cost totals of every reply in a traces cache (earlier runs included)."""
    records = read_jsonl(Path(path), key="question_hash")
    out = {"replies": len(records), "failures": sum(bool(r.get("error")) for r in records),
           "prompt_tokens": sum(r.get("prompt_tokens", 0) for r in records),
           "completion_tokens": sum(r.get("completion_tokens", 0) for r in records),
           "cost": round(sum(r.get("cost", 0.0) for r in records), 6)}
    return out


def _record(h: str, reply: Reply, cfg: TracesConfig) -> dict:
    t = cfg.teacher
    error = reply.error
    if error is None and cfg.require_thinking and not reply.thinking.strip():
        error = "the reply has no separate thinking (require_thinking is on)"
    cost = (reply.prompt_tokens * t.price_in_per_mtok + reply.completion_tokens * t.price_out_per_mtok) / 1e6
    return {"question_hash": h, "teacher": t.label, "thinking": reply.thinking if error is None else "",
            "attempt": reply.text if error is None else "", "error": error,
            "truncated": error is None and reply.finish_reason == "length",
            "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
            "cost": cost, "finish_reason": reply.finish_reason, "attempts": reply.attempts,
            "wall_s": round(reply.wall_s, 3)}


def pool_replies(ds, field: str) -> dict[str, dict]:
    """The teacher's replies a pool already carries: its thinking in `metadata[field]`, its
    answer in `metadata["attempt"]`, else "Answer: " and the row's reference answer (a generated
    world's teacher is the generator; written as s1's format writes an answer, so the teacher's
    grade can extract it). A row without the field is a failure."""
    import json

    out = {}
    metas = ds["metadata"] if "metadata" in ds.column_names else [None] * len(ds)
    answers = ds["answer"] if "answer" in ds.column_names else [None] * len(ds)
    for h, meta, answer in zip(hashes_of(ds), metas, answers):
        meta = json.loads(meta) if isinstance(meta, str) and meta.strip() else (meta or {})
        thinking = meta.get(field) if isinstance(meta, dict) else None
        if isinstance(thinking, list):   # s1K's thinking_trajectories: a list of one str
            thinking = thinking[0] if thinking else None
        ok = isinstance(thinking, str) and bool(thinking.strip())
        out[h] = {"question_hash": h, "teacher": f"pool:{field}", "thinking": thinking if ok else "",
                  "attempt": str(meta.get("attempt") or f"Answer: {answer}") if ok else "",
                  "error": None if ok else f"the pool row has no {field!r} in its metadata",
                  "truncated": False, "prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0}
    return out


def traces(ds, config: TracesConfig | None = None,
           on_drop: Callable[[dict, str], None] | None = None, llm: LLM | None = None):
    """Teacher traces for a `Dataset` (see the module docstring)."""
    config = config or TracesConfig()
    if "question" not in ds.column_names:
        raise UserError("the traces step needs a 'question' column")
    if config.from_pool:
        return _columns(ds, hashes_of(ds), pool_replies(ds, config.from_pool), config, on_drop)
    hashes = hashes_of(ds)
    cache_path = Path(config.cache) if config.cache else None
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
    done = load_cache(cache_path)

    todo: dict[str, str] = {}
    for h, q in zip(hashes, ds["question"]):
        rec = done.get(h)
        if rec is None or (rec.get("error") and config.retry_failed):
            todo.setdefault(h, q or "")
    log.info("traces: %d questions, %d cached, %d to ask %s", len(set(hashes)),
             len(set(hashes)) - len(todo), len(todo), config.teacher.label)

    if todo:
        keys = list(todo)
        appender = JsonlAppender(cache_path) if cache_path is not None else None
        own = llm is None
        llm = llm or LLM(config.teacher)
        progress = _progress(len(keys), config.progress)

        def got(i: int, reply: Reply) -> None:
            rec = _record(keys[i], reply, config)
            done[keys[i]] = rec
            if appender is not None:
                appender.append(rec)
            progress(rec)

        try:
            llm.ask([config.prompt_template.format(question=todo[k]) for k in keys], on_reply=got,
                    total=len(set(hashes)), what=f"{config.progress} requests")
        finally:
            if appender is not None:
                appender.close()
            if own:
                llm.close()
    if cache_path is not None:
        write_json_atomic(cache_path.with_name(cache_path.name + ".usage.json"), trace_usage(cache_path))
    return _columns(ds, hashes, done, config, on_drop)


def _columns(ds, hashes: list[str], done: dict[str, dict], config: TracesConfig, on_drop):
    """The rows with their teacher's reply as s1K's columns; failed and cut replies dropped
    (or kept, flagged, as the config says)."""
    keep, thinking, attempt, teacher, errors, truncated = [], [], [], [], [], []
    for i, h in enumerate(hashes):
        rec = done[h]
        if rec.get("error") and not config.keep_failed:
            if on_drop:
                on_drop(ds[i], f"teacher failed: {rec['error']}")
            continue
        if rec.get("truncated") and not config.keep_truncated:
            if on_drop:
                on_drop(ds[i], f"teacher truncated: cut at max_tokens "
                               f"({rec.get('completion_tokens', 0)} tokens)")
            continue
        keep.append(i)
        thinking.append([rec.get("thinking", "")])
        attempt.append(rec.get("attempt", ""))
        teacher.append(rec.get("teacher", ""))
        errors.append(rec.get("error") or "")
        truncated.append(bool(rec.get("truncated")))
    out = ds.select(keep)
    for name, values in (("thinking_trajectories", thinking), ("attempt", attempt),
                         ("teacher", teacher), ("teacher_error", errors),
                         ("teacher_truncated", truncated)):
        if name in out.column_names:
            out = out.remove_columns(name)
        out = out.add_column(name, values)
    return out


def _progress(total: int, label: str) -> Callable[[dict], None]:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=label, unit="q", leave=False, disable=not SHOW_BARS)
    failed = 0

    def step(rec: dict) -> None:
        nonlocal failed
        failed += bool(rec.get("error"))
        bar.update(1)
        bar.set_postfix(failed=failed)
        if bar.n >= total:
            bar.close()
    return step


# ---------------------------------------------------------------------------------------------
# the `traces` step of `s1 curate` (contract: s1.curation.steps; caches: s1.curation.modelsteps)

from s1.curation.steps import Drops, StepOutput, step  # noqa: E402


@step("traces", TracesConfig, needs=("question", "question_hash"))
def traces_step(data, config: TracesConfig, ctx) -> StepOutput:
    """Teacher traces (thinking_trajectories, attempt) through any engine; replies cached by question_hash."""
    import dataclasses

    from s1.curation.modelsteps import bars, drop_into, reply_cache, split_reason

    drops = Drops()
    if config.from_pool:   # the pool carries its teacher's replies: nothing to ask or cache
        out = traces(data, config, on_drop=drop_into(drops, split_reason({}, "no-trace")))
        ctx.log(f"teacher traces from the pool's metadata field {config.from_pool!r}")
        return StepOutput(out, drops, stats={"teacher": f"pool:{config.from_pool}", "failures": 0,
                                             "truncated": 0, "prompt_tokens": 0,
                                             "completion_tokens": 0, "cost": 0.0})
    cache = reply_cache(ctx, config.cache, "traces", config.teacher)
    with bars(ctx):
        out = traces(data, dataclasses.replace(config, cache=cache),
                     on_drop=drop_into(drops, split_reason({"teacher failed": "teacher-error",
                                                            "teacher truncated": "teacher-truncated"},
                                                           "teacher-error")))
    mine = set(hashes_of(data))
    replies = [r for h, r in load_cache(Path(cache)).items() if h in mine]
    failures = sum(bool(r.get("error")) for r in replies)
    stats = {"teacher": config.teacher.label, "failures": failures,
             "truncated": sum(bool(r.get("truncated")) for r in replies),
             "prompt_tokens": sum(r.get("prompt_tokens", 0) for r in replies),
             "completion_tokens": sum(r.get("completion_tokens", 0) for r in replies),
             "cost": round(sum(r.get("cost", 0.0) for r in replies), 6)}
    ctx.log(f"{stats['completion_tokens']} completion tokens, {stats['failures']} failed, "
            f"{stats['truncated']} cut at max_tokens, cost {stats['cost']:g}")
    return StepOutput(out, drops, stats=stats,
                      incomplete=f"{failures} teacher requests failed" if failures else "")
