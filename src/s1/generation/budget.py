"""Budget: every knob of budget forcing and sampling, validated once at construction.

Semantics (the paper's §3.1 and its harness, token-exact):
- `max_thinking_tokens`: thinking never exceeds it; on reaching it the end delimiter and
  "Final Answer:" are forced. `"auto"` = context window − prompt − `answer_reserve`.
- `min_thinking_tokens`: before it, an attempt to end thinking (end delimiter or EOS) is
  suppressed and an ignore string ("Wait") is appended instead.
- `num_ignore`: after the minimum, the first N attempts to end thinking are also suppressed the
  same way (s1's "ignore the end of thinking N times"); the ignore strings are used in turn.
- `max_answer_tokens`: the answer phase ends at EOS or at this many tokens.
- `require_answer`: an EOS right after the end delimiter (empty answer) is replaced, once, by the
  forced suffix ("Final Answer:") so the model answers; off reproduces the harness exactly.
- `loop_guard`: watch the thinking for a repeated n-gram; "record" notes it, "stop" also stops
  forcing (the thinking is ended at once, no more "Wait"s); "off" disables the check.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal, Union

from s1.errors import UserError

MaxThinking = Union[int, Literal["auto"], None]


@dataclass(frozen=True)
class Budget:
    max_thinking_tokens: MaxThinking = "auto"
    min_thinking_tokens: int = 0
    num_ignore: int = 0
    ignore_strings: tuple[str, ...] = ("Wait",)
    max_answer_tokens: int = 512
    answer_reserve: int = 100          # kept free for the answer when max is "auto" (s1 harness: 100)
    temperature: float = 0.0           # 0 = greedy, as the paper evaluates
    top_p: float = 1.0
    seed: int = 0
    require_answer: bool = True       # an EOS before any answer text gets "Final Answer:" instead
    loop_guard: Literal["off", "record", "stop"] = "record"
    loop_ngram: int = 16               # tokens in the repeated n-gram
    loop_repeats: int = 4              # occurrences that count as a loop

    def __post_init__(self) -> None:
        if isinstance(self.ignore_strings, (str, list)):
            object.__setattr__(self, "ignore_strings",
                               (self.ignore_strings,) if isinstance(self.ignore_strings, str)
                               else tuple(self.ignore_strings))
        mx = self.max_thinking_tokens
        if isinstance(mx, str) and mx != "auto":
            if not mx.isdigit():
                raise UserError(f"max thinking tokens must be a non-negative integer or 'auto', not {mx!r}")
            object.__setattr__(self, "max_thinking_tokens", mx := int(mx))
        if isinstance(mx, bool) or (mx is not None and mx != "auto" and not isinstance(mx, int)):
            raise UserError(f"max thinking tokens must be an integer or 'auto', not {mx!r}")
        if isinstance(mx, int) and mx < 0:
            raise UserError(f"max thinking tokens cannot be negative ({mx})")
        for name in ("min_thinking_tokens", "num_ignore", "answer_reserve"):
            if getattr(self, name) < 0:
                raise UserError(f"{name.replace('_', ' ')} cannot be negative ({getattr(self, name)})")
        if self.max_answer_tokens < 1:
            raise UserError(f"max answer tokens must be at least 1 ({self.max_answer_tokens})")
        if isinstance(mx, int) and self.min_thinking_tokens > mx:
            raise UserError(f"min thinking tokens ({self.min_thinking_tokens}) exceed the maximum ({mx})")
        if (self.min_thinking_tokens or self.num_ignore) and not self.ignore_strings:
            raise UserError("a minimum or num_ignore needs at least one ignore string (e.g. 'Wait')")
        if any(not s for s in self.ignore_strings):
            raise UserError("ignore strings cannot be empty")
        if self.temperature < 0:
            raise UserError(f"temperature cannot be negative ({self.temperature})")
        if not 0 < self.top_p <= 1:
            raise UserError(f"top_p must be in (0, 1] ({self.top_p})")
        if self.loop_guard not in ("off", "record", "stop"):
            raise UserError(f"loop guard must be off, record or stop ({self.loop_guard!r})")
        if self.loop_ngram < 1 or self.loop_repeats < 2:
            raise UserError("loop guard needs an n-gram of at least 1 token and at least 2 repeats")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def resolve_max_thinking(self, prompt_tokens: int, context_length: int,
                             forced_end_tokens: int = 0) -> int | None:
        """The per-sequence thinking cap; `auto` fills the context, leaving room to answer.

        Returns None for no cap. Raises if the prompt leaves no room at all.
        """
        room = context_length - prompt_tokens - forced_end_tokens - self.answer_reserve
        if room < 1:
            raise UserError(f"the prompt ({prompt_tokens} tokens) leaves no room to think and answer "
                            f"in the {context_length}-token context")
        if self.max_thinking_tokens == "auto":
            return room
        if self.max_thinking_tokens is None:
            return room   # uncapped thinking still has to fit the context
        return min(self.max_thinking_tokens, room)

    def with_(self, **changes) -> "Budget":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ignore_strings"] = list(self.ignore_strings)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Budget":
        return cls(**d)
