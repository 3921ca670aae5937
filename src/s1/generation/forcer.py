"""The Forcer: budget forcing as a per-sequence state machine, independent of any engine.

An engine asks the model for the next token and hands the proposal to `Forcer.step`, which
returns the token actually emitted: the proposal itself, or a forced token (the ids of "Wait",
of the end delimiter, of "Final Answer:"). Forced tokens queue up and are emitted one per step,
so for an in-process engine a forced token is simply the next input token and the KV cache is
never recomputed. A remote engine feeds whole segments through `step` and stops feeding at the
first token the Forcer replaced.

Phases: THINKING → ANSWER → DONE. Only tokens emitted in THINKING (the model's and the ignore
strings') count as thinking tokens; the end delimiter counts as neither thinking nor answer.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Sequence

from s1.generation.budget import Budget
from s1.generation.formats import ThinkingFormat
from s1.generation.trace import Event


class Phase(str, Enum):
    THINKING = "thinking"
    ANSWER = "answer"
    DONE = "done"


@dataclass(frozen=True)
class FormatIds:
    """A thinking format and the ignore strings, tokenized once for one tokenizer."""

    end: tuple[int, ...]                 # the end-of-thinking delimiter
    suffix: tuple[int, ...]              # forced after the delimiter when thinking is cut ("Final Answer:")
    newline: tuple[int, ...]             # put before a forced delimiter if thinking lacks a final "\n"
    ignore: tuple[tuple[int, ...], ...]  # one id sequence per ignore string, used in turn
    eos: frozenset[int]                  # end-of-turn ids
    decode: Callable[[Sequence[int]], str] = field(compare=False, repr=False)

    @property
    def trigger(self) -> int | None:
        """The token whose proposal means "the model wants to stop thinking" (None: the `none`
        format, which never thinks)."""
        return self.end[0] if self.end else None

    @property
    def stop_ids(self) -> list[int]:
        """Ids a remote engine should stop a thinking segment on."""
        return sorted({self.trigger, *self.eos} - {None})

    @classmethod
    def build(cls, fmt: ThinkingFormat, encode: Callable[[str], list[int]],
              decode: Callable[[Sequence[int]], str], eos: Sequence[int],
              ignore_strings: Sequence[str]) -> "FormatIds":
        """`encode` must tokenize special tokens in text and add no BOS."""
        end = tuple(encode(fmt.end)) if fmt.end else ()
        if not end and fmt.thinks:
            raise ValueError(f"the end delimiter {fmt.end!r} tokenizes to nothing")
        return cls(end=end, suffix=tuple(encode(fmt.forced_suffix)) if fmt.forced_suffix else (),
                   newline=tuple(encode("\n")), ignore=tuple(tuple(encode(s)) for s in ignore_strings),
                   eos=frozenset(eos), decode=decode)


# Where an emitted token belongs.
_THINK, _DELIM, _ANSWER = "thinking", "delimiter", "answer"


class Forcer:
    def __init__(self, budget: Budget, ids: FormatIds, max_thinking_tokens: int | None):
        self.budget = budget
        self.ids = ids
        self.max_thinking_tokens = max_thinking_tokens   # resolved for this sequence (None: no cap)
        self.phase = Phase.THINKING
        self.thinking_ids: list[int] = []
        self.delimiter_ids: list[int] = []
        self.answer_ids: list[int] = []
        self.answer_generated = 0          # model-proposed answer tokens (the answer budget counts these)
        self.events: list[Event] = []
        self.thinking_finish = ""
        self.finish_reason = ""
        self._queue: list[tuple[int, str]] = []
        self._ignored = 0                  # ends ignored because of num_ignore
        self._waits = 0                    # ignore strings appended so far (picks the next string)
        self._ngrams: dict[tuple[int, ...], int] = defaultdict(int)
        self._loop_seen = False
        self._answer_nudged = False
        self._loop_stop = False            # the loop guard asked to end the thinking
        if not ids.end:                    # the `none` format: the whole output is the answer
            self.phase = Phase.ANSWER
            self.thinking_finish = "none"

    # --- what the engine asks --------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.phase is Phase.DONE

    @property
    def thinking_tokens(self) -> int:
        return len(self.thinking_ids)

    def due(self) -> bool:
        """True when the next emitted token is forced whatever the model proposes."""
        return bool(self._queue) or (self.phase is Phase.THINKING
                                     and (self._at_max() or self._loop_stop))

    def pending(self) -> list[int]:
        """The forced tokens queued so far (more may follow once they are emitted)."""
        return [t for t, _ in self._queue]

    def thinking_room(self) -> int | None:
        """Tokens the model may still think before the cap (None = uncapped)."""
        if self.max_thinking_tokens is None:
            return None
        return max(0, self.max_thinking_tokens - len(self.thinking_ids))

    def answer_room(self) -> int:
        return max(0, self.budget.max_answer_tokens - self.answer_generated)

    # --- the state machine -----------------------------------------------------------------

    def step(self, proposed: int | None) -> int | None:
        """Take the model's proposed token; return the token emitted, or None when finished.

        `proposed` may be None only when `due()` (a remote engine draining forced tokens).
        """
        if self.phase is Phase.DONE:
            return None
        if self._queue:
            return self._emit(*self._queue.pop(0))
        if self.phase is Phase.THINKING:
            if self._at_max() or self._loop_stop:
                self._force_end("loop" if self._loop_stop else "max")
                return self._emit(*self._queue.pop(0))
            if proposed is None:
                raise ValueError("no proposal while no forced token is due")
            if proposed == self.ids.trigger or proposed in self.ids.eos:
                return self._end_attempt(proposed)
            return self._emit(proposed, _THINK)
        # ANSWER
        if proposed is None:
            raise ValueError("no proposal while no forced token is due")
        if proposed in self.ids.eos:
            if self._answer_is_empty():
                # An empty answer scores nothing and tells nothing; like SGLang's strict thinking,
                # do not let the turn end right after the delimiter: prompt the answer instead.
                self._answer_nudged = True
                self.events.append(Event("answer_forced", len(self.thinking_ids), "empty answer"))
                self._queue.extend((t, _ANSWER) for t in self.ids.suffix)
                return self._emit(*self._queue.pop(0))
            self._finish("stop")
            return None
        self.answer_generated += 1
        return self._emit(proposed, _ANSWER)

    def stop(self, reason: str = "length") -> None:
        """The engine cannot go on (context full, server gave up): close the sequence."""
        if self.phase is Phase.THINKING:
            self.thinking_finish = "context"
        self._queue.clear()
        self._finish(reason)

    # --- internals ---------------------------------------------------------------------------

    def _at_max(self) -> bool:
        return self.max_thinking_tokens is not None and len(self.thinking_ids) >= self.max_thinking_tokens

    def _end_attempt(self, proposed: int) -> int:
        n = len(self.thinking_ids)
        reason = ""
        if n < self.budget.min_thinking_tokens:
            reason = "min"
        elif self._ignored < self.budget.num_ignore:
            reason = "num_ignore"
        if reason:
            wait = self.ids.ignore[self._waits % len(self.ids.ignore)]
            if self.max_thinking_tokens is None or n + len(wait) <= self.max_thinking_tokens:
                self._waits += 1
                if reason == "num_ignore":
                    self._ignored += 1
                self.events.append(Event("wait", n, reason))
                self._queue.extend((t, _THINK) for t in wait)
                return self._emit(*self._queue.pop(0))
            # No room left for the ignore string: the thinking ends as the model wanted.
        self.thinking_finish = "end"
        if proposed == self.ids.trigger:
            # The model's own first delimiter token is kept; the rest of the delimiter is forced.
            self._queue.extend((t, _DELIM) for t in self.ids.end[1:])
            return self._emit(proposed, _DELIM)
        # EOS inside thinking: close the thinking with the delimiter instead (as the s1 harness).
        self._queue.extend((t, _DELIM) for t in self.ids.end)
        return self._emit(*self._queue.pop(0))

    def _answer_is_empty(self) -> bool:
        return (self.budget.require_answer and not self._answer_nudged and bool(self.ids.suffix)
                and not self.ids.decode(self.answer_ids).strip())

    def _force_end(self, why: str) -> None:
        self._loop_stop = False
        self.thinking_finish = why
        self.events.append(Event("forced_end", len(self.thinking_ids), why))
        last = self.ids.decode(self.thinking_ids[-1:]) if self.thinking_ids else ""
        lead = () if last.endswith("\n") else self.ids.newline
        self._queue.extend((t, _DELIM) for t in (*lead, *self.ids.end))
        self._queue.extend((t, _ANSWER) for t in self.ids.suffix)

    def _emit(self, token: int, bucket: str) -> int:
        if bucket == _THINK:
            self.thinking_ids.append(token)
            self._watch_loop()
        elif bucket == _DELIM:
            self.delimiter_ids.append(token)
        else:
            self.answer_ids.append(token)
        if self.phase is Phase.THINKING and bucket != _THINK and not any(
                b == _DELIM for _, b in self._queue):
            self.phase = Phase.ANSWER   # the whole delimiter is out
        if self.phase is Phase.ANSWER and not self._queue and self.answer_generated >= self.budget.max_answer_tokens:
            self._finish("length")
        return token

    def _watch_loop(self) -> None:
        guard = self.budget.loop
        if guard.mode == "off" or self._loop_seen or len(self.thinking_ids) < guard.ngram:
            return
        gram = tuple(self.thinking_ids[-guard.ngram:])
        self._ngrams[gram] += 1
        if self._ngrams[gram] >= guard.repeats:
            self._loop_seen = True
            self.events.append(Event("loop", len(self.thinking_ids),
                                     f"{guard.ngram}-gram seen {guard.repeats} times"))
            if guard.mode == "stop":
                # Ends once any ignore string being emitted is out (`step` checks the flag).
                self._loop_stop = True

    def _finish(self, reason: str) -> None:
        self.phase = Phase.DONE
        self.finish_reason = reason
