"""The Forcer: budget forcing as a per-sequence state machine, independent of any engine.

An engine asks the model for the next token and hands the proposal to `Forcer.step`, which
returns the token actually emitted: the proposal itself, or a forced token (the ids of "Wait",
of the end delimiter, of "Final Answer:"). Forced tokens queue up and are emitted one per step,
so for an in-process engine a forced token is simply the next input token and the KV cache is
never recomputed. A remote engine feeds whole segments through `step` and stops feeding at the
first token the Forcer replaced.

Before sampling, an engine asks `banned()` for the ids the model must not propose next (it masks
their logits): the end of thinking and EOS right after an appended ignore string (the s1
harness's `min_tokens=1` per round), or all through the minimum in `min_mode="suppress"`.

A delimiter that starts with an ordinary token (`</think>` as `</`, `think`, `>` on a tokenizer
without a `</think>` token) is matched as a whole, on the decoded text, so `</b>` does not end the
thinking. When such an end has to be ignored, the tokens of the delimiter already emitted are
taken back: `take_rewind()` tells the engine how many of its last fed tokens to drop before it
feeds the ignore string.

Phases: THINKING → ANSWER → DONE. Only tokens emitted in THINKING (the model's and the ignore
strings') count as thinking tokens; the end delimiter counts as neither thinking nor answer.

Step-wise generation (a search continuing many branches): a Forcer may start from a `prefix` (the
thinking so far, already in the prompt the engine feeds) and pause at the end of the next step.
The prefix counts as thinking, so the thinking cap is the cap of the whole thinking; `step_end`
(e.g. "\n\n") ends the sequence (finish reason "step") once the new thinking holds text and then
the delimiter. A branch that ends its thinking in that step goes on to answer as usual.
"""

from __future__ import annotations

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
    end_text: str = ""                   # the delimiter as text (matched as a whole when `whole`)
    whole: bool = False                  # False: its first token alone ends the thinking

    @property
    def trigger(self) -> int | None:
        """The delimiter's first token: its proposal means "the model wants to stop thinking"
        (when not `whole`); banned after an ignore string in any case. None: the `none` format,
        which never thinks."""
        return self.end[0] if self.end else None

    @property
    def stop_ban(self) -> frozenset[int]:
        """What `banned()` forbids: the delimiter's first token and EOS."""
        return frozenset({self.trigger, *self.eos} - {None})

    @property
    def stop_ids(self) -> list[int]:
        """Ids a remote engine should stop a thinking segment on (a whole-matched delimiter is
        cut client-side: its first token alone may be ordinary text)."""
        return sorted(self.eos if self.whole else {self.trigger, *self.eos} - {None})

    @classmethod
    def build(cls, fmt: ThinkingFormat, encode: Callable[[str], list[int]],
              decode: Callable[[Sequence[int]], str], eos: Sequence[int],
              ignore_strings: Sequence[str], special: Sequence[int] = ()) -> "FormatIds":
        """`encode` must tokenize special tokens in text and add no BOS. `special`: the
        tokenizer's control tokens. A delimiter whose first token is one (s1's `<|im_start|>`)
        ends the thinking on that token, as the s1 harness stops on it; any other multi-token
        delimiter must appear whole."""
        end = tuple(encode(fmt.end)) if fmt.end else ()
        if not end and fmt.thinks:
            raise ValueError(f"the end delimiter {fmt.end!r} tokenizes to nothing")
        return cls(end=end, suffix=tuple(encode(fmt.forced_suffix)) if fmt.forced_suffix else (),
                   newline=tuple(encode("\n")), ignore=tuple(tuple(encode(s)) for s in ignore_strings),
                   eos=frozenset(eos), decode=decode, end_text=fmt.end,
                   whole=len(end) > 1 and end[0] not in set(special))

    def completes_end(self, tail: Sequence[int], proposed: int) -> int:
        """How many tokens (`proposed` and the last ones of `tail`) spell the whole delimiter,
        ending in `proposed`; 0 if they do not. Text-matched, so any split of it counts."""
        if not self.end_text or self.end_text[-1] not in self._text(proposed):
            return 0
        reach = len(self.end_text.encode("utf-8"))      # no token is shorter than one byte
        tail = list(tail[-reach:])
        for k in range(1, len(tail) + 2):
            if self.end_text in self.decode([*tail[len(tail) - k + 1:], proposed]):
                return k
        return 0

    def _text(self, token: int) -> str:
        cache = self.__dict__.setdefault("_texts", {})   # frozen dataclass: a private memo
        if token not in cache:
            cache[token] = self.decode([token])
        return cache[token]


# Where an emitted token belongs.
_THINK, _DELIM, _ANSWER = "thinking", "delimiter", "answer"


