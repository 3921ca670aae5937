"""What the model steps (`audit`, `traces`, `difficulty`, `domains`) share when they run under the
step contract of `s1.curation.steps`: where their reply caches live, how their `on_drop(row, why)`
callbacks become a `Drops` record, and whether their progress bars show.

Reply caches. A model step is not sharded: it keeps every reply the moment it arrives in a JSONL
cache keyed by `question_hash` (`s1.jsonl`'s kill-safe appender), so a killed run asks again only
what is missing. The cache file is named by the step and `LLMConfig.fingerprint()` (model,
prompt, sampling; not servers, concurrency or prices) and lives in `ctx.replies_dir`: in a recipe
run that is `OUT/cache/replies/`, kept across runs, so a change upstream (another quality rule, a
bigger subset) asks the teacher only about the new questions, and moving to other servers reuses
every reply. A single `s1 curate STEP` keeps it in the step's private work directory (resumable
after a kill, removed when the step completes) unless the config names a cache file.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from s1.curation.steps import Drops


def replies_dir(ctx) -> Path:
    path = Path(ctx.replies_dir) if getattr(ctx, "replies_dir", None) else Path(ctx.work_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def reply_cache(ctx, explicit: str | None, kind: str, llm) -> str:
    """The configured cache file, else `<replies dir>/<kind>-<model fingerprint>.jsonl`."""
    if explicit:
        return explicit
    return str(replies_dir(ctx) / f"{kind}-{llm.fingerprint()}.jsonl")


def drop_into(drops: Drops, reason_of: Callable[[str], tuple[str, str]]) -> Callable[[dict, str], None]:
    """An `on_drop(row, why)` callback that records into `drops`, `why` split into a short
    reason (what the report counts) and the detail."""
    def on_drop(row: dict, why: str) -> None:
        reason, detail = reason_of(why)
        drops.add(row, reason, detail)
    return on_drop


def split_reason(prefix_map: dict[str, str], default: str) -> Callable[[str], tuple[str, str]]:
    """reason_of for `drop_into`: the first prefix of `why` found in `prefix_map` names the reason;
    the whole message is kept as the detail."""
    def reason_of(why: str) -> tuple[str, str]:
        for prefix, reason in prefix_map.items():
            if why.startswith(prefix):
                return reason, why
        return default, why
    return reason_of


@contextmanager
def bars(ctx):
    """The model functions' own progress bars follow the runner's `--quiet`."""
    from s1.curation import traces

    before = traces.SHOW_BARS
    traces.SHOW_BARS = bool(ctx.show_progress)
    try:
        yield
    finally:
        traces.SHOW_BARS = before