class Forcer:
    def __init__(self, budget: Budget, ids: FormatIds, max_thinking_tokens: int | None,
                 prefix: Sequence[int] = (), step_end: str | None = None):
        self.budget = budget
        self.ids = ids
        self.max_thinking_tokens = max_thinking_tokens   # resolved for this sequence (None: no cap)
        self.phase = Phase.THINKING
        self.thinking_ids: list[int] = list(prefix)      # a continued thinking starts with its prefix
        self.prefix_tokens = len(self.thinking_ids)
        self.step_end = step_end or None                 # pause once the new thinking ends a step
        self.delimiter_ids: list[int] = []
        self.answer_ids: list[int] = []
        self.answer_generated = 0          # model-proposed answer tokens (the answer budget counts these)
        self.events: list[Event] = []
        self.thinking_finish = ""
        self.finish_reason = ""
        self._queue: list[tuple[int, str]] = []
        self._ignored = 0                  # ends ignored because of num_ignore
        self._waits = 0                    # ignore strings appended so far (picks the next string)
        self._runs: list[int] = []         # per block size: positions equal to the one a block back
        self._loop_seen = False
        self._answer_nudged = False
        self._loop_stop = False            # the loop guard asked to end the thinking
        self._ban_next = False             # an ignore string was just appended (harness min_tokens=1)
        self._rewind = 0                   # emitted tokens the engine must take back (a partial delimiter)
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

    def banned(self) -> frozenset[int]:
        """Ids the engine must not let the model propose at the next step (mask their logits):
        the delimiter's first token and EOS right after an appended ignore string, or all
        through the minimum in `min_mode="suppress"`. Empty when nothing is banned."""
        if self.phase is not Phase.THINKING or self.due():
            return frozenset()
        if self._ban_next or (self.budget.min_mode == "suppress"
                              and len(self.thinking_ids) < self.budget.min_thinking_tokens):
            return self.ids.stop_ban
        return frozenset()

    def take_rewind(self) -> int:
        """How many of the tokens already emitted (and fed) the engine must drop now, before it
        feeds the token `step` just returned; reading it clears it. Non-zero only when a
        multi-token delimiter the model completed is ignored (the ignore string replaces it)."""
        n, self._rewind = self._rewind, 0
        return n

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
            self._ban_next = False
            if proposed in self.ids.eos or (proposed == self.ids.trigger and not self.ids.whole):
                return self._end_attempt(proposed)
            if self.ids.whole:
                span = self.ids.completes_end(self.thinking_ids, proposed)
                if span:
                    return self._end_attempt(proposed, span)
            token = self._emit(proposed, _THINK)
            if self.step_end and self._step_ended(proposed):
                self.thinking_finish = "step"
                self._finish("step")
            return token
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

    def _end_attempt(self, proposed: int, span: int = 0) -> int:
        """The model wants to end the thinking: with `proposed` (the trigger or EOS), or, when
        `span`, by completing a whole delimiter whose first span−1 tokens were emitted as
        thinking."""
        taken = self.thinking_ids[len(self.thinking_ids) - span + 1:] if span > 1 else []
        n = len(self.thinking_ids) - len(taken)
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
                if taken:    # the delimiter's first tokens leave the thinking and the model's cache
                    del self.thinking_ids[n:]
                    self._rewind += len(taken)
                    self._runs.clear()
                self.events.append(Event("wait", n, reason))
                self._ban_next = True
                self._queue.extend((t, _THINK) for t in wait)
                return self._emit(*self._queue.pop(0))
            # No room left for the ignore string: the thinking ends as the model wanted.
        self.thinking_finish = "end"
        if span:
            # The model spelled the whole delimiter: its tokens are the delimiter, as it wrote them.
            del self.thinking_ids[n:]
            self.delimiter_ids.extend(taken)
            return self._emit(proposed, _DELIM)
        if proposed == self.ids.trigger:
            # The model's own first delimiter token is kept; the rest of the delimiter is forced.
            self._queue.extend((t, _DELIM) for t in self.ids.end[1:])
            return self._emit(proposed, _DELIM)
        # EOS inside thinking: close the thinking with the delimiter instead (as the s1 harness).
        self._queue.extend((t, _DELIM) for t in self.ids.end)
        return self._emit(*self._queue.pop(0))

    def new_thinking(self) -> str:
        """The thinking this sequence added to its prefix, as text."""
        return self.ids.decode(self.thinking_ids[self.prefix_tokens:])

    def _step_ended(self, token: int) -> bool:
        """Whether the new thinking now holds a whole step: some text, then `step_end` (leading
        whitespace is not a step: a prefix ending in a delimiter may be followed by one more)."""
        if self.step_end[-1] not in self.ids._text(token):
            return False
        text = self.new_thinking()
        lead = len(text) - len(text.lstrip())
        return text.find(self.step_end, lead + 1) >= 0

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
        """A loop is the same block of L tokens (guard.ngram ≤ L ≤ window/repeats) repeated
        `repeats` times back to back at the end of the thinking. For each L, count how many
        positions in a row equal the one L back: L·(repeats−1) of them means `repeats` copies.
        Repeats scattered through a long derivation (a formula used again) never count."""
        guard = self.budget.loop
        if guard.mode == "off" or self._loop_seen:
            return
        x, runs = self.thinking_ids, self._runs
        lo, hi = guard.ngram, guard.window // guard.repeats
        if not runs:
            runs.extend([0] * (hi - lo + 1))
        n, t = len(x), x[-1]
        for j in range(hi - lo + 1):
            size = lo + j
            if n > size and x[n - 1 - size] == t:
                runs[j] += 1
                if runs[j] >= size * (guard.repeats - 1):
                    self._loop_seen = True
                    self.events.append(Event("loop", n, f"{size}-token block repeated "
                                                        f"{guard.repeats} times back to back"))
                    if guard.mode == "stop":
                        # Ends once any ignore string being emitted is out (`step` checks the flag).
                        self._loop_stop = True
                    return
            else:
                runs[j] = 0

    def _finish(self, reason: str) -> None:
        self.phase = Phase.DONE
        self.finish_reason = reason
